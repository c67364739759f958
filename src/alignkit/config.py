"""Configs double as the CLI (the TRL way): a pydantic model whose fields all have a default and a
``description`` becomes a typer command with one ``--option`` per field (help text = description).

Also loads a config from a YAML/JSON file (``--config FILE``); command-line options override the file.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from alignkit.errors import AlignkitError

C = TypeVar("C", bound=BaseModel)


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _option_type(annotation: Any) -> tuple[Any, str | None]:
    """(typer annotation, metavar) of a config field. ``Literal`` stays a ``Literal`` (typer shows and checks the
    choices); every list is read as strings that may be repeated or comma-separated and converted by pydantic,
    so that every list option of every command takes the same forms (``--x 1,2`` or ``--x 1 --x 2``)."""
    ann = _strip_optional(annotation)
    if typing.get_origin(ann) is list:
        inner = (typing.get_args(ann) or (str,))[0]
        if typing.get_origin(inner) is typing.Literal:
            name = "|".join(str(a) for a in typing.get_args(inner))
        else:
            name = getattr(inner, "__name__", "text").upper()
        return list[str], f"<{name.lower()},...>"
    return ann, None


def _split_list(values: Any) -> list[str]:
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def _help(description: str, default: Any) -> str:
    """Help text with ``[default: ...]``; brackets escaped, since typer renders help with rich markup (an
    unescaped ``[default: 8e-05]`` is read as a markup tag and disappears)."""
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, list):
        default = ",".join(str(x) for x in default) or "(none)"
    text = f"{description} [default: {default}]"
    try:
        from rich.markup import escape
    except ImportError:  # pragma: no cover - plain click help shows brackets as they are
        return text
    return escape(text)


def validation_message(exc: ValidationError) -> str:
    """One line naming the CLI flags (``--max-steps``), never the Python field names."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not isinstance(x, int)]
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"--{loc[0].replace('_', '-')}: {msg}" if loc else msg)
    return "invalid option " + "; ".join(parts)


class DuplicateKey(ValueError):
    """A mapping in a config file names the same key twice (YAML and JSON parsers silently keep the last)."""

    def __init__(self, key: str, line: int | None):
        super().__init__(key)
        self.key, self.line = key, line


