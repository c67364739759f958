"""Search spaces: a YAML file that declares which config fields a study searches, over what ranges.

Format (every key of ``params`` must be a field of the searched config, e.g. :class:`AttackConfig` for
``alignkit search attack`` or the defence's own config for ``alignkit search defence``)::

    params:
      lr:          {type: float, low: 1.0e-5, high: 3.0e-4, log: true}
      max_steps:   {type: int, low: 10, high: 50, step: 10}
      method:      {type: categorical, choices: [full, lora]}
      lora_r:      {type: int, low: 4, high: 32, log: true, when: {method: lora}}
    fixed:                     # fields set to one value in every trial (optional)
      eval_every: 1000

``type`` may be left out: ``choices`` means categorical; ``low``/``high`` are int when both are integers,
else float. ``when: {param: value}`` samples the parameter only in trials where that (categorical) parameter
took that value (otherwise the field keeps its default). Defence spaces may also hold an ``attacks`` list: the
attack grid run against every defended model (each item a mapping of AttackConfig fields).

Validation is strict and happens before anything is written: an unknown field, an empty or inverted range,
an empty choice list, a value the config rejects (checked at both ends of each range and for every choice)
are one-line :class:`AlignkitError` s.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alignkit.errors import AlignkitError

SPACES_DIR = Path(__file__).resolve().parent / "spaces"


class Param(BaseModel):
    """One searched config field."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"] = Field(description="distribution kind")
    low: Optional[float] = Field(None, description="lower end (inclusive) of a float/int range")
    high: Optional[float] = Field(None, description="upper end (inclusive) of a float/int range")
    log: bool = Field(False, description="sample on a log scale")
    step: Optional[float] = Field(None, description="grid step of an int/float range")
    choices: Optional[list[Any]] = Field(None, description="values of a categorical parameter")
    when: dict[str, Any] = Field(default_factory=dict, description="sample only when these (categorical) "
                                 "parameters took these values")


