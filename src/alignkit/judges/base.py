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
  (:func:`alignkit.judges.features.incoherence`).
- Prompts and completions must be two lists of the same length of strings (``None`` prompts count as "");
  anything else raises :class:`~alignkit.errors.AlignkitError` (one line).
- ``get_judge(name, **options)`` builds a registered judge; ``name@version`` picks a version (``minilm@1``);
  unknown names, versions or options raise :class:`~alignkit.errors.AlignkitError`.
"""

from __future__ import annotations

import inspect
import math
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
        from alignkit.judges.features import incoherence

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


def get_judge(name: str, **options: Any) -> Judge:
    """Build the registered judge ``name`` with ``options`` (see each judge's constructor)."""
    import alignkit.judges  # noqa: F401  (registers the built-in judges)

    if isinstance(name, Judge):
        return name
    name, _, version = str(name).partition("@")
    factory = JUDGES.get(name)
    if version:
        try:
            accepts = "version" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            accepts = False
        if accepts:
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
    return factory(**options)


def parse_judge_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"hf-classifier:model=org/x,harmful_label=0"`` -> ``("hf-classifier", {...})`` (CLI convenience)."""
    name, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise AlignkitError(f"judge option {part!r} must look like key=value (e.g. 'hf-classifier:model=org/x')")
        k, v = part.split("=", 1)
        opts[k.strip()] = _coerce(v.strip())
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
