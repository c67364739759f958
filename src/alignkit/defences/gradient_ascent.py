"""Gradient ascent: maximise the cross-entropy of the harmful answers (``L = -CE(harmful)``), optionally with a
harmless term ``+ harmless_weight * CE(refusal)`` that keeps the model fluent. Unbounded: without the harmless
term it degrades the model quickly (use few steps / a small lr)."""

from __future__ import annotations

from pydantic import Field

from alignkit.defences.base import (DEFENCES, Defence, DefenceConfig, causal_ce, pair_loss_trainer,
                                    paired_forward)


class GradientAscentConfig(DefenceConfig):
    """Gradient ascent on harmful answers (optionally plus CE on refusals)."""

    defence: str = Field("gradient-ascent", description="defence name")
    harmless_weight: float = Field(0.0, ge=0, description="weight of the CE on the harmless (refusal) answers; "
                                   "0 = pure gradient ascent")


def gradient_ascent_loss(model, batch: dict, harmless_weight: float):
    if harmless_weight > 0:
        harmful_logits, harmless_logits, _ = paired_forward(model, batch)
        harmless = causal_ce(harmless_logits, batch["harmless_labels"])
    else:
        harmful_logits = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                               use_cache=False).logits
        harmless = None
    harmful = causal_ce(harmful_logits, batch["harmful_labels"])
    loss = -harmful if harmless is None else harmless_weight * harmless - harmful
    return loss, {"harmful_ce": harmful, "harmless_ce": harmless}


@DEFENCES.register("gradient-ascent")
class GradientAscent(Defence):
    config_class = GradientAscentConfig
    loss_weights = ("harmless_weight",)
    description = "gradient ascent on harmful answers (plus optional CE on refusals)"

    def make_trainer(self, config, model, tokenizer, records, args):
        def loss(m, batch):
            return gradient_ascent_loss(m, batch, config.harmless_weight)

        return pair_loss_trainer("GradientAscentTrainer", loss, config, model, tokenizer, records, args)
