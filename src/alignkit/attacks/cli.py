"""``alignkit attack``: the AttackConfig fields as options, plus ``--sweep`` and its grid options."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from alignkit.attacks.config import AttackConfig
from alignkit.config import config_command


class SweepOptions(BaseModel):
    """The ``--sweep`` grid (each list: repeat the option or comma-separate; empty: the attack's own value)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sweep: bool = Field(False, description="run a grid of attacks and report the worst case")
    sweep_lrs: list[Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=list, description="learning "
                                                                "rates, e.g. 3e-5,6e-5,8e-5")
    sweep_samples: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, description="training sample "
                                                             "sizes, e.g. 100,200")
    sweep_seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list, description="seeds, e.g. 0,1,2")
    sweep_methods: list[Literal["full", "lora"]] = Field(default_factory=list, description="full and/or lora")


def _run(config: AttackConfig, grid: SweepOptions) -> None:
    from alignkit.errors import AlignkitError
    from alignkit.training import is_main_process

    grid_given = any([grid.sweep_lrs, grid.sweep_samples, grid.sweep_seeds, grid.sweep_methods])
    if grid_given and not grid.sweep:
        raise AlignkitError("--sweep-* options need --sweep")
    if grid.sweep:
        from alignkit.attacks import sweep as run_sweep
        from alignkit.attacks.sweep import format_table

        res = run_sweep(config, lrs=grid.sweep_lrs or None, samples=grid.sweep_samples or None,
                        seeds=grid.sweep_seeds or None, methods=grid.sweep_methods or None)
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
    config_command(app, AttackConfig, "attack", _run, help=AttackConfig.__doc__ or "", extra_cls=SweepOptions)
