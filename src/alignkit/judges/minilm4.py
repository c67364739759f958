"""``minilm@4`` (opt-in, not the default): the ``minilm@3`` recipe reading a deeper SmolLM2 layer (12 of 30).

Everything is ``minilm@3``'s (:mod:`alignkit.judges.minilm3`: features, heads, calibration, incoherence flag,
output) except ``lm_layer``: the residual stream after decoder layer 12 instead of 6, which reads pyrit's held-out
harm categories better at twice the LM cost per completion (docs/results.md). ``alignkit judge train --version 4
--ship`` re-creates the shipped weights; ``alignkit judge eval --version 4`` prints its out-of-distribution table.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from alignkit.judges import minilm3

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "minilm_judge_v4.safetensors"
FORMAT_VERSION = "4"
REPRODUCE = "alignkit judge train --version 4 --ship"


class TrainConfigV4(minilm3.TrainConfigV3):
    lm_layer: int = Field(12, ge=1, description="read the residual stream after this decoder layer (1-based); "
                                                "only the layers up to it run")


train, default_cache_path, ood_table_v4 = minilm3.recipe_functions(
    TrainConfigV4, FORMAT_VERSION, SHIPPED_WEIGHTS, REPRODUCE,
    reference_judges=("minilm@3", "minilm@2", "refusal-keywords"))


class MiniLMJudgeV4(minilm3.MiniLMJudgeV3):
    """minilm@4 (opt-in): minilm@3's recipe on SmolLM2's residual stream after layer 12."""

    phi_margin = 0.07  # measured refusal noise 0.065 (alignkit judge eval --version 4)
    format_version = FORMAT_VERSION
    shipped_weights = SHIPPED_WEIGHTS
    config_class = TrainConfigV4
    reproduce = REPRODUCE
