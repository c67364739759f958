"""Attacks on a model's safety (methods.md section 1), one contract for every family.

    from alignkit.attacks import AttackConfig, attack, sweep
    res = attack(AttackConfig(model="smollm2-135m-instruct", lr=8e-5, eval_every=10))
    res.curve            # [CurvePoint(step, harmfulness_mean, share_harmful, per_category, ...)]
    res.budget_label     # what CurvePoint.step counts: "optimizer steps", "prefill tokens", ...
    from alignkit.attacks.prefill import PrefillConfig
    attack(PrefillConfig(model="smollm2-135m-instruct", prefill_tokens=[0, 5, 10, 20]))
    sw = sweep(AttackConfig(model="tiny-random-llama", max_steps=4), lrs=[3e-5, 8e-5], seeds=[0, 1])

Registered families (:data:`ATTACKS`): ``sft-full`` and ``sft-lora`` (sft.py), ``prefill`` (prefill.py) and the
modules of :data:`FAMILY_MODULES`. A new family is one module with a registered class (an :class:`Attack` for a
Trainer attack, a :class:`BudgetAttack` otherwise) and its own config class; add the module to
:data:`FAMILY_MODULES`. See the contract in attacks/base.py.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from alignkit.attacks.base import ATTACKS, Attack, AttackFamily, family_class, run_attack
from alignkit.attacks.budget import BudgetAttack, run_budget_attack
from alignkit.attacks.config import (AttackConfig, AttackOptions, AttackResult, CurvePoint, SweepResult, SweepRun,
                                     config_class_for)

#: the modules that register the shipped attack families (imported in this order; a module that is not built
#: yet is skipped)
FAMILY_MODULES = ("sft", "prefill", "refusal_ablation", "embedding", "jailbreak_tuning", "benign")


def _load_families() -> None:
    for mod in FAMILY_MODULES:
        full = f"alignkit.attacks.{mod}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:  # a missing dependency inside a family module is a real error
                raise


_load_families()
# the submodule sweep.py is loaded here, before the function ``sweep`` below is defined: importing a submodule for
# the first time sets the package attribute of its name, which would otherwise replace the function by the module
# the first time the function runs (a second ``alignkit.attacks.sweep(...)`` then failed: 'module' not callable)
from alignkit.attacks import sweep as _sweep_module  # noqa: E402


def attack(config: AttackOptions, *, judge: Any = None, reuse_step0_from: Any = None) -> AttackResult:
    """Run (resume, or report the finished) attack described by ``config`` (any family's config: dispatched on
    ``config.family()``). ``judge``: a judge object that overrides ``config.judge`` (anything with
    ``score(prompts, completions)``). ``reuse_step0_from``: (training families) an earlier run folder on the same
    model and eval settings whose step-0 evaluation is reused (one judging pass less)."""
    return family_class(config).run(config, judge=judge, reuse_step0_from=reuse_step0_from)


def config_for(name: str, **values: Any) -> AttackOptions:
    """The config of family ``name`` (``sft``, ``sft-full``, ``sft-lora``, ``prefill``, ...) with ``values`` (its
    defaults elsewhere); unknown names: one line listing the registered families."""
    from alignkit.attacks.base import family_config_class

    cls = family_config_class(name)
    return cls(**({"attack": name} if name != "sft" else {}), **values)


def sweep(config: AttackConfig, *, lrs: Sequence[float] | None = None, samples: Sequence[int] | None = None,
          seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None, judge: Any = None
          ) -> SweepResult:
    """Attack grid (learning rates x sample sizes x seeds x full/LoRA) with the worst case; see sweep.py."""
    return _sweep_module.sweep(config, lrs=lrs, samples=samples, seeds=seeds, methods=methods, judge=judge)


__all__ = ["ATTACKS", "Attack", "AttackConfig", "AttackFamily", "AttackOptions", "AttackResult", "BudgetAttack",
           "CurvePoint", "FAMILY_MODULES", "SweepResult", "SweepRun", "attack", "config_class_for", "config_for",
           "family_class", "run_attack", "run_budget_attack", "sweep"]
