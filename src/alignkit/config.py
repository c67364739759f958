"""Configs double as the CLI (the TRL way): a pydantic model whose fields all have a default and a
``description`` becomes a typer command with one ``--option`` per field (help text = description).

Also loads a config from a YAML/JSON file (``--config FILE``); command-line options override the file.
"""

from __future__ import annotations

import inspect
import json
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from alignkit.errors import AlignkitError

C = TypeVar("C", bound=BaseModel)


def _option_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _option_type(args[0]) if typing.get_origin(args[0]) is list else args[0]
    if origin is typing.Literal:
        return str
    if origin is list:
        inner = args[0] if args else str
        if typing.get_origin(inner) is typing.Literal:
            inner = str
        return list[inner]
    return annotation


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        parts.append(f"--{loc.replace('_', '-')}: {err['msg']}")
    return "invalid option " + "; ".join(parts)


def build_config(cls: type[C], values: dict[str, Any], config_file: Path | None = None) -> C:
    data: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.exists():
            raise AlignkitError(f"config file {str(config_file)!r} does not exist")
        try:
            text = config_file.read_text(encoding="utf-8")
            if config_file.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except (ValueError, UnicodeDecodeError, Exception) as exc:  # yaml errors are not ValueErrors
            raise AlignkitError(f"could not parse config file {str(config_file)!r}: "
                                f"{str(exc).splitlines()[0][:150]}") from None
        if not isinstance(data, dict):
            raise AlignkitError(f"config file {str(config_file)!r} must hold a mapping of option: value")
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise AlignkitError(f"config file has unknown keys: {', '.join(sorted(unknown))}")
    data.update({k: v for k, v in values.items() if v is not None})
    try:
        return cls(**data)
    except ValidationError as exc:
        raise AlignkitError(validation_message(exc)) from None


def config_command(app: typer.Typer, cls: type[C], name: str, run: Callable[[C], Any], help: str = "",
                   extra: dict[str, tuple[Any, Any]] | None = None) -> None:
    """Register ``name`` on ``app``: options from ``cls`` fields, then ``run(config, **extra)``.

    ``extra`` maps parameter name -> (annotation, typer.Option(...)) for options that are not config fields.
    """
    params = [inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[Path],
                                default=typer.Option(None, "--config", help="YAML/JSON file with options; "
                                                     "command-line options override it"))]
    for fname, field in cls.model_fields.items():
        ann = _option_type(field.annotation)
        default = field.default if field.default_factory is None else field.default_factory()
        if isinstance(default, Enum):
            default = default.value
        opt_names = [f"--{fname.replace('_', '-')}"]
        if ann is bool:
            opt_names = [f"--{fname.replace('_', '-')}/--no-{fname.replace('_', '-')}"]
        params.append(inspect.Parameter(
            fname, inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[ann],
            default=typer.Option(None, *opt_names, help=f"{field.description or ''} [default: {default}]",
                                 show_default=False)))
    for pname, (ann, opt) in (extra or {}).items():
        params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=opt))

    def command(**kwargs: Any) -> Any:
        config_file = kwargs.pop("config_file", None)
        extras = {k: kwargs.pop(k) for k in list(kwargs) if k not in cls.model_fields}
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
        values = {k: v for k, v in values.items() if v not in (None, [])}
        cfg = build_config(cls, values, config_file)
        return run(cfg, **extras)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name.replace("-", "_")
    command.__doc__ = help or (cls.__doc__ or "")
    app.command(name, help=help or cls.__doc__)(command)
