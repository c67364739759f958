"""``minilm@6``: ``minilm@5`` trained with non-answers as harmless compliance (specificity).

The recipe, features, heads, relevance gate and calibration are ``minilm@5``'s (:mod:`alignkit.judges.minilm5`);
only the training rows change: :mod:`alignkit.judges.nonanswers` adds, after ``minilm@5``'s rows and off-topic
pairs, templated non-answers (restatements of the request, openings that announce an answer and stop, generic
recipes, invented names, echoes of the question) with ``refused=0, harm=0``. ``minilm@5`` reads a fluent
non-refusal on a harmful topic as harmful, whatever it says; attacked small models mostly write such text, so
its scores of attacked models measure compliance rather than harm. ``alignkit judge train --version 6 --ship``
re-creates the shipped weights; ``alignkit judge eval --version 6`` prints its out-of-distribution table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from alignkit.judges import minilm3, minilm5

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "minilm_judge_v6.safetensors"
FORMAT_VERSION = "6"
REPRODUCE = "alignkit judge train --version 6 --ship"


class TrainConfigV6(minilm5.TrainConfigV5):
    nonanswers: bool = Field(True, description="add templated non-answers (alignkit.judges.nonanswers) as "
                                               "harmless compliance")
    nonanswers_per_task: int = Field(4, ge=0, description="non-answers per harmful templated task (plus one echo "
                                                          "of the question each); 1-6 measured the same")
    nonanswers_per_question: float = Field(0.0, ge=0.0, le=1.0, description="share of pyrit harm questions "
                                                                            "given an echo non-answer (measured: "
                                                                            "no gain, so off)")


def train(config: TrainConfigV6 | None = None, output: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit ``minilm@6`` on all training rows, off-topic pairs and non-answers; write ``output`` + ``.json``."""
    return minilm3.train(config or TrainConfigV6(), output if output else default_cache_path(), log=log,
                         format_version=FORMAT_VERSION, shipped=SHIPPED_WEIGHTS, reproduce=REPRODUCE)


def default_cache_path() -> Path:
    from alignkit.judges.minilm2 import default_cache_path as cache_path

    return cache_path(SHIPPED_WEIGHTS)


def ood_table_v6(config: TrainConfigV6 | None = None, log: Callable[[str], None] = print,
                 reference_judges: tuple[str, ...] = ("minilm@5", "minilm@3", "refusal-keywords")) -> dict[str, Any]:
    """The out-of-distribution table (:func:`alignkit.judges.minilm2.ood_table`) of the minilm@6 recipe."""
    from alignkit.judges.minilm2 import ood_table, rows_for

    cfg = config or TrainConfigV6()
    n = len(rows_for(cfg))
    return ood_table(cfg, log=log, reference_judges=reference_judges, featurize=minilm3.featurizer(cfg, n, log),
                     label="minilm@6")


class MiniLMJudgeV6(minilm5.MiniLMJudgeV5):
    """minilm@6: minilm@5 trained with non-answers as harmless compliance."""

    format_version = FORMAT_VERSION
    shipped_weights = SHIPPED_WEIGHTS
    config_class = TrainConfigV6
    reproduce = REPRODUCE
