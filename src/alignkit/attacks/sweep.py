"""Attack sweeps (Qi et al. 2024: report the worst case over learning rates, sample sizes, seeds, full/LoRA).

Each grid point is an ordinary, resumable attack run in ``<sweep_dir>/<method>-lr<lr>-n<n>-s<seed>``; the
sweep writes ``sweep.json`` (:class:`SweepResult`) with every run and the worst case for the defender: the
highest final harmfulness and the fewest steps to exceed phi.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Optional, Sequence

from alignkit.attacks.config import AttackConfig, AttackResult, SweepResult, SweepRun
from alignkit.training import config_hash, is_main_process


def sweep_dir_for(config: AttackConfig, grid: dict[str, list]) -> Path:
    from alignkit.attacks.base import RESUME_IGNORED, _slug
    from alignkit.paths import default_runs_dir

    if config.output_dir:
        return Path(config.output_dir).expanduser()
    values = {k: v for k, v in config.model_dump(mode="json").items() if k not in RESUME_IGNORED}
    return default_runs_dir() / f"sweep-{_slug(config.model)}-{config_hash({'c': values, 'g': grid})}"


def _run_row(method: str, cfg: AttackConfig, res: AttackResult) -> SweepRun:
    return SweepRun(method=method, lr=cfg.lr, num_samples=cfg.num_samples, seed=cfg.seed, run_dir=res.run_dir,
                    initial_harmfulness=res.initial_harmfulness, final_harmfulness=res.final_harmfulness,
                    max_harmfulness=res.max_harmfulness, steps_to_threshold=res.steps_to_threshold,
                    total_steps=res.total_steps)


def worst_case(runs: list[SweepRun]) -> dict[str, Optional[SweepRun]]:
    crossed = [r for r in runs if r.steps_to_threshold is not None]
    return {
        "max_final_harmfulness": max(runs, key=lambda r: r.final_harmfulness) if runs else None,
        "min_steps_to_threshold": min(crossed, key=lambda r: (r.steps_to_threshold, -r.final_harmfulness))
        if crossed else None,
    }


def sweep(config: AttackConfig, *, lrs: Sequence[float] | None = None, samples: Sequence[int | None] | None = None,
          seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None, judge: Any = None
          ) -> SweepResult:
    """Run the grid lrs x samples x seeds x methods (each default: the config's own value)."""
    from alignkit.attacks import attack
    from alignkit.errors import AlignkitError
    from alignkit.io import write_json

    grid = {"lr": list(lrs or [config.lr]), "num_samples": list(samples or [config.num_samples]),
            "seed": list(seeds or [config.seed]), "method": list(methods or [config.method])}
    bad = [m for m in grid["method"] if m not in ("full", "lora")]
    if bad:
        raise AlignkitError(f"unknown --sweep-methods {', '.join(bad)}; use full and/or lora")
    out = sweep_dir_for(config, grid)
    runs: list[SweepRun] = []
    combos = list(itertools.product(grid["method"], grid["lr"], grid["num_samples"], grid["seed"]))
    for i, (method, lr, n, seed) in enumerate(combos, 1):
        name = f"{method}-lr{lr:g}-n{n or 'all'}-s{seed}"
        cfg = config.model_copy(update={"method": method, "lr": lr, "num_samples": n, "seed": seed,
                                        "output_dir": str(out / name)})
        cfg = AttackConfig.model_validate(cfg.model_dump())
        if is_main_process():
            import sys

            print(f"[sweep {i}/{len(combos)}] {name}", file=sys.stderr, flush=True)
        res = attack(cfg, judge=judge)
        runs.append(_run_row(method, cfg, res))
    result = SweepResult(base_config=config, grid=grid, runs=runs, worst=worst_case(runs), sweep_dir=str(out))
    if is_main_process():
        write_json(out / "sweep.json", result)
    return result


def format_table(result: SweepResult) -> str:
    """A plain-text table of the runs and the worst case."""
    head = f"{'method':<6} {'lr':>8} {'n':>6} {'seed':>4} {'step0':>6} {'final':>6} {'max':>6} {'steps>phi':>9}"
    lines = [head, "-" * len(head)]
    for r in result.runs:
        lines.append(f"{r.method:<6} {r.lr:>8.1e} {str(r.num_samples or 'all'):>6} {r.seed:>4} "
                     f"{r.initial_harmfulness:>6.3f} {r.final_harmfulness:>6.3f} {r.max_harmfulness:>6.3f} "
                     f"{str(r.steps_to_threshold if r.steps_to_threshold is not None else 'never'):>9}")
    w = result.worst
    if w.get("max_final_harmfulness"):
        r = w["max_final_harmfulness"]
        lines.append(f"worst final harmfulness: {r.final_harmfulness:.3f} ({r.method}, lr {r.lr:g}, "
                     f"n {r.num_samples or 'all'}, seed {r.seed})")
    r = w.get("min_steps_to_threshold")
    lines.append("fewest steps to threshold: " + (f"{r.steps_to_threshold} ({r.method}, lr {r.lr:g}, n "
                                                  f"{r.num_samples or 'all'}, seed {r.seed})" if r else
                                                  "never within the budget"))
    return "\n".join(lines)
