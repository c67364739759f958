"""TAR: tamper-resistant safeguards by adversarial meta-learning (Tamirisa et al. 2024), small-K CPU version.

Each outer step (one batch of pairs):

1. **Simulated attack.** From the current weights ``theta``, run ``inner_steps`` (K) fine-tuning steps on the
   harmful answers of the batch (``inner_optimizer``, a learning rate drawn per step from ``inner_lrs``): the
   attacked weights ``theta'``. The attack runs on the unwrapped model with ``torch.autograd.grad`` (no
   ``.grad`` is touched) and is undone afterwards (the weights are restored from a copy).
2. **Tamper-resistance loss at theta'.** ``tr_loss="entropy"``: minus the mean entropy of the attacked model's
   next-token distribution on the harmful answer tokens (the paper's loss for knowledge restriction: the
   attacked model should be maximally uncertain on harmful text); ``"neg-ce"``: ``-log(CE + 1)`` of the
   harmful answers (as RepNoise bounds its ascent). First order (first-order MAML, as the paper): its gradient
   at ``theta'`` is applied to ``theta``.
3. **Retain loss at theta.** Next-token CE on the refusal answers (plus ``retain_mix`` harmless instructions, as
   RepNoise's retain mix) + ``retain_rep_weight`` x the mean squared distance of every layer's residual-stream
   output on those rows to the original model's (a frozen copy made when training starts).

Total gradient: ``lambda_retain * grad retain(theta) + lambda_tr * grad TR(theta')``. The step returns the
surrogate ``lambda_retain * retain + lambda_tr * (TR(theta') + sum <theta - sg(theta), sg(g_TR)>)``: its value is
the loss and its gradient is the one above, so the rest of the ``transformers.Trainer`` / accelerate path
(gradient clipping, the optimizer, DDP's gradient averaging, checkpoints) is that of every other defence.

Paper scale: K = 64 inner steps, 750 outer steps, lambda_TR 4, lambda_retain 1 on 8 A100s; here K = 2 by default.
Weights sharded over processes (FSDP / ZeRO-3) are not supported: the inner attack needs the full weights.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field

from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, causal_ce, trainer_class
from alignkit.errors import AlignkitError


class TARConfig(DefenceConfig):
    """TAR: outer steps of (simulated K-step attack, tamper-resistance loss at the attacked weights applied first
    order, retain loss at the current weights)."""

    defence: str = Field("tar", description="defence name")
    inner_steps: int = Field(2, ge=1, le=64, description="K: simulated attack steps per outer step (paper 64)")
    inner_lrs: str = Field("3e-5,8e-5,2e-4", description="learning rates of the simulated attacks, one drawn "
                           "per outer step (comma separated)")
    inner_optimizer: Literal["adam", "sgd"] = Field("adam", description="optimizer of the simulated attacks")
    tr_loss: Literal["entropy", "neg-ce"] = Field("entropy", description="tamper-resistance loss at the attacked "
                                                  "weights: minus the entropy on harmful answers, or -log(CE+1)")
    lambda_tr: float = Field(4.0, ge=0, description="weight of the tamper-resistance loss (paper 4)")
    lambda_retain: float = Field(1.0, ge=0, description="weight of the retain loss (paper 1)")
    retain_rep_weight: float = Field(1.0, ge=0, description="weight of the residual-stream distance to the "
                                     "original model inside the retain loss (0: CE only)")
    retain_mix: float = Field(0.0, ge=0, le=10, description="harmless (instruction, answer) rows added to the "
                              "retain loss per refusal pair (0: refusals only)")
    retain_dataset: str = Field("harmless-instructions", description="retain data for --retain-mix: a "
                                "registered dataset of instructions, or a jsonl/json file with instruction and "
                                "response fields")


def parse_lrs(spec: str) -> list[float]:
    try:
        lrs = [float(x) for x in str(spec).split(",") if x.strip()]
    except ValueError:
        raise AlignkitError(f"--inner-lrs {spec!r}: give comma-separated numbers, e.g. '3e-5,8e-5'") from None
    if not lrs or any(not (0 < x < 1) for x in lrs):
        raise AlignkitError(f"--inner-lrs {spec!r}: every learning rate must be in (0, 1)")
    return lrs


def harmful_ce(model, batch: dict):
    out = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                use_cache=False)
    return causal_ce(out.logits, batch["harmful_labels"]), out.logits


def tamper_resistance_loss(model, batch: dict, kind: str):
    """``(loss, harmful CE)`` of ``model`` (the attacked weights) on the harmful answers."""
    import torch

    ce, logits = harmful_ce(model, batch)
    if kind == "neg-ce":
        return -torch.log(ce + 1.0), ce
    labels = batch["harmful_labels"][:, 1:]
    rows, cols = torch.nonzero(labels != -100, as_tuple=True)
    logp = torch.log_softmax(logits[:, :-1][rows, cols].float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    return -entropy, ce


def simulate_attack(model, batch: dict, steps: int, lr: float, optimizer: str) -> tuple[list, Any]:
    """K attack steps on ``model``'s trainable weights in place; returns ``(saved copies, last harmful CE)``.
    Restore with :func:`restore`."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params] if optimizer == "adam" else None
    v = [torch.zeros_like(p) for p in params] if optimizer == "adam" else None
    b1, b2, eps = 0.9, 0.999, 1e-8
    ce = None
    for k in range(1, steps + 1):
        ce, _ = harmful_ce(model, batch)
        grads = torch.autograd.grad(ce, params, allow_unused=True)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                if g is None:
                    continue
                if optimizer == "adam":
                    m[i].mul_(b1).add_(g, alpha=1 - b1)
                    v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
                    step = (m[i] / (1 - b1 ** k)) / ((v[i] / (1 - b2 ** k)).sqrt_().add_(eps))
                    p.sub_(lr * step)
                else:
                    p.sub_(lr * g)
        del grads
    return saved, ce.detach()


