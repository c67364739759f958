"""``alignkit attack``: the AttackConfig fields as options, plus ``--sweep`` and its grid options."""

from __future__ import annotations

from typing import Optional

import typer

from alignkit.attacks.config import AttackConfig
from alignkit.config import config_command


def _floats(values: list[str] | None, opt: str) -> list[float] | None:
    from alignkit.errors import AlignkitError

    if not values:
        return None
    out = []
    for v in values:
        for part in str(v).split(","):
            if part.strip():
                try:
                    x = float(part)
                except ValueError:
                    raise AlignkitError(f"{opt}: {part!r} is not a number") from None
                out.append(x)
    return out


def _run(config: AttackConfig, sweep: bool = False, sweep_lrs: Optional[list[str]] = None,
         sweep_samples: Optional[list[str]] = None, sweep_seeds: Optional[list[str]] = None,
         sweep_methods: Optional[list[str]] = None) -> None:
    from alignkit.errors import AlignkitError
    from alignkit.training import is_main_process

    grid_given = any([sweep_lrs, sweep_samples, sweep_seeds, sweep_methods])
    if grid_given and not sweep:
        raise AlignkitError("--sweep-* options need --sweep")
    if sweep:
        from alignkit.attacks import sweep as run_sweep
        from alignkit.attacks.sweep import format_table

        lrs = _floats(sweep_lrs, "--sweep-lrs")
        for lr in lrs or []:
            if not 0 < lr < 1:
                raise AlignkitError(f"--sweep-lrs: {lr:g} is not a learning rate in (0, 1)")
        samples = [int(x) for x in _floats(sweep_samples, "--sweep-samples") or []] or None
        seeds = [int(x) for x in _floats(sweep_seeds, "--sweep-seeds") or []] or None
        methods = [m.strip() for v in (sweep_methods or []) for m in v.split(",") if m.strip()] or None
        res = run_sweep(config, lrs=lrs, samples=samples, seeds=seeds, methods=methods)
        if is_main_process():
            print(format_table(res))
            print(f"sweep: {res.sweep_dir}/sweep.json")
        return
    from alignkit.attacks import attack

    res = attack(config)
    if is_main_process():
        pts = " ".join(f"{p.step}:{p.harmfulness_mean:.3f}" for p in res.curve)
        print(f"harmfulness curve (step:mean) {pts}")
        print(f"step 0 {res.initial_harmfulness:.3f} -> final {res.final_harmfulness:.3f} "
              f"(judge {res.provenance.judge}); steps to threshold {res.steps_to_threshold}")
        print(f"results: {res.run_dir}/results.json")


def register(app: typer.Typer) -> None:
    config_command(app, AttackConfig, "attack", _run, help=AttackConfig.__doc__ or "", extra={
        "sweep": (bool, typer.Option(False, "--sweep", help="run a grid of attacks and report the worst case")),
        "sweep_lrs": (Optional[list[str]], typer.Option(None, "--sweep-lrs", help="learning rates, e.g. "
                                                         "3e-5,6e-5,8e-5 (repeat or comma-separate)")),
        "sweep_samples": (Optional[list[str]], typer.Option(None, "--sweep-samples", help="sample sizes")),
        "sweep_seeds": (Optional[list[str]], typer.Option(None, "--sweep-seeds", help="seeds, e.g. 0,1,2")),
        "sweep_methods": (Optional[list[str]], typer.Option(None, "--sweep-methods", help="full,lora")),
    })
