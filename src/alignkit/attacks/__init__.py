"""Harmful fine-tuning attacks (methods.md section 1).

    from alignkit.attacks import AttackConfig, attack, sweep
    res = attack(AttackConfig(model="smollm2-135m-instruct", lr=8e-5, eval_every=10))
    res.curve            # [CurvePoint(step, harmfulness_mean, share_harmful, per_category, ...)]
    sw = sweep(AttackConfig(model="tiny-random-llama", max_steps=4), lrs=[3e-5, 8e-5], seeds=[0, 1])
    sw.worst["max_final_harmfulness"]

Registered attacks (:data:`ATTACKS`): ``sft-full`` and ``sft-lora`` (sft.py). A new attack is one new module
with an :class:`Attack` subclass decorated ``@ATTACKS.register("name-<method>")``, imported below.
"""

from __future__ import annotations

from typing import Any, Sequence

from alignkit.attacks.base import ATTACKS, Attack, run_attack
from alignkit.attacks.config import AttackConfig, AttackResult, CurvePoint, SweepResult, SweepRun
from alignkit.attacks import sft  # noqa: F401  (registers sft-full, sft-lora)


def attack(config: AttackConfig, *, judge: Any = None, reuse_step0_from: Any = None) -> AttackResult:
    """Run (resume, or report the finished) attack described by ``config``. ``judge``: a judge object that
    overrides ``config.judge`` (anything with ``score(prompts, completions)``). ``reuse_step0_from``: an earlier
    run folder on the same model and eval settings whose step-0 evaluation is reused (one judging pass less)."""
    return run_attack(config, judge=judge, reuse_step0_from=reuse_step0_from)


def sweep(config: AttackConfig, *, lrs: Sequence[float] | None = None, samples: Sequence[int] | None = None,
          seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None, judge: Any = None
          ) -> SweepResult:
    """Attack grid (learning rates x sample sizes x seeds x full/LoRA) with the worst case; see sweep.py."""
    from alignkit.attacks.sweep import sweep as _sweep

    return _sweep(config, lrs=lrs, samples=samples, seeds=seeds, methods=methods, judge=judge)


__all__ = ["ATTACKS", "Attack", "AttackConfig", "AttackResult", "CurvePoint", "SweepResult", "SweepRun",
           "attack", "sweep"]