def restore(model, saved: list) -> None:
    import torch

    with torch.no_grad():
        for p, s in zip((p for p in model.parameters() if p.requires_grad), saved):
            p.copy_(s)


def retain_loss(model, frozen, batch: dict, rep_weight: float) -> tuple[Any, dict[str, Any]]:
    """CE on the refusal (and retain-mix) answers + ``rep_weight`` x mean over layers of the mean squared
    distance of the residual stream (real tokens) to the frozen original model's."""
    import torch

    ids = [batch["harmless_input_ids"]]
    att = [batch["harmless_attention_mask"]]
    labels = [batch["harmless_labels"]]
    if "retain_input_ids" in batch and batch["retain_input_ids"].size(0):
        ids.append(batch["retain_input_ids"])
        att.append(batch["retain_attention_mask"])
        labels.append(batch["retain_labels"])
    ids, att, labels = torch.cat(ids), torch.cat(att), torch.cat(labels)
    want_rep = rep_weight > 0 and frozen is not None
    out = model(input_ids=ids, attention_mask=att, use_cache=False, output_hidden_states=want_rep)
    ce = causal_ce(out.logits, labels)
    parts: dict[str, Any] = {"retain_ce": ce}
    if not want_rep:
        return ce, parts
    with torch.no_grad():
        ref = frozen(input_ids=ids, attention_mask=att, use_cache=False, output_hidden_states=True).hidden_states
    mask = att.bool()
    dist = sum(((h[mask] - r[mask]) ** 2).mean() for h, r in zip(out.hidden_states[1:], ref[1:]))
    dist = dist / max(1, len(ref) - 1)
    parts["rep_distance"] = dist
    return ce + rep_weight * dist, parts


def tar_loss(model, unwrapped, frozen, batch: dict, config: TARConfig, lr: float) -> tuple[Any, dict[str, Any]]:
    """One outer step's surrogate loss (see the module docstring): value = lambda_retain * retain +
    lambda_tr * TR(theta'), gradient = lambda_retain * grad retain(theta) + lambda_tr * grad TR(theta')."""
    import torch

    params = [p for p in unwrapped.parameters() if p.requires_grad]
    parts: dict[str, Any] = {}
    if config.lambda_tr > 0:
        saved, attacked_ce = simulate_attack(unwrapped, batch, config.inner_steps, lr, config.inner_optimizer)
        try:
            tr, ce_after = tamper_resistance_loss(unwrapped, batch, config.tr_loss)
            g_tr = torch.autograd.grad(tr, params, allow_unused=True)
        finally:
            restore(unwrapped, saved)
        del saved
        parts.update(tr_loss=tr.detach(), attacked_harmful_ce=ce_after.detach(), inner_lr=lr)
    r, rparts = retain_loss(model, frozen, batch, config.retain_rep_weight)
    parts.update(rparts)
    loss = config.lambda_retain * r
    if config.lambda_tr > 0:
        linear = sum((p * g).sum() - (p.detach() * g).sum() for p, g in zip(params, g_tr) if g is not None)
        loss = loss + config.lambda_tr * (tr.detach() + linear)
    return loss, parts


@DEFENCES.register("tar")
class TAR(Defence):
    config_class = TARConfig
    loss_weights = ("lambda_tr", "lambda_retain")
    description = ("TAR (tamper-resistant safeguards): adversarial meta-learning against simulated K-step "
                   "fine-tuning attacks, tamper-resistance loss at the attacked weights (first order), retain loss")

    def run(self, config, records=None):
        from alignkit.defences.repnoise import validate

        parse_lrs(config.inner_lrs)
        validate(config)  # retain data: one line, before any output folder exists
        return super().run(config, records=records)

    def make_trainer(self, config, model, tokenizer, records, args):
        from alignkit.defences.repnoise import RetainPairCollator, RetainPairDataset, load_retain

        lrs = parse_lrs(config.inner_lrs)
        Base = trainer_class()

        class TARTrainer(Base):
            def train(self, *a, **kw):
                import copy

                if config.retain_rep_weight > 0 and not hasattr(self, "tar_frozen"):
                    frozen = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
                    for p in frozen.parameters():
                        p.requires_grad_(False)
                    self.tar_frozen = frozen
                return super().train(*a, **kw)

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                if getattr(self, "is_fsdp_enabled", False) or (
                        getattr(self, "is_deepspeed_enabled", False)
                        and getattr(self.accelerator.state.deepspeed_plugin, "zero_stage", 0) == 3):
                    raise AlignkitError("tar needs the full weights on every process for its simulated attack; "
                                        "use one process or DDP (not FSDP / ZeRO-3)")
                step = int(self.state.global_step)
                rng = random.Random(f"tar-{config.seed}-{step}-{self.args.process_index}")
                lr = rng.choice(lrs)
                loss, parts = tar_loss(model, self.accelerator.unwrap_model(model), getattr(self, "tar_frozen", None),
                                       inputs, config, lr)
                self.record(**parts)
                return (loss, None) if return_outputs else loss

        retain = load_retain(config) if config.retain_mix > 0 else []
        return TARTrainer(model=model, args=args, train_dataset=RetainPairDataset(tokenizer, records, retain, config),
                          data_collator=RetainPairCollator(tokenizer.pad_token_id), processing_class=tokenizer)
