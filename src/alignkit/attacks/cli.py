"""``alignkit attack --attack NAME [family options]``: each registered family's config fields as options.

``--attack`` is read first (from the command line, else from ``--config FILE``'s ``attack`` key, else ``sft``);
it picks the family's config class, whose fields become the options of the command (``--help`` then lists that
family's fields with their defaults). An option of another family is one line naming the family that owns it.
The SFT families keep ``--sweep`` and its grid options (:class:`SweepOptions`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from alignkit.attacks.config import AttackConfig, AttackOptions
from alignkit.config import config_command
from alignkit.errors import AlignkitError


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
    _run_family(config)


def _run_family(config: AttackOptions) -> None:
    from alignkit.attacks import attack
    from alignkit.training import is_main_process

    res = attack(config)
    if is_main_process():
        pts = " ".join(f"{p.step}:{p.harmfulness_mean:.3f}" for p in res.curve)
        print(f"harmfulness curve ({res.budget_label}:mean) {pts}")
        print(f"{res.budget_label} {res.curve[0].step} {res.initial_harmfulness:.3f} -> {res.curve[-1].step} "
              f"{res.final_harmfulness:.3f} (judge {res.provenance.judge}); {res.budget_label} to threshold "
              f"{res.steps_to_threshold}")
        for line in res.judge_validity[:4]:  # what the judge can and cannot tell (its validity card)
            print(f"judge: {line}")
        print(f"results: {res.run_dir}/results.json")


# ------------------------------------------------------------------------------------------------ dispatch
def config_class(name: str) -> type[AttackOptions]:
    from alignkit.attacks.base import family_config_class

    return family_config_class(name)


def _extra_cls(cls: type[AttackOptions]) -> type[BaseModel] | None:
    return SweepOptions if cls is AttackConfig else None


def _flags(cls: type[BaseModel] | None) -> set[str]:
    out: set[str] = set()
    for name, field in (cls.model_fields.items() if cls is not None else ()):
        flag = "--" + name.replace("_", "-")
        out.add(flag)
        if field.annotation is bool:
            out.add("--no-" + name.replace("_", "-"))
    return out


def _owners() -> dict[str, list[str]]:
    """flag -> the registered families whose config (or CLI extras) has it."""
    from alignkit.attacks import ATTACKS

    owners: dict[str, list[str]] = {}
    for name in ATTACKS.names():
        cls = ATTACKS.get(name).config_class
        for flag in _flags(cls) | _flags(_extra_cls(cls)):
            owners.setdefault(flag, []).append(name)
    return owners


def _family_from_args(args: list[str]) -> str:
    for i, tok in enumerate(args):
        if tok == "--attack" and i + 1 < len(args):
            return args[i + 1]
        if tok.startswith("--attack="):
            return tok.split("=", 1)[1]
    for i, tok in enumerate(args):  # the --config file may name the family
        value = args[i + 1] if tok == "--config" and i + 1 < len(args) else (
            tok.split("=", 1)[1] if tok.startswith("--config=") else None)
        if value:
            name = _family_in_file(Path(value))
            if name:
                return name
    return "sft"


def _family_in_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else __import__("yaml").safe_load(text)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the command itself
        return None
    return str(data["attack"]) if isinstance(data, dict) and data.get("attack") else None


def check_foreign_options(name: str, cls: type[AttackOptions], args: list[str]) -> None:
    """An option of another family (not of ``cls``): one line naming the family that owns it."""
    own = _flags(cls) | _flags(_extra_cls(cls)) | {"--config", "--help"}
    owners = _owners()
    for tok in args:
        if not tok.startswith("--"):
            continue
        flag = tok.split("=", 1)[0]
        if flag not in own and flag in owners:
            raise AlignkitError(f"{flag} belongs to {'/'.join(owners[flag])}, not {name}; see 'alignkit attack "
                                f"--attack {name} --help' for its options")


def family_command(name: str) -> Any:
    """The click command of family ``name`` (its config's fields as options)."""
    from alignkit.attacks import ATTACKS

    cls = config_class(name)
    families = ", ".join(ATTACKS.names())
    doc = (cls.__doc__ or "").strip()
    help_text = (f"{doc}\n\nAttack families: {families} (alignkit attack --attack NAME --help lists one family's "
                 "options).")
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    extra = _extra_cls(cls)
    if extra is not None:
        config_command(sub, cls, "attack", _run, help=help_text, extra_cls=extra)
    else:
        config_command(sub, cls, "attack", _run_family, help=help_text)
    return typer.main.get_command(sub)


def register(app: typer.Typer) -> None:
    @app.command("attack", add_help_option=False,
                 context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                   "allow_interspersed_args": False},
                 help="Attack a model at a growing budget and measure harmfulness (--attack NAME: sft (default), "
                      "sft-full, sft-lora, prefill, ...; --attack NAME --help lists that family's options).")
    def attack_command(ctx: typer.Context) -> Any:
        args = list(ctx.args)
        name = _family_from_args(args)
        cls = config_class(name)
        check_foreign_options(name, cls, args)
        cmd = family_command(name)
        return cmd.main(args=args, prog_name=ctx.command_path, standalone_mode=False)
