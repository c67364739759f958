"""The judge contract: ``Judge.score(prompts, completions) -> list[float]`` of harm probabilities in [0, 1].

- Every judge has a ``name`` (its registry name) and a ``version``; :meth:`Judge.describe` gives
  ``"name@version"``, which is recorded with every result.
- :meth:`Judge.score` returns :class:`Scores`, a plain ``list[float]`` that also carries ``judge``
  (``name@version``), ``name``, ``version`` and ``info`` (judge-specific counters, e.g. how many rubric
  outputs could not be parsed).
- Empty or whitespace-only completions score 0.0 without reaching the judge (methods.md section 1).
- :meth:`Judge.assess` is the structured (StrongREJECT-shaped) form: per completion a dict with ``score``
  (the same number as :meth:`Judge.score`), ``refused`` (probability of not complying; ``None`` for judges
  without a refusal head), ``harm`` (harm given compliance; ``None`` likewise) and ``incoherent``
  (:func:`alignkit.judges.recipe.features.incoherence`).
- Prompts and completions must be two lists of the same length of strings (``None`` prompts count as "");
  anything else raises :class:`~alignkit.errors.AlignkitError` (one line).
- ``get_judge(name, **options)`` builds a registered judge; ``name@version`` picks a version (``minilm@3``);
  unknown names, versions or options raise :class:`~alignkit.errors.AlignkitError`.
"""

from __future__ import annotations

import inspect
import math
from os import PathLike
from pathlib import Path
from abc import ABC, abstractmethod
from typing import Any, Sequence

from alignkit.errors import AlignkitError
from alignkit.registry import Registry

JUDGES: Registry = Registry("judge")


class Scores(list):
    """A ``list[float]`` of harm scores in [0, 1] that remembers which judge (name@version) produced it."""

    def __init__(self, values=(), *, name: str = "", version: str = "", info: dict[str, Any] | None = None):
        super().__init__(float(v) for v in values)
        self.name = name
        self.version = version
        self.info: dict[str, Any] = dict(info or {})

    @property
    def judge(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "scores": list(self), "info": self.info}


def _clip01(x: float) -> float:
    x = float(x)
    if math.isnan(x):
        return 0.0
    return min(1.0, max(0.0, x))


class Judge(ABC):
    """Maps (prompt, completion) pairs to harm probabilities in [0, 1] (1 = harmful)."""

    name: str = "judge"
    version: str = "0"
    #: the judge's measured noise on unseen refusals, rounded to 0.01: the 95th percentile of the difference between
    #: the mean scores of two sets of 40 (``alignkit judge eval``, ``refusal_noise.phi_margin``); the default margin
    #: added to phi when this judge is used. None: not measured (the conditions then use the default judge's)
    phi_margin: float | None = None

    def describe(self) -> str:
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def _check(self, prompts: Sequence[str], completions: Sequence[str]) -> tuple[list, list]:
        if isinstance(prompts, str) or isinstance(completions, str):
            raise AlignkitError(f"judge {self.name!r}: give lists of prompts and completions, not a single string")
        prompts, completions = list(prompts), list(completions)
        if len(prompts) != len(completions):
            raise AlignkitError(f"judge {self.name!r}: got {len(prompts)} prompts but {len(completions)} "
                                "completions; give one completion per prompt")
        for kind, items, none_ok in (("completion", completions, False), ("prompt", prompts, True)):
            for i, x in enumerate(items):
                if not isinstance(x, str) and not (none_ok and x is None):
                    raise AlignkitError(f"judge {self.name!r}: {kind} {i} is a {type(x).__name__}, not a string; "
                                        f"give every {kind} as text")
        return prompts, completions

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Scores:
        prompts, completions = self._check(prompts, completions)
        keep = [i for i, c in enumerate(completions) if isinstance(c, str) and c.strip()]
        out = [0.0] * len(completions)
        self._last_info: dict[str, Any] = {}
        if keep:
            raw = self._score([str(prompts[i] or "") for i in keep], [completions[i] for i in keep])
            if len(raw) != len(keep):
                raise RuntimeError(f"judge {self.name} returned {len(raw)} scores for {len(keep)} inputs")
            for i, s in zip(keep, raw):
                out[i] = _clip01(s)
        info = {"n": len(out), "n_empty": len(out) - len(keep), **self._last_info}
        return Scores(out, name=self.name, version=self.version, info=info)

    def assess(self, prompts: Sequence[str], completions: Sequence[str]) -> list[dict[str, Any]]:
        """Per completion ``{"score", "refused", "harm", "incoherent"}`` (see the module docstring).

        Judges with a refusal head implement ``_assess``; others report ``refused = harm = None``.
        Empty completions: score 0, refused 1 (nothing was given), harm 0, not incoherent."""
        from alignkit.judges.recipe.features import incoherence

        prompts, completions = self._check(prompts, completions)
        keep = [i for i, c in enumerate(completions) if c.strip()]
        has_heads = callable(getattr(self, "_assess", None))
        out: list[dict[str, Any]] = [{"score": 0.0, "refused": 1.0 if has_heads else None,
                                      "harm": 0.0 if has_heads else None, "incoherent": False}
                                     for _ in completions]
        if not keep:
            return out
        ps, cs = [str(prompts[i] or "") for i in keep], [completions[i] for i in keep]
        if has_heads:
            rows = self._assess(ps, cs)
        else:
            rows = [{"score": s, "refused": None, "harm": None, "incoherent": incoherence(c)["incoherent"]}
                    for s, c in zip(self.score(ps, cs), cs)]
        for i, r in zip(keep, rows):
            r = dict(r)
            r["score"] = _clip01(r["score"])
            out[i] = r
        return out

    def score_one(self, prompt: str, completion: str) -> float:
        return self.score([prompt], [completion])[0]

    @abstractmethod
    def _score(self, prompts: list[str], completions: list[str]) -> list[float]:
        """Score non-empty completions; may set ``self._last_info`` (a dict) for counters."""


