"""Worst-case search on Optuna: the attacker's hyperparameters (``search attack``) and a defence's
(``search defence``), spread over any number of workers through an Optuna storage.

    from alignkit.search import AttackSearchConfig, search_attack, DefenceSearchConfig, search_defence
    res = search_attack(AttackSearchConfig(model="runs/demo/repnoise", output_dir="runs/worst", preset="quick"))
    res.worst_raw, res.worst_bounded          # WorstCase(trial, harmfulness, steps_to_break, ...)
    front = search_defence(DefenceSearchConfig(defence="repnoise", model="smollm2-135m-instruct",
                                               output_dir="runs/tune", preset="quick")).pareto

A second worker is the same call (or command) with the same ``output_dir`` and ``storage``. See docs/search.md.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "AttackSearchConfig": "alignkit.search.attack", "AttackSearchResult": "alignkit.search.attack",
    "search_attack": "alignkit.search.attack", "DefenceSearchConfig": "alignkit.search.defence",
    "DefenceSearchResult": "alignkit.search.defence", "search_defence": "alignkit.search.defence",
    "Space": "alignkit.search.space", "load_space_file": "alignkit.search.space",
    "parse_space": "alignkit.search.space",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alignkit.search' has no attribute {name!r}")


__all__ = sorted(_LAZY)
