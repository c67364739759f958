"""The dataset registry, ``load`` / ``info`` / ``names``, and helpers shared by the loaders.

A dataset is a builder function ``build(seed, **options) -> {split: [records]}`` registered with
:func:`dataset`. ``load`` builds it once per (name, seed, options) and caches the result in-process
(records are immutable, so the cached lists are shared safely; ``load`` returns a fresh list each call).

Splits are deterministic (seeded, ``random.Random`` seeded with a string, which does not depend on
``PYTHONHASHSEED``), disjoint and de-duplicated (on normalised text). ``split="all"`` returns every split.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pydantic import BaseModel, Field

from alignkit.errors import AlignkitError
from alignkit.registry import Registry

VENDORED = Path(__file__).resolve().parent / "vendored"

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "eval": 0.1, "test": 0.2}


@dataclass
class DatasetSpec:
    name: str
    builder: Callable[..., dict[str, list]]
    record: type
    description: str
    source: str
    license: str
    splits: tuple[str, ...]
    notes: str = ""
    options: dict[str, Any] = field(default_factory=dict)


DATASETS: Registry[DatasetSpec] = Registry("dataset")

# one module per dataset family; importing it registers its datasets
LOADER_MODULES = ("harmful_qa", "refusals", "judge_labels", "eval_prompts", "harmless", "data2text", "cross_domain",
                  "natural_text")


def dataset(name: str, *, record: type, description: str, source: str, license: str,
            splits: Sequence[str], notes: str = ""):
    """Register ``fn(seed, **options) -> {split: [records]}`` as dataset ``name``."""

    def deco(fn):
        DATASETS.register(name)(DatasetSpec(name=name, builder=fn, record=record, description=description,
                                             source=source, license=license, splits=tuple(splits), notes=notes))
        return fn

    return deco


class DatasetInfo(BaseModel):
    name: str
    description: str
    record_type: str
    source: str
    license: str
    rows: int = Field(description="rows over all splits (seed 0)")
    splits: dict[str, int] = Field(description="rows per split (seed 0)")
    categories: dict[str, int] = Field(default_factory=dict, description="rows per category (all splits)")
    notes: str = ""


def _freeze(options: dict) -> tuple:
    return tuple(sorted((k, json.dumps(v, sort_keys=True, default=str)) for k, v in options.items()))


@functools.lru_cache(maxsize=64)
def _build_cached(name: str, seed: int, frozen: tuple) -> dict[str, tuple]:
    spec = DATASETS.get(name)
    options = {k: json.loads(v) for k, v in frozen}
    built = spec.builder(seed=seed, **options)
    return {s: tuple(built.get(s, [])) for s in spec.splits}


def _ensure_registered() -> None:
    # importing the loader modules registers their datasets
    import importlib

    for mod in LOADER_MODULES:
        importlib.import_module(f"alignkit.data.{mod}")


def build(name: str, seed: int = 0, **options) -> dict[str, list]:
    """All splits of dataset ``name`` as ``{split: [records]}``."""
    _ensure_registered()
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise AlignkitError(f"seed must be an integer, got {seed!r}")
    cached = _build_cached(name, int(seed), _freeze(options))
    return {s: list(rows) for s, rows in cached.items()}


def load(name: str, split: str = "train", seed: int = 0, **options) -> list:
    """Records of one split (``"all"`` = every split, in split order) of dataset ``name``.

    ``options`` go to the dataset's builder (e.g. ``min_score=0.5`` for ``harmful-qa``).
    """
    _ensure_registered()
    spec = DATASETS.get(name)
    splits = build(name, seed, **options)
    if split == "all":
        return [r for s in spec.splits for r in splits[s]]
    if split not in splits:
        raise AlignkitError(f"dataset {name!r} has no split {split!r}; choose one of: "
                            f"{', '.join(spec.splits)}, all")
    return splits[split]


def names() -> list[str]:
    _ensure_registered()
    return DATASETS.names()


def record_category(rec: Any) -> str | None:
    for attr in ("category", "task"):
        v = getattr(rec, attr, None)
        if isinstance(v, str):
            return v
    return None


@functools.lru_cache(maxsize=64)
def info(name: str) -> DatasetInfo:
    """Description, license, source and sizes (seed 0) of dataset ``name``."""
    _ensure_registered()
    spec = DATASETS.get(name)
    splits = build(name, 0)
    cats: Counter = Counter()
    for rows in splits.values():
        for r in rows:
            c = record_category(r)
            if c is not None:
                cats[c] += 1
    return DatasetInfo(name=name, description=spec.description, record_type=spec.record.__name__,
                       source=spec.source, license=spec.license, rows=sum(len(v) for v in splits.values()),
                       splits={s: len(v) for s, v in splits.items()}, categories=dict(sorted(cats.items())),
                       notes=spec.notes)


# ---------------------------------------------------------------------------------------------- helpers

def normalize_text(text: str) -> str:
    """Lowercase, NFKC, punctuation -> spaces, collapsed whitespace (the de-duplication key)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def normalize_category(cat: Any) -> str:
    """``'SEXUAL_CONTENT'`` -> ``'sexual'``, ``'Disinformation and deception'`` -> ``'disinformation_and_deception'``."""
    if cat is None:
        return "unspecified"
    s = re.sub(r"[^0-9a-z]+", "_", unicodedata.normalize("NFKC", str(cat)).lower()).strip("_")
    return CATEGORY_ALIASES.get(s, s) or "unspecified"