class Space(BaseModel):
    """A validated search space."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Param] = Field(default_factory=dict, description="searched fields")
    fixed: dict[str, Any] = Field(default_factory=dict, description="fields with one value in every trial")
    attacks: list[dict[str, Any]] = Field(default_factory=list, description="defence search: attack grid")
    source: str = Field("", description="file the space came from")

    def fingerprint(self) -> str:
        """sha256 of the space's content (not of where it came from): a study is tied to one space."""
        body = self.model_dump(mode="json", exclude={"source"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def sample(self, trial) -> dict[str, Any]:
        """Config values of one Optuna trial: the fixed ones plus one suggestion per active parameter."""
        values: dict[str, Any] = dict(self.fixed)
        chosen: dict[str, Any] = {}
        for name in _ordered(self.params):
            p = self.params[name]
            if any(chosen.get(k, _MISSING) != v for k, v in p.when.items()):
                continue
            if p.type == "categorical":
                v = trial.suggest_categorical(name, p.choices)
            elif p.type == "int":
                v = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                v = trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)
            chosen[name] = v
            values[name] = v
        return values


_MISSING = object()


def _ordered(params: dict[str, Param]) -> list[str]:
    """Parameters in an order where every ``when`` condition is sampled before the parameter it gates."""
    out: list[str] = []
    pending = list(params)
    while pending:
        progressed = False
        for name in list(pending):
            if all(k in out for k in params[name].when):
                out.append(name)
                pending.remove(name)
                progressed = True
        if not progressed:
            raise AlignkitError(f"search space: circular 'when' conditions among {', '.join(pending)}")
    return out


#: the largest magnitude of an int parameter's range or of a fixed whole number (steps, samples, ranks ...)
MAX_INT = 2**31 - 1


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise AlignkitError(f"search space: {what} must be a number, got {x!r}")
    if not math.isfinite(x):
        raise AlignkitError(f"search space: {what} must be a finite number, got {x!r}")
    return x


def _int_only(config_cls: type[BaseModel], name: str) -> bool:
    """True when the config field takes whole numbers only (``int``, ``Optional[int]``, a constrained int)."""
    import typing

    ann = config_cls.model_fields[name].annotation
    kinds = {a for a in (typing.get_args(ann) or (ann,)) if a is not type(None)}
    return bool(kinds) and all(k is int for k in kinds)


def parse_space(raw: Any, config_cls: type[BaseModel], *, source: str = "",
                base: Optional[dict[str, Any]] = None, allow_attacks: bool = False,
                reserved: Optional[dict[str, str]] = None) -> Space:
    """Validate a space mapping against ``config_cls`` (every value must be accepted by the config, built from
    ``base`` plus that value). ``reserved``: fields the search sets itself (name -> why), refused in the space."""
    where = f" in {source}" if source else ""
    if not isinstance(raw, dict):
        raise AlignkitError(f"search space{where} must be a mapping with 'params' (and optionally 'fixed')")
    unknown_top = set(raw) - ({"params", "fixed", "attacks"} if allow_attacks else {"params", "fixed"})
    if unknown_top:
        raise AlignkitError(f"search space{where}: unknown section(s) {', '.join(sorted(unknown_top))}; use "
                            + ("params, fixed, attacks" if allow_attacks else "params, fixed"))
    params_raw = raw.get("params") or {}
    fixed = raw.get("fixed") or {}
    if not isinstance(params_raw, dict) or not isinstance(fixed, dict):
        raise AlignkitError(f"search space{where}: 'params' and 'fixed' must be mappings")
    if not params_raw:
        raise AlignkitError(f"search space{where} declares no parameters under 'params'")
    fields = set(config_cls.model_fields)
    unknown = sorted((set(params_raw) | set(fixed)) - fields)
    if unknown:
        raise AlignkitError(f"search space{where}: unknown parameter(s) {', '.join(unknown)}; "
                            f"{config_cls.__name__} fields are: {', '.join(sorted(fields))}")
    taken = [k for k in [*params_raw, *fixed] if k in (reserved or {})]
    if taken:
        raise AlignkitError(f"search space{where}: {taken[0]} cannot be searched or fixed in a space "
                            f"({reserved[taken[0]]}); remove it")
    attacks_raw = raw.get("attacks")
    if attacks_raw is None:
        attacks_raw = []
    if not isinstance(attacks_raw, list):
        name = Path(source).name if source else "the search space"
        raise AlignkitError(f"'attacks' in {name} must be a list of attack settings (each a mapping of attack "
                            "options, e.g. - {lr: 1.0e-4, max_steps: 10})")
    for i, item in enumerate(attacks_raw):
        if not isinstance(item, dict):
            raise AlignkitError(f"search space{where}: attacks[{i}] must be a mapping of attack options, got "
                                f"{item!r}"[:300])
    for k, v in fixed.items():
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise AlignkitError(f"search space{where}: fixed {k} = {v} is too large (at most {MAX_INT})")
        if isinstance(v, float) and not math.isfinite(v):
            raise AlignkitError(f"search space{where}: fixed {k} must be a finite number, got {v!r}")
    both = sorted(set(params_raw) & set(fixed))
    if both:
        raise AlignkitError(f"search space{where}: {', '.join(both)} both searched and fixed; keep one")
    params: dict[str, Param] = {}
    for name, spec in params_raw.items():
        if not isinstance(spec, dict):
            raise AlignkitError(f"search space{where}: parameter {name} must be a mapping like "
                                "{low: 1, high: 10} or {choices: [a, b]}")
        spec = dict(spec)
        if "type" not in spec:
            if "choices" in spec:
                spec["type"] = "categorical"
            elif isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int) \
                    and not isinstance(spec.get("low"), bool):
                spec["type"] = "int"
            else:
                spec["type"] = "float"
        try:
            p = Param(**spec)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise AlignkitError(f"search space{where}: parameter {name}: {'.'.join(map(str, e['loc']))}: "
                                f"{e['msg']}") from None
        if p.type == "categorical":
            if not p.choices:
                raise AlignkitError(f"search space{where}: parameter {name} has an empty choice list")
            if p.low is not None or p.high is not None:
                raise AlignkitError(f"search space{where}: parameter {name} is categorical; drop low/high")
        else:
            if p.low is None or p.high is None:
                raise AlignkitError(f"search space{where}: parameter {name} needs low and high")
            lo, hi = _num(p.low, f"{name}.low"), _num(p.high, f"{name}.high")
            if lo > hi:
                raise AlignkitError(f"search space{where}: parameter {name} has an inverted range "
                                    f"(low {lo:g} > high {hi:g}); swap them")
            if lo == hi:
                raise AlignkitError(f"search space{where}: parameter {name} has an empty range (low = high = "
                                    f"{lo:g}); put it under 'fixed' instead")
            if p.log and lo <= 0:
                raise AlignkitError(f"search space{where}: parameter {name} is log-scaled but low is {lo:g}; "
                                    "use a positive low")
            if p.type == "int" and (lo != int(lo) or hi != int(hi)):
                raise AlignkitError(f"search space{where}: parameter {name} is int but its range is not")
            whole = _int_only(config_cls, name)
            if (p.type == "int" or whole) and max(abs(lo), abs(hi)) > MAX_INT:
                raise AlignkitError(f"search space{where}: parameter {name} has an absurd range ({lo:g} to "
                                    f"{hi:g}); whole-number ranges must stay within +-{MAX_INT}")
            if p.type == "float" and whole:
                raise AlignkitError(f"search space{where}: parameter {name} takes whole numbers; give integer "
                                    "low and high (or type: int)")
            if p.step is not None and (p.step <= 0 or p.log):
                raise AlignkitError(f"search space{where}: parameter {name}: step must be > 0 and not with log")
            if p.step is not None and p.step > hi - lo:
                raise AlignkitError(f"search space{where}: parameter {name}: step {p.step:g} is wider than the "
                                    "range")
        params[name] = p
    for name, p in params.items():
        for k, v in p.when.items():
            if k not in params or params[k].type != "categorical":
                raise AlignkitError(f"search space{where}: {name}.when refers to {k!r}, which is not a "
                                    "categorical parameter of this space")
            if v not in (params[k].choices or []):
                raise AlignkitError(f"search space{where}: {name}.when: {v!r} is not a choice of {k}")
    space = Space(params=params, fixed=fixed, attacks=list(attacks_raw), source=source)
    _ordered(params)
    _check_values(space, config_cls, base or {}, where)
    return space


