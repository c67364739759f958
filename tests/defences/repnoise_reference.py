"""A straightforward RepNoise loss written from the formula the way the original code does it: forward hooks
on *every* module registered on each call (removed at the end of the call here, so tests do not leak them), the
output hidden states of the harmful forward each turned into full B x T x V logits (all of them kept alive for
backward), the MMD from an explicit (2B) x (2B) x D difference tensor.

Used ONLY by the tests (our loss == this loss, same noise seed, for the full loss and each ablation, both loss
variants) and by ``benchmarks/repnoise_step.py``; it lives in tests/, outside the installed package. The
formula, the masks and the noise are those of :mod:`alignkit.defences.repnoise` (see its docstring).

``loss_variant="official"`` follows the original loss.py's ``masked_token_ce_loss`` literally: logits
multiplied by ``mask[:-1]``, labels multiplied by ``mask[1:]`` with label 0 ignored, the same mask (harmful ids
!= harmless ids) on the harmless CE, and ``(CE(final logits) + sum_j CE(head(norm(h_j)))) / (L+1)`` over
all L+1 hidden states (the last one normed twice). Hooks are still removed after each call (the original's
accumulate; that changes memory, not the value).
"""

from __future__ import annotations

from typing import Any

from alignkit.defences.arch import find_parts, parse_layers
from alignkit.defences.repnoise import RepNoiseConfig, gaussian_noise


class MMDLoss:
    """The original ``MMD_loss`` (kernel_mul 2, kernel_num 5), bandwidth from ``L2_distance.data``."""

    def __init__(self, kernel_mul: float = 2.0, kernel_num: int = 5):
        self.kernel_mul = kernel_mul
        self.kernel_num = kernel_num

    def gaussian_kernel(self, source, target):
        import torch

        n_samples = int(source.size(0)) + int(target.size(0))
        total = torch.cat([source, target], dim=0)
        total0 = total.unsqueeze(0).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
        total1 = total.unsqueeze(1).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
        l2 = ((total0 - total1) ** 2).sum(2)
        bandwidth = torch.sum(l2.data) / (n_samples ** 2 - n_samples)
        bandwidth /= self.kernel_mul ** (self.kernel_num // 2)
        bandwidths = [bandwidth * (self.kernel_mul ** i) for i in range(self.kernel_num)]
        return sum(torch.exp(-l2 / bw) for bw in bandwidths)

    def __call__(self, source, target):
        import torch

        b = int(source.size(0))
        k = self.gaussian_kernel(source, target)
        return torch.mean(k[:b, :b] + k[b:, b:] - k[:b, b:] - k[b:, :b])


def register_activation_hooks(model) -> tuple[dict[str, Any], list]:
    """The original style: a forward hook on every named module, keyed by module name."""
    activations: dict[str, Any] = {}
    handles = []
    for name, module in model.named_modules():
        def _hook(mod, inp, out, name=name):
            activations[name] = out
        handles.append(module.register_forward_hook(_hook))
    return activations, handles


def masked_token_ce(logits, input_ids, target_mask):
    """Token-mean CE of ``input_ids[:, 1:]`` from ``logits[:, :-1]`` where ``target_mask`` (B x T-1) holds."""
    import torch

    shift_logits = logits[:, :-1, :].contiguous()
    shift_labels = input_ids[:, 1:].clone()
    expanded = target_mask.unsqueeze(-1).expand(-1, -1, shift_logits.size(-1)).to(shift_logits.dtype)
    shift_logits = shift_logits * expanded
    shift_labels[~target_mask] = -100
    return torch.nn.functional.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)).float(),
                                             shift_labels.view(-1), ignore_index=-100)


def official_masked_token_ce(logits, input_ids, mask):
    """The original ``masked_token_ce_loss``: logits * mask[:-1], labels * mask[1:], label 0 -> ignored."""
    import torch

    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = input_ids[..., 1:].contiguous()
    logit_mask = mask[..., :-1].unsqueeze(-1).expand(-1, -1, shift_logits.size(-1)).to(shift_logits.dtype)
    shift_logits = shift_logits * logit_mask
    shift_labels = shift_labels * mask[..., 1:].long()
    shift_labels = shift_labels.masked_fill(shift_labels == 0, -100)
    return torch.nn.functional.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)).float(),
                                             shift_labels.view(-1), ignore_index=-100)


