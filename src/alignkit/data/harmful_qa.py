"""``harmful-qa``: harmful question/answer pairs with human harm scores, from pyrit 1.1.0 (MIT).

Source: the human-scored harm CSVs ``pyrit/datasets/scorer_evals/harm/*.csv`` (vendored byte for byte).
Each row is (harm_category, objective, assistant_response, human score(s) in {0, .25, .5, .75, 1}).

- ``question`` = objective, ``answer`` = assistant_response, ``harm_score`` = mean of the human scores
  (``*_multi_score.csv`` files carry three scores per row), ``category`` normalised to one of
  exploits, hate_speech, info_integrity, privacy, representational, self_harm, sexual, violence.
- Lines beginning with ``#`` are dropped before parsing.
- De-duplicated on (normalised question, normalised answer); a pair that occurs in several files gets the
  mean of all its human scores.
- Kept: rows with mean harm score >= ``min_score`` (default 0.75).
- Splits train/eval/test (70/10/20) **by question**: every pyrit harm question (at any score) is assigned to
  one split by a seeded shuffle, stratified by category and by whether it has a row scored >= 0.75. The same
  assignment is used by ``paired-refusals``, ``judge-labels`` and ``harmful-eval`` for the same seed, so a
  question held out in one is held out in all.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

from alignkit.data.base import (
    VENDORED,
    assign_splits,
    dataset,
    normalize_category,
    normalize_text,
    read_commented_csv,
    read_vendored_text,
    stable_id,
    vendored_source,
)
from alignkit.data.records import HarmfulQA

HARM_DIR = "pyrit/datasets/scorer_evals/harm"
SPLITS = ("train", "eval", "test")
DEFAULT_MIN_SCORE = 0.75
PYRIT = "pyrit==1.1.0 (MIT): datasets/scorer_evals/harm/*.csv"


@dataclass(frozen=True)
class HarmRow:
    question: str
    answer: str
    category: str
    scores: tuple[float, ...]  # every human score given to this (question, answer), over all files
    source: str

    @property
    def harm_score(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def group(self) -> str:
        return normalize_text(self.question)


@functools.lru_cache(maxsize=1)
def harm_rows() -> tuple[HarmRow, ...]:
    """All pyrit harm rows, de-duplicated on (normalised question, normalised answer), in file order."""
    merged: dict[tuple[str, str], dict] = {}
    for path in sorted((VENDORED / HARM_DIR).glob("*.csv")):
        rel = f"{HARM_DIR}/{path.name}"
        for row in read_commented_csv(read_vendored_text(rel)):
            q, a = (row.get("objective") or "").strip(), (row.get("assistant_response") or "").strip()
            score_cols = [k for k in row if k and k.startswith("human_score")]
            try:
                scores = [float(row[k]) for k in score_cols if row[k] not in (None, "")]
            except ValueError:
                continue
            if not q or not a or not scores:
                continue
            key = (normalize_text(q), normalize_text(a))
            if key not in merged:
                merged[key] = {"question": q, "answer": a, "category": normalize_category(row.get("harm_category")),
                               "scores": [], "source": vendored_source(rel)}
            merged[key]["scores"].append(sum(scores) / len(scores))
    return tuple(HarmRow(m["question"], m["answer"], m["category"], tuple(m["scores"]), m["source"])
                 for m in merged.values())


@functools.lru_cache(maxsize=32)
def question_splits(seed: int = 0) -> dict[str, str]:
    """Normalised pyrit harm question -> split, shared by every pyrit-derived dataset."""
    strata: dict[str, str] = {}
    high: dict[str, bool] = defaultdict(bool)
    for r in harm_rows():
        strata.setdefault(r.group, r.category)
        high[r.group] |= r.harm_score >= DEFAULT_MIN_SCORE
    strata = {g: f"{c}:{'high' if high[g] else 'low'}" for g, c in strata.items()}
    return assign_splits(strata.keys(), seed, strata=strata, salt="pyrit-harm")


def harmful_qa_rows(seed: int = 0, min_score: float = DEFAULT_MIN_SCORE) -> dict[str, list[HarmfulQA]]:
    table = question_splits(seed)
    out: dict[str, list[HarmfulQA]] = {s: [] for s in SPLITS}
    for r in harm_rows():
        if r.harm_score < min_score:
            continue
        rec = HarmfulQA(id=stable_id("pyrit-harm", normalize_text(r.question), normalize_text(r.answer)),
                        source=r.source, question=r.question, answer=r.answer, category=r.category,
                        harm_score=round(r.harm_score, 4))
        out[table[r.group]].append(rec)
    return out


@dataset("harmful-qa", record=HarmfulQA, splits=SPLITS, source=PYRIT, license="MIT",
         description="Harmful question/answer pairs with mean human harm score >= 0.75 (8 categories); "
                     "the harmful side of attacks and defences. Splits by question.",
         notes="option min_score (default 0.75)")
def _build_harmful_qa(seed: int = 0, min_score: float = DEFAULT_MIN_SCORE):
    return harmful_qa_rows(seed, float(min_score))
