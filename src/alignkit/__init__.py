"""alignkit: harmful fine-tuning attacks, immunization defences (RepNoise) and the immunization conditions
for Hugging Face causal LMs, and counterfactual trajectory explanations (CTEs) of learned reward functions.

Python API (the CLI is a thin layer over it)::

    import alignkit
    res = alignkit.attack(alignkit.AttackConfig(model="smollm2-135m-instruct", max_steps=50))
    path = alignkit.defend(alignkit.DefenceConfig(model="smollm2-135m-instruct", defence="repnoise"))
    report = alignkit.evaluate(alignkit.EvaluateConfig(models=[path], base="smollm2-135m-instruct"))
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "attack": ("alignkit.attacks", "attack"),
    "AttackConfig": ("alignkit.attacks", "AttackConfig"),
    "defend": ("alignkit.defences", "defend"),
    "DefenceConfig": ("alignkit.defences", "DefenceConfig"),
    "evaluate": ("alignkit.conditions", "evaluate"),
    "EvaluateConfig": ("alignkit.conditions", "EvaluateConfig"),
    "get_judge": ("alignkit.judges", "get_judge"),
    "load_causal_lm": ("alignkit.models", "load_causal_lm"),
    "AlignkitError": ("alignkit.errors", "AlignkitError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'alignkit' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