def reference_repnoise_loss(model, batch: dict, config: RepNoiseConfig, seed: int) -> tuple[Any, dict[str, Any]]:
    import torch

    official = getattr(config, "loss_variant", "alignkit") == "official"
    if "retain_input_ids" in batch and batch["retain_input_ids"].size(0):
        raise NotImplementedError("the reference has no retain mix")

    parts_ = find_parts(model)
    n_layers = parts_.num_layers
    noise_layers = parse_layers(config.noise_layers, n_layers, "--noise-layers")
    activations, handles = register_activation_hooks(model)
    try:
        harmful_out = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                            output_hidden_states=True, use_cache=False)
        mlp_acts = [activations[f"{parts_.layer_path}.{i}.{parts_.mlp_attr}"] for i in range(n_layers)]
        mlp_acts = [a[0] if isinstance(a, tuple) else a for a in mlp_acts]
        harmless_out = model(input_ids=batch["harmless_input_ids"],
                             attention_mask=batch["harmless_attention_mask"], use_cache=False)
    finally:
        for h in handles:
            h.remove()

    if official:
        mask = (batch["harmful_input_ids"] != batch["harmless_input_ids"]) if config.use_mask else \
            batch["harmful_attention_mask"].bool()
        target_mask = None
    elif config.use_mask:
        mask = batch["diff_mask"].bool()
        target_mask = mask[:, 1:] & (batch["harmful_labels"][:, 1:] != -100)
    else:
        mask = batch["harmful_attention_mask"].bool()
        target_mask = mask[:, 1:].clone()

    if official:  # the harmful side's mask on the harmless ids
        stab = official_masked_token_ce(harmless_out.logits, batch["harmless_input_ids"], mask)
    else:  # harmless (stabilising) CE on the answer tokens
        logits = harmless_out.logits[:, :-1].float()
        labels = batch["harmless_labels"][:, 1:]
        stab = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                 ignore_index=-100)
    loss = stab
    out: dict[str, Any] = {"harmless_ce": stab}

    if config.noise:
        mmd_fn = MMDLoss()
        noise_mmd = 0
        for i in noise_layers:
            hidden = mlp_acts[i]
            hm = mask.unsqueeze(-1).expand(hidden.size()).to(hidden.dtype)
            hiddens = hidden * hm
            gaussian = gaussian_noise(hidden.shape, seed=seed, layer=i, device=hidden.device,
                                      dtype=hidden.dtype) * hm
            noise_mmd = noise_mmd + mmd_fn(hiddens.view(hiddens.size(0), -1), gaussian.view(gaussian.size(0), -1))
        noise_mmd = noise_mmd / len(noise_layers)
        loss = loss + config.beta * noise_mmd
        out["noise_mmd"] = noise_mmd

    if config.ascent:
        lm_head = model.get_output_embeddings()
        hs = harmful_out.hidden_states  # L+1 entries; the last one is already normed (== last_hidden_state)
        if official:
            all_logits = [harmful_out.logits]
            if config.logit_lens:
                all_logits += [lm_head(parts_.norm(h)) for h in hs]
            losses = [official_masked_token_ce(lg, batch["harmful_input_ids"], mask) for lg in all_logits]
            harmful = sum(losses) / (len(hs) if config.logit_lens else 1)
        else:
            if config.logit_lens:
                all_logits = [lm_head(parts_.norm(h)) for h in hs[:-1]] + [lm_head(hs[-1])]
            else:
                all_logits = [lm_head(hs[-1])]
            losses = [masked_token_ce(lg, batch["harmful_input_ids"], target_mask) for lg in all_logits]
            harmful = sum(losses) / len(losses)
        loss = loss - config.alpha * torch.log(harmful + 1)
        out["harmful_ce"] = harmful
    return loss, out
