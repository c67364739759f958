"""``alignkit defend --defence NAME [options]``: one command whose options are the union of every defence
config's fields (an option that does not apply to the chosen defence is a one-line error). Unset options take
the chosen defence's default."""

from __future__ import annotations

from typing import Any, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from alignkit.errors import AlignkitError


def _union_config() -> type[BaseModel]:
    from alignkit.defences import DEFENCES

    fields: dict[str, Any] = {}
    owners: dict[str, list[str]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    descriptions: dict[str, str] = {}
    annotations: dict[str, Any] = {}
    for name in DEFENCES.names():
        cls = DEFENCES.get(name).config_class
        for fname, f in cls.model_fields.items():
            if fname == "defence":
                continue
            owners.setdefault(fname, []).append(name)
            d = f.default if f.default_factory is None else f.default_factory()
            defaults.setdefault(fname, {})[name] = d
            descriptions.setdefault(fname, f.description or "")
            annotations.setdefault(fname, f.annotation)
    all_names = DEFENCES.names()
    for fname, ann in annotations.items():
        ds = defaults[fname]
        vals = {repr(v) for v in ds.values()}
        desc = descriptions[fname]
        if len(owners[fname]) < len(all_names):
            desc += f" ({', '.join(owners[fname])} only)"
        if len(vals) > 1:  # the most common default, then the defences that differ from it
            from collections import Counter

            common = Counter(repr(v) for v in ds.values()).most_common(1)[0][0]
            base = next(v for v in ds.values() if repr(v) == common)
            shown = f"{base}; " + ", ".join(f"{k} {v}" for k, v in ds.items() if repr(v) != common)
        else:
            shown = str(next(iter(ds.values())))
        # the help shows the chosen defence's default, not the None that means "not given"
        fields[fname] = (Optional[ann], Field(None, description=desc, json_schema_extra={"cli_default": shown}))
    fields = {"defence": (str, Field("repnoise", description="defence to train: " + ", ".join(all_names))),
              **fields}
    model = create_model("DefendOptions", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields)
    model.__doc__ = "Train an immunization defence and save the defended model as a plain HF folder."
    return model


def run_defend(options: BaseModel) -> None:
    from alignkit.config import validation_message
    from alignkit.defences import DEFENCES, defend

    spec = DEFENCES.get(options.defence)
    cls = spec.config_class
    values = {k: v for k, v in options.model_dump().items() if v is not None and k != "defence"}
    foreign = sorted(k for k in values if k not in cls.model_fields)
    if foreign:
        raise AlignkitError(f"option(s) {', '.join('--' + k.replace('_', '-') for k in foreign)} do not apply to "
                            f"--defence {options.defence}")
    try:
        cfg = cls(defence=options.defence, **values)
    except ValidationError as exc:
        raise AlignkitError(validation_message(exc)) from None
    path = defend(cfg)
    from alignkit.training import is_main_process

    if is_main_process():
        print(str(path))


def register(app: typer.Typer) -> None:
    from alignkit.config import config_command

    config_command(app, _union_config(), "defend", run_defend,
                   help="Train an immunization defence (--defence repnoise|adversarial-loss|gradient-ascent|"
                        "safety-sft|security-vectors|vaccine) and save the defended model as a plain Hugging "
                        "Face folder with a model card; prints its path. Re-running the same command resumes.")