CATEGORY_ALIASES = {
    "information_integrity": "info_integrity",
    "sexual_content": "sexual",
    "hate": "hate_speech",
    "selfharm": "self_harm",
}


def stable_id(prefix: str, *parts: str) -> str:
    h = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}-{h}"


def seeded_hash(*parts: Any) -> int:
    return int(hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest(), 16)


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Sizes per split for ``n`` items; the first split (train) takes the rounding remainder."""
    names_ = list(fractions)
    counts = {s: int(round(n * fractions[s])) for s in names_[1:]}
    while sum(counts.values()) > n:  # tiny n: shrink the largest non-train split
        k = max(counts, key=counts.get)
        counts[k] -= 1
    counts = {names_[0]: n - sum(counts.values()), **counts}
    return counts


def assign_splits(groups: Iterable[str], seed: int, fractions: dict[str, float] | None = None,
                  strata: dict[str, str] | None = None, salt: str = "") -> dict[str, str]:
    """Map each distinct group to a split: a seeded shuffle per stratum, cut by ``fractions``.

    Deterministic for a given (set of groups, seed, strata, salt); independent of input order.
    """
    fractions = fractions or DEFAULT_FRACTIONS
    by_stratum: dict[str, list[str]] = {}
    for g in sorted(set(groups)):
        by_stratum.setdefault((strata or {}).get(g, ""), []).append(g)
    out: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        members = by_stratum[stratum]
        random.Random(f"alignkit-split:{salt}:{seed}:{stratum}").shuffle(members)
        start = 0
        for s, k in split_counts(len(members), fractions).items():
            for g in members[start:start + k]:
                out[g] = s
            start += k
    return out


def vendored_path(rel: str) -> Path:
    p = VENDORED / rel
    if not p.is_file():
        raise AlignkitError(f"vendored data file missing: {p}; reinstall alignkit")
    return p


def read_vendored_text(rel: str) -> str:
    return vendored_path(rel).read_text(encoding="utf-8")


def read_commented_csv(text: str) -> list[dict[str, str]]:
    """Parse CSV text after dropping lines that start with ``#`` (pyrit's header comments)."""
    lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("".join(lines))))


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads(read_vendored_text("MANIFEST.json"))


def vendored_source(rel: str) -> str:
    """``'pyrit==1.1.0:datasets/scorer_evals/harm/violence.csv'`` for a vendored file."""
    for f in manifest()["files"]:
        if f["path"] == rel:
            return f"{f['package']}=={f['version']}:{f['wheel_path']}"
    return f"vendored:{rel}"
