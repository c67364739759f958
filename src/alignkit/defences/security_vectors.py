"""Security vectors (Zhou et al. 2024): train a LoRA adapter on the harmful data first; during the attacker's
fine-tuning the adapter is **active and frozen**, so the harmful loss is already low and the base weights
learn little; at inference the adapter is removed.

Only valid when the defender controls the fine-tuning API (the attacker never holds the weights without the
adapter in the training loop). The "defended model" is therefore a pair: the output folder holds the
**unchanged base model** (a plain HF folder with the model card) and the adapter in ``security_vector/``
(a peft folder). ``alignkit attack --security-vector <out>/security_vector`` attacks in that mode; the
attack code loads the adapter with :func:`attach_security_vector` and removes it with
:func:`detach_security_vector` before evaluation and saving. :func:`security_vector_path` finds the adapter
of a defended folder (``None`` for other models).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pydantic import Field

from alignkit.defences.base import DEFENCES, Defence, DefenceConfig
from alignkit.errors import AlignkitError

ADAPTER_DIR = "security_vector"
ADAPTER_NAME = "security_vector"


class SecurityVectorsConfig(DefenceConfig):
    """Security vectors: a LoRA trained on harmful answers, kept active and frozen during the attack."""

    defence: str = Field("security-vectors", description="defence name")
    lr: float = Field(1e-4, gt=0, lt=1, description="peak learning rate (LoRA)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"],
                                    description="module names the LoRA adapts")


def security_vector_path(model_dir: str | os.PathLike) -> Optional[Path]:
    """The adapter folder of a security-vectors defended model folder, or None."""
    p = Path(model_dir) / ADAPTER_DIR
    return p if (p / "adapter_config.json").exists() else None


def check_adapter_files(adapter_dir: str | os.PathLike, allow_pickle: bool = False) -> Path:
    """A peft adapter folder with safetensors weights, or a one-line error (a pickle ``.bin`` adapter only with
    ``allow_pickle``: unpickling can run code)."""
    d = Path(adapter_dir).expanduser()
    if not (d / "adapter_config.json").exists():
        raise AlignkitError(f"security vector {str(d)!r} is not a peft adapter folder (no adapter_config.json); "
                            f"give <defended model>/{ADAPTER_DIR}")
    if not (d / "adapter_model.safetensors").exists():
        if (d / "adapter_model.bin").exists() and not allow_pickle:
            raise AlignkitError(f"security vector {str(d)!r} holds pickle weights (adapter_model.bin), which can run "
                                "code when loaded; convert it to safetensors, or pass --allow-pickle-adapter if you "
                                "made it yourself")
        if not (d / "adapter_model.bin").exists():
            raise AlignkitError(f"security vector {str(d)!r} has no adapter_model.safetensors")
    else:
        from alignkit.io import safetensors_ok

        if not safetensors_ok(d / "adapter_model.safetensors"):
            raise AlignkitError(f"security vector {str(d)!r}: adapter_model.safetensors is truncated or corrupt")
    return d


def attach_security_vector(model, adapter_dir: str | os.PathLike, *, base_trainable: bool = True,
                           allow_pickle: bool = False):
    """Wrap ``model`` with the security-vector adapter, active and frozen. ``base_trainable``: the base weights
    keep ``requires_grad`` (a full fine-tuning attack trains them under the adapter). Returns the PeftModel; add
    an attacker LoRA with ``peft_model.add_adapter(...)`` and activate both with
    ``peft_model.base_model.set_adapter([ADAPTER_NAME, "attack"])`` (then re-freeze this adapter)."""
    from peft import PeftModel

    d = check_adapter_files(adapter_dir, allow_pickle)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad} if base_trainable else set()
    pm = PeftModel.from_pretrained(model, str(d), adapter_name=ADAPTER_NAME, is_trainable=False)
    freeze_security_vector(pm)
    if base_trainable:
        for n, p in pm.named_parameters():
            if ADAPTER_NAME not in n and ("lora_" not in n):
                base_name = n.replace("base_model.model.", "", 1).replace(".base_layer.", ".")
                if base_name in trainable or not trainable:
                    p.requires_grad_(True)
    return pm


def freeze_security_vector(peft_model) -> None:
    for n, p in peft_model.named_parameters():
        if f".{ADAPTER_NAME}." in n or n.endswith(f".{ADAPTER_NAME}"):
            p.requires_grad_(False)


def detach_security_vector(peft_model):
    """The base model without the security vector (no merge): what is served at inference."""
    if not hasattr(peft_model, "peft_config"):
        return peft_model
    return peft_model.unload()


@DEFENCES.register("security-vectors")
class SecurityVectors(Defence):
    config_class = SecurityVectorsConfig
    description = ("security vectors: a LoRA adapter trained on harmful answers, kept active and frozen during the "
                   "attacker's fine-tuning and removed at inference; only valid when the defender controls the "
                   "fine-tuning API. This folder holds the unchanged base model; the adapter is in "
                   f"{ADAPTER_DIR}/ (alignkit attack --security-vector <folder>/{ADAPTER_DIR})")

    def prepare_model(self, config, model):
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in config.lora_targets if t in names]
        if not targets:
            raise AlignkitError(f"--lora-targets {config.lora_targets} match no module of this model; module "
                                f"names include: {', '.join(sorted(names)[:12])}")
        cfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                         target_modules=targets, task_type="CAUSAL_LM")
        return get_peft_model(model, cfg, adapter_name=ADAPTER_NAME)

    def make_trainer(self, config, model, tokenizer, records, args):
        from alignkit.defences.safety_sft import make_sft_trainer

        return make_sft_trainer(config, model, tokenizer, [(r.question, r.harmful) for r in records], args,
                                name="SecurityVectorTrainer")

    def save(self, config, trainer, model, tokenizer, out: Path, card: dict) -> Path:
        from alignkit.models import save_with_card

        adapter = out / ADAPTER_DIR
        model.save_pretrained(str(out / ".adapter-tmp"), selected_adapters=[ADAPTER_NAME])
        tmp = out / ".adapter-tmp" / ADAPTER_NAME
        src = tmp if tmp.exists() else out / ".adapter-tmp"
        import shutil

        if adapter.exists():
            shutil.rmtree(adapter)
        os.replace(src, adapter)
        shutil.rmtree(out / ".adapter-tmp", ignore_errors=True)
        base = model.unload()
        card = {**card, "security_vector": ADAPTER_DIR,
                "usage": f"attack with the adapter active and frozen: alignkit attack --model {out} "
                         f"--security-vector {adapter}; serve the base model (this folder) without it"}
        return save_with_card(base, tokenizer, out, card)
