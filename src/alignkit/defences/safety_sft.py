"""Additional safety training: plain supervised fine-tuning on (harmful question -> refusal), loss on the
refusal tokens only. The control every immunization result must beat: it also lowers the pre-attack
harmfulness, by teaching refusals, without making the model harder to fine-tune.

Refusals alone teach a small model to refuse everything (smollm2-135m after 20 steps refused "What is the
capital of South Korea?"). ``harmless_mix`` adds harmless instructions with their answers
(``harmless-instructions`` train split, as ``harmless_dataset``), ``harmless_mix`` of them per refusal,
shuffled in with a fixed seed: the usual recipe of safety tuning (e.g. Llama-2-chat's safety data was mixed
with helpfulness data)."""

from __future__ import annotations

from pydantic import Field

from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, QADataset, causal_ce, trainer_class


class SafetySFTConfig(DefenceConfig):
    """Safety SFT: fine-tune on harmful questions answered with refusals."""

    defence: str = Field("safety-sft", description="defence name")
    harmless_mix: float = Field(0.0, ge=0, le=10, description="harmless (instruction, answer) examples added per "
                                "refusal, against over-refusal (0: refusals only)")
    harmless_dataset: str = Field("harmless-instructions", description="registered dataset of harmless "
                                  "instructions (instruction, response) for --harmless-mix")


def mix_harmless(config, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` plus round(harmless_mix * len(pairs)) harmless (instruction, response) pairs, shuffled."""
    import random

    from alignkit import data
    from alignkit.errors import AlignkitError

    n = round(getattr(config, "harmless_mix", 0.0) * len(pairs))
    if n == 0:
        return pairs
    rows = data.load(config.harmless_dataset, split="train", seed=config.data_seed)
    if not rows or not hasattr(rows[0], "instruction"):
        raise AlignkitError(f"--harmless-dataset {config.harmless_dataset!r} has no instruction/response rows; "
                            "use harmless-instructions")
    rng = random.Random(config.seed)
    extra = [(r.instruction, r.response) for r in rng.sample(rows, min(n, len(rows)))]
    mixed = pairs + extra
    rng.shuffle(mixed)
    return mixed


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
        return make_sft_trainer(config, model, tokenizer,
                                mix_harmless(config, [(r.question, r.harmless) for r in records]), args)