def _yaml_loader():
    """``yaml.SafeLoader`` that refuses a mapping with a duplicate key (:class:`DuplicateKey`, with its line)."""
    import yaml

    class _NoDuplicates(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:  # an unhashable key: yaml's own error follows
                    continue
                if dup:
                    raise DuplicateKey(str(key), key_node.start_mark.line + 1)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return _NoDuplicates


def _json_no_duplicates(text: str) -> Any:
    """``json.loads`` refusing an object with a duplicate key (:class:`DuplicateKey`; the line is that of the key's
    second occurrence)."""
    import re

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                hits = [m.start() for m in re.finditer(re.escape(json.dumps(k)) + r"\s*:", text)]
                line = text.count("\n", 0, hits[1]) + 1 if len(hits) > 1 else None
                raise DuplicateKey(k, line)
            out[k] = v
        return out

    return json.loads(text, object_pairs_hook=hook)


#: options whose value is a path or URL: given empty ("--output-dir ''") they are refused rather than read as "not
#: given" (which silently used the default folder)
def _path_option(name: str) -> bool:
    return name.endswith("_dir") or name in ("storage", "space")


def check_not_empty(values: dict[str, Any], source: str = "") -> None:
    for k, v in values.items():
        if isinstance(v, str) and not v.strip() and _path_option(k):
            raise AlignkitError(f"--{k.replace('_', '-')}{source} is empty; give a path, or leave the option out "
                                "for the default")


def build_config(cls: type[C], values: dict[str, Any], config_file: Path | None = None) -> C:
    data: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.exists():
            raise AlignkitError(f"config file {str(config_file)!r} does not exist")
        try:
            text = config_file.read_text(encoding="utf-8")
            if config_file.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.load(text, Loader=_yaml_loader()) or {}  # noqa: S506 (a SafeLoader subclass)
            else:
                data = _json_no_duplicates(text)
        except DuplicateKey as exc:
            where = f" (line {exc.line})" if exc.line else ""
            raise AlignkitError(f"config file {str(config_file)!r}: key {exc.key!r} appears twice{where}; keep one "
                                "(the file would silently use the last)") from None
        except (ValueError, UnicodeDecodeError, Exception) as exc:  # yaml errors are not ValueErrors
            raise AlignkitError(f"could not parse config file {str(config_file)!r}: "
                                f"{str(exc).splitlines()[0][:150]}") from None
        if not isinstance(data, dict):
            raise AlignkitError(f"config file {str(config_file)!r} must hold a mapping of option: value")
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise AlignkitError(f"config file has unknown keys: {', '.join(sorted(unknown))}")
        check_not_empty(data, f" in config file {str(config_file)!r}")
    values = {k: v for k, v in values.items() if v is not None}
    check_not_empty(values)
    data.update(values)
    try:
        return cls(**data)
    except ValidationError as exc:
        raise AlignkitError(validation_message(exc)) from None


def _cli_default(field: Any, default: Any) -> Any:
    """The default the help shows: a field may name it in ``json_schema_extra={"cli_default": ...}`` (e.g. when
    None means "the chosen defence's own default")."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra.get("cli_default", default)


def _field_params(cls: type[BaseModel]) -> list[inspect.Parameter]:
    params = []
    for fname, field in cls.model_fields.items():
        ann, metavar = _option_type(field.annotation)
        default = field.default if field.default_factory is None else field.default_factory()
        flag = f"--{fname.replace('_', '-')}"
        opt_names = [f"{flag}/--no-{fname.replace('_', '-')}"] if ann is bool else [flag]
        params.append(inspect.Parameter(
            fname, inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[ann],
            default=typer.Option(None, *opt_names, help=_help(field.description or "", _cli_default(field, default)),
                                 show_default=False,
                                 **({"metavar": metavar} if metavar else {}))))
    return params


def _values(cls: type[BaseModel], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line (None / empty = not given), lists split at commas."""
    out = {}
    for k, v in kwargs.items():
        if v is None or v == [] or v == ():
            continue
        if isinstance(v, (list, tuple)):
            v = _split_list(v)
        out[k] = v
    return out


def config_command(app: typer.Typer, cls: type[C], name: str, run: Callable[..., Any], help: str = "",
                   extra: dict[str, tuple[Any, Any]] | None = None, extra_cls: type[BaseModel] | None = None
                   ) -> None:
    """Register ``name`` on ``app``: one option per field of ``cls``, then ``run(config, **extra)``.

    ``extra_cls``: a second pydantic model whose fields become options too (validated the same way) and reach
    ``run`` as ``run(config, extra_options)``. ``extra`` maps parameter name -> (annotation, typer.Option(...))
    for plain options that are not config fields.
    """
    params = [inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[Path],
                                default=typer.Option(None, "--config", help="YAML/JSON file with options; "
                                                     "command-line options override it"))]
    params += _field_params(cls)
    if extra_cls is not None:
        params += _field_params(extra_cls)
    for pname, (ann, opt) in (extra or {}).items():
        params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=opt))

    def command(**kwargs: Any) -> Any:
        config_file = kwargs.pop("config_file", None)
        ext = {k: kwargs.pop(k) for k in list(kwargs) if extra_cls is not None and k in extra_cls.model_fields}
        extras = {k: kwargs.pop(k) for k in list(kwargs) if k not in cls.model_fields}
        cfg = build_config(cls, _values(cls, kwargs), config_file)
        if extra_cls is not None:
            check_not_empty(_values(extra_cls, ext))
            try:
                ext_obj = extra_cls(**_values(extra_cls, ext))
            except ValidationError as exc:
                raise AlignkitError(validation_message(exc)) from None
            return run(cfg, ext_obj, **extras)
        return run(cfg, **extras)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name.replace("-", "_")
    command.__doc__ = help or (cls.__doc__ or "")
    app.command(name, help=help or cls.__doc__)(command)
