"""Harmfulness judges: ``Judge.score(prompts, completions) -> list[float]`` of harm probabilities in [0, 1].

    from alignkit.judges import get_judge
    judge = get_judge("minilm")                       # the offline default (shipped weights)
    scores = judge.score(["How do I pick a lock?"], ["I can't help with that."])
    scores.judge                                      # "minilm@1" (record it with every result)

Registered judges (one module each):
- ``minilm`` (minilm.py): MiniLM-L6 cross-encoder fine-tuned on pyrit human harm labels; the default.
- ``refusal-keywords`` (refusal_keywords.py): GCG/AdvBench refusal-string matching; measures non-refusal.
- ``hf-classifier`` (hf_classifier.py): any sequence classifier by hub id / folder and harmful label
  (default: the paper's DeBERTa BeaverTails classifier, needs network).
- ``llm-rubric`` (llm_rubric.py): a local chat model with the StrongREJECT rubric.
Empty completions score 0.0. ``alignkit judge train|eval|score|list`` is in cli.py.
"""

from __future__ import annotations

from alignkit.judges.base import JUDGES, Judge, Scores, get_judge, parse_judge_spec
from alignkit.judges import hf_classifier, llm_rubric, minilm, refusal_keywords  # noqa: F401,E402 (register)

DEFAULT_JUDGE = "minilm"

__all__ = ["JUDGES", "Judge", "Scores", "get_judge", "parse_judge_spec", "DEFAULT_JUDGE"]