def _check_values(space: Space, config_cls: type[BaseModel], base: dict[str, Any], where: str) -> None:
    """Every range end / choice / fixed value must be accepted by the config."""
    from alignkit.config import validation_message

    probes: list[tuple[str, Any]] = [(k, v) for k, v in space.fixed.items()]
    for name, p in space.params.items():
        if p.type == "categorical":
            probes += [(name, c) for c in p.choices or []]
        else:
            cast = int if p.type == "int" else float
            probes += [(name, cast(p.low)), (name, cast(p.high))]
    for name, value in probes:
        try:
            config_cls(**{**base, **space.fixed, name: value})
        except ValidationError as exc:
            raise AlignkitError(f"search space{where}: {name} = {value!r} is not accepted: "
                                f"{validation_message(exc).removeprefix('invalid option ')}") from None


def load_space_file(path: str | Path, config_cls: type[BaseModel], *, base: Optional[dict[str, Any]] = None,
                    allow_attacks: bool = False, reserved: Optional[dict[str, str]] = None) -> Space:
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise AlignkitError(f"search space file {str(p)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except Exception as exc:  # yaml errors are not ValueErrors
        raise AlignkitError(f"could not parse search space {str(p)!r}: {str(exc).splitlines()[0][:150]}") from None
    return parse_space(raw, config_cls, source=str(p), base=base, allow_attacks=allow_attacks, reserved=reserved)


def default_space_file(kind: str, preset: Optional[str] = None) -> Path:
    """The shipped space of ``kind`` (``attack``), for ``preset`` if it has one. (A defence's space lives next to
    the defence: :meth:`alignkit.defences.base.Defence.search_space_file`.)"""
    if preset:
        f = SPACES_DIR / f"{kind}-{preset}.yaml"
        if f.is_file():
            return f
    f = SPACES_DIR / f"{kind}.yaml"
    if not f.is_file():
        raise AlignkitError(f"no default search space for {kind}; give one with --space FILE "
                            "(see docs/search.md for the format)")
    return f
