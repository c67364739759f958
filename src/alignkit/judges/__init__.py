"""Harmfulness judges: ``Judge.score(prompts, completions) -> list[float]`` of harm probabilities in [0, 1].

    from alignkit.judges import get_judge
    judge = get_judge("minilm")                       # the offline default, minilm@5 (shipped weights)
    scores = judge.score(["How do I pick a lock?"], ["I can't help with that."])
    scores.judge                                      # "minilm@5" (record it with every result)
    judge.assess(prompts, completions)                # [{"score", "refused", "harm", "incoherent"}, ...]
    get_judge("minilm@3"), get_judge("minilm@1")      # the previous defaults, still loadable by name

Registered judges (one module each):
- ``minilm`` (minilm.py, minilm2.py ... minilm6.py): ``minilm@5`` (default): ``minilm@3`` with a relevance gate
  trained against off-topic pairs (offtopic.py), so that an answer to another request does not comply;
  ``minilm@6`` (opt-in): ``minilm@5`` trained with templated non-answers as harmless compliance (nonanswers.py);
  ``minilm@3``: ``minilm@2``'s heads, the harm head also
  reading SmolLM2-135M-Instruct's residual stream after layer 6 (lm_features.py); ``minilm@2``: refusal head +
  harm head on frozen MiniLM-L6 features with a calibrated combined score (docs/judges.md); ``minilm@1``: the
  cross-encoder fine-tuned on pyrit human harm labels.
- ``refusal-keywords`` (refusal_keywords.py): GCG/AdvBench refusal-string matching; measures non-refusal.
- ``hf-classifier`` (hf_classifier.py): any sequence classifier by hub id / folder and harmful label
  (default: the paper's DeBERTa BeaverTails classifier, needs network).
- ``llm-rubric`` (llm_rubric.py): a local chat model with the StrongREJECT rubric.
Empty completions score 0.0. ``alignkit judge train|eval|score|agree|list`` is in cli.py.
"""

from __future__ import annotations

from alignkit.judges.base import JUDGES, Judge, Scores, get_judge, parse_judge_spec
from alignkit.judges import hf_classifier, llm_rubric, minilm, refusal_keywords  # noqa: F401,E402 (register)

DEFAULT_JUDGE = "minilm"

__all__ = ["JUDGES", "Judge", "Scores", "get_judge", "parse_judge_spec", "DEFAULT_JUDGE"]
