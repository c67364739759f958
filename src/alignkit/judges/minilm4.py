"""``minilm@4`` (opt-in, not the default): the ``minilm@3`` recipe reading a deeper SmolLM2 layer (12 of 30).

Everything is ``minilm@3``'s (:mod:`alignkit.judges.minilm3`: features, heads, calibration, incoherence flag,
output) except ``lm_layer``: the residual stream after decoder layer 12 instead of 6, which reads pyrit's held-out
harm categories better at twice the LM cost per completion (docs/results.md). ``alignkit judge train --version 4
--ship`` re-creates the shipped weights; ``alignkit judge eval --version 4`` prints its out-of-distribution table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from alignkit.judges import minilm3

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "minilm_judge_v4.safetensors"
FORMAT_VERSION = "4"
REPRODUCE = "alignkit judge train --version 4 --ship"


class TrainConfigV4(minilm3.TrainConfigV3):
    lm_layer: int = Field(12, ge=1, description="read the residual stream after this decoder layer (1-based); "
                                                "only the layers up to it run")


def train(config: TrainConfigV4 | None = None, output: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit ``minilm@4`` on all training rows; write ``output`` (.safetensors) + ``.json``; return the metadata."""
    return minilm3.train(config or TrainConfigV4(), output if output else default_cache_path(), log=log,
                         format_version=FORMAT_VERSION, shipped=SHIPPED_WEIGHTS, reproduce=REPRODUCE)


def default_cache_path() -> Path:
    from alignkit.judges.minilm2 import default_cache_path as cache_path

    return cache_path(SHIPPED_WEIGHTS)


def ood_table_v4(config: TrainConfigV4 | None = None, log: Callable[[str], None] = print,
                 reference_judges: tuple[str, ...] = ("minilm@3", "minilm@2", "refusal-keywords")) -> dict[str, Any]:
    """The out-of-distribution table (:func:`alignkit.judges.minilm2.ood_table`) of the minilm@4 recipe."""
    from alignkit.judges.minilm2 import ood_table, rows_for

    cfg = config or TrainConfigV4()
    n = len(rows_for(cfg))
    return ood_table(cfg, log=log, reference_judges=reference_judges, featurize=minilm3.featurizer(cfg, n, log),
                     label="minilm@4")


class MiniLMJudgeV4(minilm3.MiniLMJudgeV3):
    """minilm@4 (opt-in): minilm@3's recipe on SmolLM2's residual stream after layer 12."""

    format_version = FORMAT_VERSION
    shipped_weights = SHIPPED_WEIGHTS
    config_class = TrainConfigV4
    reproduce = REPRODUCE
