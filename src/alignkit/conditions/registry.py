"""``CONDITIONS``: the immunization conditions by name (each a module of this package)."""

from __future__ import annotations

from alignkit.registry import Registry

CONDITIONS: Registry = Registry("condition")

# evaluation order
ORDER = ("resistance", "stability", "generalization", "trainability", "depth")
