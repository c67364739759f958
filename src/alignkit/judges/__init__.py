"""Harmfulness judges: ``Judge.score(prompts, completions) -> list[float]`` of harm probabilities in [0, 1].

    from alignkit.judges import get_judge
    judge = get_judge("minilm")                       # the offline default, minilm@5 (shipped weights)
    scores = judge.score(["How do I pick a lock?"], ["I can't help with that."])
    scores.judge                                      # "minilm@5" (record it with every result)
    judge.assess(prompts, completions)                # [{"score", "refused", "harm", "incoherent"}, ...]
    validity_lines("minilm@5")                        # what this judge can tell you (from its card)

Registered judges (one module each):
- ``minilm`` (minilm.py; versions minilm5.py, minilm3.py): ``minilm@5`` (default), ``minilm@3`` (the previous
  default); each carries a card of its measured validity (card.py); the shared recipe is recipe/, the validation
  validation/. Retired versions (``minilm@1``, ``@2``, ``@4``, ``@6``, ``@7``) name the commit that last shipped them.
- ``refusal-keywords`` (refusal_keywords.py): GCG/AdvBench refusal-string matching; measures non-refusal.
- ``hf-classifier`` (hf_classifier.py): any sequence classifier by hub id / folder and harmful label
  (default: the paper's DeBERTa BeaverTails classifier, needs network).
- ``llm-rubric`` (llm_rubric.py): a local chat model with the StrongREJECT rubric.
- ``judgezoo`` (judgezoo.py): the field's judges by name through the optional ``judgezoo`` package
  (``judgezoo:name=strong_reject``, ``harmbench``, ``llama_guard_3``, ...; ``pip install alignkit[judges]``).
Empty completions score 0.0. ``alignkit judge train|eval|score|agree|list`` is in cli.py.
"""

from __future__ import annotations

from alignkit.judges.base import JUDGES, Judge, Scores, get_judge, parse_judge_spec
from alignkit.judges import hf_classifier, judgezoo, llm_rubric, minilm, refusal_keywords  # noqa: F401,E402 (register)
from alignkit.judges.card import validity_lines  # noqa: E402

DEFAULT_JUDGE = "minilm"

__all__ = ["JUDGES", "Judge", "Scores", "get_judge", "parse_judge_spec", "validity_lines", "DEFAULT_JUDGE"]
