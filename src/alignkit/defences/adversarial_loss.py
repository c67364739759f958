"""Adversarial loss (the immunization paper's demonstration defence): ``L = CE(refusal) - lambda * CE(harmful)``,
lambda 0.1, one epoch, on the paired data (harmful and refusal answers to the same question, answer tokens
only). Reported to resist ~75 attack steps but to lose trainability and to produce degenerate text
("self-destruction"); the conditions' evaluation must flag that."""

from __future__ import annotations

from pydantic import Field

from alignkit.defences.base import (DEFENCES, Defence, DefenceConfig, causal_ce, pair_loss_trainer,
                                    paired_forward)


class AdversarialLossConfig(DefenceConfig):
    """Adversarial loss: CE on refusals minus lambda times CE on harmful answers."""

    defence: str = Field("adversarial-loss", description="defence name")
    adv_lambda: float = Field(0.1, ge=0, description="lambda: weight of the (subtracted) harmful CE")


def adversarial_loss(model, batch: dict, adv_lambda: float):
    harmful_logits, harmless_logits, _ = paired_forward(model, batch)
    refusal = causal_ce(harmless_logits, batch["harmless_labels"])
    harmful = causal_ce(harmful_logits, batch["harmful_labels"])
    return refusal - adv_lambda * harmful, {"harmless_ce": refusal, "harmful_ce": harmful}


@DEFENCES.register("adversarial-loss")
class AdversarialLoss(Defence):
    config_class = AdversarialLossConfig
    loss_weights = ("adv_lambda",)
    description = "adversarial loss: CE(refusal) - lambda * CE(harmful answer)"

    def make_trainer(self, config, model, tokenizer, records, args):
        def loss(m, batch):
            return adversarial_loss(m, batch, config.adv_lambda)

        return pair_loss_trainer("AdversarialLossTrainer", loss, config, model, tokenizer, records, args)
