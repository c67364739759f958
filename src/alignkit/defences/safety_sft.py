"""Additional safety training: plain supervised fine-tuning on (harmful question -> refusal), loss on the
refusal tokens only. The control every immunization result must beat: it also lowers the pre-attack
harmfulness, by teaching refusals, without making the model harder to fine-tune."""

from __future__ import annotations

from pydantic import Field

from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, QADataset, causal_ce, trainer_class


class SafetySFTConfig(DefenceConfig):
    """Safety SFT: fine-tune on harmful questions answered with refusals."""

    defence: str = Field("safety-sft", description="defence name")


def sft_loss(model, batch: dict):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return causal_ce(logits, batch["labels"])


def make_sft_trainer(config, model, tokenizer, pairs, args, name: str = "SafetySFTTrainer"):
    from alignkit.formatting import QACollator

    Base = trainer_class()

    class SFTTrainer(Base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = sft_loss(model, inputs)
            return (loss, None) if return_outputs else loss

    SFTTrainer.__name__ = name
    return SFTTrainer(model=model, args=args, data_collator=QACollator(tokenizer.pad_token_id),
                      train_dataset=QADataset(tokenizer, pairs, config.template, config.max_length),
                      processing_class=tokenizer)


@DEFENCES.register("safety-sft")
class SafetySFT(Defence):
    config_class = SafetySFTConfig
    description = "supervised fine-tuning on (harmful question -> refusal)"

    def make_trainer(self, config, model, tokenizer, records, args):
        return make_sft_trainer(config, model, tokenizer, [(r.question, r.harmless) for r in records], args)
