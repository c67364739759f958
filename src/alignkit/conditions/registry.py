"""``CONDITIONS``: the immunization conditions by name. Each condition is one module of this package holding its
verdict logic and its runner, registered with :func:`condition`; the evaluate pipeline dispatches by name."""

from __future__ import annotations

from typing import Any, Callable

from alignkit.registry import Registry

CONDITIONS: Registry = Registry("condition")


def condition(name: str, units: Callable[[Any], int]) -> Callable:
    """Register a condition runner ``run(ctx) -> result`` under ``name``; ``units(config)`` is the number of
    progress steps it reports for an EvaluateConfig (one per model measured or attack run)."""

    def deco(fn: Callable) -> Callable:
        fn.units = units
        return CONDITIONS.register(name)(fn)

    return deco

# evaluation order
ORDER = ("resistance", "stability", "generalization", "trainability", "depth")
