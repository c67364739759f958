"""Vaccine (Huang et al. 2024): perturbation-aware safety alignment. Each step, on a batch of (harmful question
-> refusal):

1. forward + ``autograd.grad`` of the alignment loss w.r.t. every decoder layer's output hidden state
   (no parameter gradients);
2. the perturbation of norm ``rho`` that most increases the loss: ``e_l = rho * g_l / ||g||`` (``||g||`` over
   all layers together, as the original code);
3. forward again with ``e_l`` added to each layer's output (forward hooks registered once per run), and train
   on that perturbed loss.

The model learns refusals whose hidden representations are robust to drift, the "harmful embedding drift"
a later fine-tuning attack causes. Twice the compute of safety SFT per step.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from alignkit.defences.arch import find_parts, first_tensor
from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, QADataset, causal_ce, trainer_class


class VaccineConfig(DefenceConfig):
    """Vaccine: safety SFT on refusals, robust to a rho-bounded perturbation of every layer's hidden states."""

    defence: str = Field("vaccine", description="defence name")
    rho: float = Field(2.0, ge=0, description="norm of the adversarial hidden-state perturbation")


class PerturbationHooks:
    """Forward hooks on every decoder layer (registered once, removed on exit). ``mode``: None (inactive),
    "capture" (record each layer output) or "perturb" (add ``perturbations[l]``)."""

    def __init__(self, model):
        self.parts = find_parts(model)
        self.handles: list[Any] = []
        self.mode: Optional[str] = None
        self.captured: list[Any] = []
        self.perturbations: list[Any] = []

    def __enter__(self):
        for li, layer in enumerate(self.parts.layers):
            self.handles.append(layer.register_forward_hook(self._hook(li)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []

    def _hook(self, li: int):
        def hook(module, args, output):
            if self.mode == "capture":
                self.captured.append(first_tensor(output))
            elif self.mode == "perturb":
                e = self.perturbations[li]
                if isinstance(output, tuple):
                    return (output[0] + e,) + tuple(output[1:])
                return output + e
            return None
        return hook


def vaccine_loss(model, first_pass_model, batch: dict, hooks: PerturbationHooks, rho: float):
    import torch

    hooks.captured, hooks.mode = [], "capture"
    try:
        logits = first_pass_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  use_cache=False).logits
    finally:
        hooks.mode = None
    clean = causal_ce(logits, batch["labels"])
    grads = torch.autograd.grad(clean, hooks.captured, allow_unused=True)
    grads = [torch.zeros_like(h) if g is None else g for g, h in zip(grads, hooks.captured)]
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    hooks.perturbations = [(rho * g / (norm + 1e-7)).detach().to(g.dtype) for g in grads]
    hooks.captured = []
    hooks.mode = "perturb"
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    finally:
        hooks.mode = None
        hooks.perturbations = []
    perturbed = causal_ce(logits, batch["labels"])
    return perturbed, {"clean_ce": clean.detach(), "perturbed_ce": perturbed, "grad_norm_hidden": norm}


@DEFENCES.register("vaccine")
class Vaccine(Defence):
    config_class = VaccineConfig
    loss_weights = ("rho",)
    description = "Vaccine: perturbation-aware safety alignment on refusals (rho-bounded hidden-state perturbation)"

    def prepare_model(self, config, model):
        find_parts(model)  # unsupported architecture -> AlignkitError
        return model

    def make_trainer(self, config, model, tokenizer, records, args):
        from alignkit.formatting import QACollator

        Base = trainer_class()

        class VaccineTrainer(Base):
            def train(self, *a, **kw):
                self.hooks = PerturbationHooks(self.model)
                with self.hooks:
                    return super().train(*a, **kw)

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                sharded = getattr(self, "is_fsdp_enabled", False) or getattr(self, "is_deepspeed_enabled", False)
                # the perturbation pass needs no parameter gradients: under DDP run it on the unwrapped model
                first = model if sharded else self.accelerator.unwrap_model(model)
                loss, parts = vaccine_loss(model, first, inputs, self.hooks, config.rho)
                self.record(**parts)
                return (loss, None) if return_outputs else loss

        return VaccineTrainer(model=model, args=args, data_collator=QACollator(tokenizer.pad_token_id),
                              train_dataset=QADataset(tokenizer, [(r.question, r.harmless) for r in records],
                                                      config.template, config.max_length),
                              processing_class=tokenizer)
