"""alignkit.data: typed records and named, offline datasets.

    from alignkit import data
    data.names()                                   # every registered dataset
    rows = data.load("harmful-qa", split="train", seed=0)   # list[HarmfulQA]
    data.info("paired-refusals")                   # DatasetInfo: sizes, categories, license, source
    data.load_user("my.jsonl", columns={"question": "q", "answer": "a"})
    data.load_user("beavertails.jsonl", schema="beavertails")

Datasets (see each module's docstring for how it is built):
- ``harmful-qa`` (harmful_qa.py), ``paired-refusals`` (refusals.py), ``judge-labels`` (judge_labels.py):
  pyrit 1.1.0 human-scored harm data, split by question (70/10/20), one shared question table per seed.
- ``advbench``, ``harmbench``, ``strongreject``, ``donotanswer``, ``harmful-eval`` (eval_prompts.py).
- ``harmless-instructions`` (harmless.py) and ``data2text`` (data2text.py): templated generators.
Vendored source files, their licenses and ``vendored/MANIFEST.json`` (sha256 per file) live in ``vendored/``.
"""

from __future__ import annotations

from alignkit.data.base import DATASETS, DatasetInfo, build, info, load, names
from alignkit.data.records import DataToText, HarmfulQA, Instruction, JudgeExample, PairedQA, Prompt


def load_user(*args, **kwargs):
    """See :func:`alignkit.data.user.load_user`."""
    from alignkit.data.user import load_user as _load_user

    return _load_user(*args, **kwargs)


def refusal_for(question: str, category: str | None = None, template_seed: int = 0) -> str:
    """See :func:`alignkit.data.refusals.refusal_for`."""
    from alignkit.data.refusals import refusal_for as _refusal_for

    return _refusal_for(question, category, template_seed)


def pair_with_refusals(records, template_seed: int = 0):
    """See :func:`alignkit.data.refusals.pair_with_refusals`."""
    from alignkit.data.refusals import pair_with_refusals as _pair

    return _pair(records, template_seed)


__all__ = [
    "DATASETS", "DatasetInfo", "build", "info", "load", "names", "load_user", "refusal_for",
    "pair_with_refusals", "DataToText", "HarmfulQA", "Instruction", "JudgeExample", "PairedQA", "Prompt",
]
