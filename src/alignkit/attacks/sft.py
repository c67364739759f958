"""``sft-full`` / ``sft-lora``: supervised fine-tuning on harmful QA (the harmful fine-tuning attack).

Loss on the answer tokens only (:func:`alignkit.formatting.encode_qa`: labels -100 on the prompt and on
padding), through ``transformers.Trainer`` (accelerate underneath: DDP, FSDP and DeepSpeed come from an
accelerate config). LoRA through peft.

Security-vector mode (``security_vector=ADAPTER``): the defender controls the fine-tuning API. The adapter is
loaded active and frozen during the attack (its parameters never receive gradients) and is removed before
every evaluation and before saving: the attacked model is judged without it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from alignkit.attacks.base import ATTACKS, Attack
from alignkit.errors import AlignkitError

SV_NAME = "security_vector"
ATTACK_ADAPTER = "default"


class _ListDataset:
    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def encode_records(tokenizer, records, template: str, max_length: int) -> list[dict]:
    from alignkit.formatting import encode_qa

    out = []
    for r in records:
        enc = encode_qa(tokenizer, r.question, r.answer, template, max_length, system=getattr(r, "system", None))
        if any(lbl != -100 for lbl in enc["labels"]):
            out.append(enc)
    if not out:
        raise AlignkitError(f"no training example keeps an answer token within --max-length {max_length}; "
                            "raise --max-length")
    return out


def _lora_config(config):
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), task_type="CAUSAL_LM", bias="none")


def _freeze_sv(model) -> None:
    for name, p in model.named_parameters():
        if f".{SV_NAME}." in name or name.endswith(f".{SV_NAME}"):
            p.requires_grad_(False)


class SFTAttack(Attack):
    """Harmful supervised fine-tuning (full or LoRA), optionally against a frozen security vector."""

    @property
    def lora(self) -> bool:
        """LoRA or full fine-tuning, from the config's ``method`` (``sft-lora`` is stored as ``method=lora``)."""
        return self.config.method == "lora"

    @classmethod
    def search_space_file(cls, preset: str | None = None) -> Path | None:
        """The family's own space (``attacks/spaces/<name>[-<preset>].yaml``, e.g. jailbreak-tuning's) when it ships
        one; else the SFT space, which searches full vs LoRA itself: ``search/spaces/attack[-quick].yaml``."""
        from alignkit.attacks.base import AttackFamily
        from alignkit.search.space import default_space_file

        return AttackFamily.search_space_file.__func__(cls, preset) or default_space_file("attack", preset)

    def prepare_model(self, model):
        cfg = self.config
        if cfg.gradient_checkpointing:
            model.config.use_cache = False
        if cfg.security_vector:
            from peft import PeftModel

            from alignkit.defences.security_vectors import check_adapter_files

            sv = check_adapter_files(cfg.security_vector, cfg.allow_pickle_adapter)
            try:
                model = PeftModel.from_pretrained(model, str(sv), adapter_name=SV_NAME, is_trainable=False)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise AlignkitError(f"could not load security vector {str(sv)!r} onto {cfg.model!r}: "
                                    f"{str(exc).splitlines()[0][:160]}") from None
            if self.lora:
                try:
                    model.add_adapter(ATTACK_ADAPTER, _lora_config(cfg))
                except ValueError as exc:
                    raise AlignkitError(f"LoRA: {str(exc).splitlines()[0][:200]}; check --lora-targets") from None
                model.base_model.set_adapter([SV_NAME, ATTACK_ADAPTER])
                _freeze_sv(model)
            else:
                # full fine-tuning of the base weights under the active, frozen security vector
                for name, p in model.named_parameters():
                    p.requires_grad_("lora_" not in name)
                _freeze_sv(model)
            return model
        if self.lora:
            from peft import get_peft_model

            try:
                model = get_peft_model(model, _lora_config(self.config))
            except ValueError as exc:
                raise AlignkitError(f"LoRA: {str(exc).splitlines()[0][:200]}; check --lora-targets") from None
        return model

    @contextlib.contextmanager
    def eval_mode(self, model) -> Iterator[Any]:
        if not self.config.security_vector:
            yield model
            return
        if self.lora:
            inner = model.base_model
            inner.set_adapter(ATTACK_ADAPTER)
            try:
                yield model
            finally:
                inner.set_adapter([SV_NAME, ATTACK_ADAPTER])
                _freeze_sv(model)
        else:
            try:
                with model.disable_adapter():
                    yield model
            finally:
                _freeze_sv(model)  # peft re-enables grads on the active adapter when it re-enables it

    def export(self, model):
        if self.config.security_vector:
            if self.lora:
                model.base_model.set_adapter(ATTACK_ADAPTER)
                model.delete_adapter(SV_NAME)
                return model.merge_and_unload()
            return model.unload()  # remove the security vector without merging it
        if self.lora:
            return model.merge_and_unload()
        return model

    def train(self, model, tokenizer, records, *, callbacks, checkpoint_dir: Path, resume_from: str | None,
              trainer_box: dict):
        from alignkit.formatting import QACollator
        from alignkit.training import make_trainer, train_or_restore, training_arguments

        cfg = self.config
        items = encode_records(tokenizer, records, cfg.template, cfg.max_length)
        args = training_arguments(
            checkpoint_dir, lr=cfg.lr, batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps,
            seed=cfg.seed, warmup_ratio=cfg.warmup_ratio, scheduler=cfg.scheduler, optimizer=cfg.optimizer,
            weight_decay=cfg.weight_decay, grad_accum=cfg.grad_accum,
            save_every=cfg.eval_every if cfg.save_checkpoints else None, save_total_limit=2, bf16=cfg.bf16,
            gradient_checkpointing=cfg.gradient_checkpointing, max_grad_norm=cfg.max_grad_norm)
        trainer = make_trainer(model, args, _ListDataset(items), QACollator(tokenizer.pad_token_id),
                               tokenizer=tokenizer, callbacks=callbacks,
                               trainable_only_checkpoints=bool(cfg.security_vector))
        trainer_box["trainer"] = trainer
        from alignkit.training import TrainingWatch

        trainer_box["watch"] = TrainingWatch(trainer)  # lr, gradient norms, weight change: did the attack train?
        train_or_restore(trainer, resume_from)
        return trainer


@ATTACKS.register("sft-full")
class SFTFull(SFTAttack):
    """Full fine-tuning (``method=full``)."""


@ATTACKS.register("sft-lora")
class SFTLora(SFTAttack):
    """LoRA through peft (``method=lora``)."""