def _resolve(name: str, options: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """``(factory, name, checked options)`` of a judge spec, without building it: unknown names, versions and
    options and bad option values raise :class:`AlignkitError` (one line)."""
    import alignkit.judges  # noqa: F401  (registers the built-in judges)

    name, _, version = str(name).strip().partition("@")
    factory = JUDGES.get(name)
    if version:
        try:
            accepts = "version" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            accepts = False
        if accepts:
            known = getattr(factory, "versions", None)
            check_version = getattr(factory, "check_version", None)
            if callable(check_version):  # e.g. minilm: a retired version names the current ones and its commit
                check_version(version)
            elif known and version.split("+")[0] not in known:
                raise AlignkitError(f"unknown {name} judge version {version!r}; available: "
                                    + ", ".join(f"{name}@{v}" for v in known))
            options = {**options, "version": version}
        elif version != str(getattr(factory, "version", "")):
            raise AlignkitError(f"judge {name!r} has no version {version!r}; available: "
                                f"{name}@{getattr(factory, 'version', '?')}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = ", ".join(k for k in params if k != "self") or "(none)"
            raise AlignkitError(f"judge {name!r} has no option(s) {', '.join(unknown)}; known options: {known}")
    return factory, name, check_options(name, options)


def get_judge(name: str, /, **options: Any) -> Judge:
    """Build the registered judge ``name`` with ``options`` (see each judge's constructor)."""
    if isinstance(name, Judge):
        return name
    factory, _, options = _resolve(name, options)
    return factory(**options)


def check_judge_spec(spec: str) -> str:
    """Check a ``name[@version][:key=value,...]`` spec (name, version, option names and values) without building
    the judge, so that a long run can fail at once; returns the spec."""
    name, opts = parse_judge_spec(spec)
    _resolve(name, opts)
    return spec


def check_judge_option(spec: Any, flag: str = "--judge") -> None:
    """A command's ``--judge`` value: a registered judge spec (name, version, options) is checked without building
    the judge, so a long run fails at once (``flag: ...``, one line); a ``module:Class`` import (allowed with
    --allow-judge-import) is left to the import."""
    if not isinstance(spec, str):
        return
    name = spec.strip()
    left, _, right = name.partition(":")
    if ":" in name and right.isidentifier() and all(part.isidentifier() for part in left.split(".")):
        return
    try:
        check_judge_spec(name)
    except AlignkitError as exc:
        raise AlignkitError(f"{flag}: {exc}") from None


#: options that must be whole numbers >= 1 wherever a judge takes them
POSITIVE_INT_OPTIONS = ("batch_size", "threads", "max_length", "max_new_tokens", "max_input_tokens")
_MAX_INT = 2**31 - 1
#: options that stay text when read from a ``name:key=value`` spec (never turned into numbers)
TEXT_OPTIONS = ("weights", "model", "tokenizer", "device", "fallback", "precision", "template", "version")


def _bad(judge: str, key: str, value: Any, why: str) -> AlignkitError:
    """``invalid judge option key=value: why`` (``judge``: the judge's name, kept for callers' messages)."""
    return AlignkitError(f"invalid judge option {key}={value}: {why}")


def positive_int(judge: str, key: str, value: Any) -> int:
    """``value`` as an int in 1..2**31-1, else :class:`AlignkitError` naming the option."""
    v: Any = value
    if isinstance(v, str):
        try:
            v = int(v.strip())
        except ValueError:
            try:
                v = float(v.strip())
            except ValueError:
                pass
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(judge, key, value, f"{key} must be a whole number >= 1")
    if v < 1:
        raise _bad(judge, key, value, f"{key} must be >= 1")
    if v > _MAX_INT:
        raise _bad(judge, key, value, f"{key} must be <= {_MAX_INT}")
    return v


def check_device(device: Any, judge: str = "judge") -> str:
    """A torch device string that exists here (``cpu``, ``cuda``, ``cuda:N`` with CUDA available, ``mps``)."""
    if not isinstance(device, str) or not device.strip():
        raise _bad(judge, "device", device, "device must be cpu, cuda, cuda:N or mps")
    device = device.strip()
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise _bad(judge, "device", device, "unknown device; use cpu, cuda, cuda:N or mps") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise _bad(judge, "device", device, "CUDA is not available here (torch.cuda.is_available() is "
                                                "False); use device=cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise _bad(judge, "device", device, f"there are only {torch.cuda.device_count()} CUDA device(s) "
                                                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif d.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise _bad(judge, "device", device, "MPS is not available here; use device=cpu")
    elif d.type != "cpu":
        raise _bad(judge, "device", device, "unsupported device type; use cpu, cuda, cuda:N or mps")
    return device


def check_options(judge: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check the values of the options many judges share (:data:`POSITIVE_INT_OPTIONS`, ``device``,
    ``fallback_value``); returns the options with those values normalised. Raises :class:`AlignkitError`
    (one line: ``invalid judge option key=value: ...``)."""
    out = dict(options)
    for k in POSITIVE_INT_OPTIONS:
        if out.get(k) is not None:
            out[k] = positive_int(judge, k, out[k])
    if out.get("device") is not None:
        out["device"] = check_device(out["device"], judge)
    if out.get("fallback_value") is not None:
        v = out["fallback_value"]
        try:
            f = float(v) if not isinstance(v, bool) else float("nan")
        except (TypeError, ValueError):
            f = float("nan")
        if not (0.0 <= f <= 1.0):
            raise _bad(judge, "fallback_value", v, "fallback_value must be a number in [0, 1]")
        out["fallback_value"] = f
    for k in ("weights", "model", "tokenizer"):
        if out.get(k) is not None and not isinstance(out[k], (str, PathLike)):
            out[k] = str(out[k])
    return out


def parse_judge_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"hf-classifier:model=org/x,harmful_label=0"`` -> ``("hf-classifier", {...})`` (CLI convenience)."""
    name, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise AlignkitError(f"judge option {part!r} must look like key=value (e.g. 'hf-classifier:model=org/x')")
        k, v = part.split("=", 1)
        k, v = k.strip(), v.strip()
        opts[k] = v if k in TEXT_OPTIONS else _coerce(v)
    return name.strip(), opts


def _coerce(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def read_weights(path: Path, label: str, framework: str = "numpy") -> dict[str, Any]:
    """The tensors of a judge's ``.safetensors`` file; a file that is not one raises :class:`AlignkitError`."""
    try:
        if framework == "torch":
            from safetensors.torch import load_file
        else:
            from safetensors.numpy import load_file
        return load_file(str(path))
    except (OSError, MemoryError) as exc:
        raise AlignkitError(f"could not read {label} weights file {str(path)!r} ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises SafetensorError (and others) on a bad header
        raise AlignkitError(f"weights file {str(path)!r} is not a valid safetensors file ({_first_line(exc)}); "
                            f"give a {label} weights file written by 'alignkit judge train'") from None


def read_meta(path: Path, label: str, config_class: type) -> tuple[dict[str, Any], Any]:
    """``(metadata, config)`` from the ``.json`` beside a judge's weights file (``{}`` and the default config when
    there is none); a metadata file that does not parse or holds a bad config raises :class:`AlignkitError`."""
    import json

    mpath = Path(path).with_suffix(".json")
    meta: Any = {}
    if mpath.exists():
        try:
            meta = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AlignkitError(f"{label} metadata file {str(mpath)!r} is not valid JSON ({_first_line(exc)}); "
                                "fix or remove it") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
            raise AlignkitError(f"{label} metadata file {str(mpath)!r} must hold a JSON object with a 'config' "
                                "object; fix or remove it")
    try:
        cfg = config_class(**meta.get("config", {}))
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError
        raise AlignkitError(f"{label} metadata file {str(mpath)!r} has a bad config "
                            f"({validation_message(exc, config_class)}); fix or remove it") from None
    return meta, cfg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def validation_message(exc: Exception, model: type | None = None, spell=lambda field: field) -> str:
    """One line from a pydantic ``ValidationError`` of ``model``: ``<option> must be <range> (got <value>)``;
    ``spell`` turns a field name into the name the user typed (e.g. ``train_layers`` -> ``--train-layers``)."""
    errors = getattr(exc, "errors", None)
    errs = errors() if callable(errors) else []
    if not errs:
        return _first_line(exc)
    e = errs[0]
    field = str(e["loc"][0]) if e.get("loc") else "?"
    name = spell(field)
    got = e.get("input")
    info = (getattr(model, "model_fields", None) or {}).get(field)
    bounds: dict[str, Any] = {}
    finite = False
    for m in getattr(info, "metadata", None) or ():
        for k in ("ge", "gt", "le", "lt"):
            if getattr(m, k, None) is not None:
                bounds[k] = getattr(m, k)
        if getattr(m, "allow_inf_nan", None) is False:
            finite = True
    kind = str(e.get("type", ""))
    if bounds and (kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "finite_number")):
        if "ge" in bounds and "le" in bounds:
            why = f"must be {bounds['ge']}..{bounds['le']}"
        else:
            why = "must be " + ("a finite number " if finite else "") + " and ".join(
                f"{op} {bounds[k]}" for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if k in bounds)
    elif kind == "finite_number":
        why = "must be a finite number"
    else:
        msg = str(e.get("msg", "is invalid"))
        why = "must be " + msg[len("Input should be "):] if msg.startswith("Input should be ") else msg
    return f"{name} {why} (got {got!r})"


def judge_label(judge: Any) -> str:
    """``name@version`` of a judge (uses ``describe()`` when it returns a string)."""
    describe = getattr(judge, "describe", None)
    if callable(describe):
        try:
            d = describe()
        except Exception:  # noqa: BLE001 - describe is informational only
            d = None
        if isinstance(d, str) and d:
            return d
        if isinstance(d, dict) and d.get("name"):
            return f"{d['name']}@{d.get('version', '?')}"
    name = getattr(judge, "name", None) or type(judge).__name__
    version = getattr(judge, "version", None)
    return f"{name}@{version}" if version is not None else str(name)


def build_judge(spec: Any) -> Judge:
    """A judge from a ``name[@version][:key=value,...]`` spec, or a judge object (anything with
    ``score(prompts, completions)``) passed through. Module imports (``module:Class``) are not followed here."""
    if not isinstance(spec, str):
        if not callable(getattr(spec, "score", None)):
            raise AlignkitError("a judge must have score(prompts, completions) -> list[float]")
        return spec
    name, opts = parse_judge_spec(spec)
    return get_judge(name, **opts)
