"""Our RepNoise loss == the straightforward reference implementation (same noise seed), to 1e-5 relative, for
the full loss and each ablation, on tiny-random-llama and on tiny random GPT-NeoX / GPT-2 / Qwen2 configs;
gradients agree too."""

from __future__ import annotations

import pytest

from defence_support import random_batch

ABLATIONS = {
    "full": {},
    "noise-only": {"ascent": False},
    "ascent-only": {"noise": False},
    "no-mask": {"use_mask": False},
    "no-logit-lens": {"logit_lens": False},
    "noise-layer-subset": {"noise_layers": "1"},
    "frozen-layer-0": {"freeze_layers": "0", "freeze_embeddings": True},
    "small-chunks": {"lens_chunk_rows": 7},
    "official": {"loss_variant": "official"},
    "official-no-lens": {"loss_variant": "official", "logit_lens": False},
    "official-no-mask": {"loss_variant": "official", "use_mask": False},
    "official-noise-only": {"loss_variant": "official", "ascent": False},
}


def _both(model, batch, cfg, seed=11):
    import torch

    from alignkit.defences.repnoise import freeze, make_hooks, repnoise_loss
    from repnoise_reference import reference_repnoise_loss

    for p in model.parameters():
        p.requires_grad_(True)
    frozen = freeze(model, cfg)
    model.zero_grad(set_to_none=True)
    ref, ref_parts = reference_repnoise_loss(model, batch, cfg, seed)
    ref.backward()
    ref_grads = {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with make_hooks(model, cfg) as hooks:
        ours, parts = repnoise_loss(model, batch, hooks, cfg, seed)
        ours.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    return ref.detach(), ours.detach(), ref_parts, parts, ref_grads, grads, frozen, torch


def _check(model, batch, cfg):
    ref, ours, ref_parts, parts, ref_grads, grads, frozen, torch = _both(model, batch, cfg)
    assert torch.isfinite(ours)
    assert abs(float(ours) - float(ref)) <= 1e-5 * abs(float(ref)), (float(ours), float(ref))
    assert set(parts) == set(ref_parts)
    for k in parts:
        assert abs(float(parts[k].detach()) - float(ref_parts[k].detach())) <= 1e-5 * max(1e-6, abs(float(ref_parts[k].detach()))), k
    for n, g in grads.items():
        rg = ref_grads[n]
        if rg is None or g is None:
            assert rg is None and g is None, n
            continue
        scale = float(rg.abs().max()) + 1e-8
        assert float((g - rg).abs().max()) <= 2e-4 * scale, n
    return frozen, grads


@pytest.fixture(scope="module")
def small_llama():
    """A random Llama with a small vocabulary (the ablation grid runs fast on it)."""
    return _tiny_arch("llama")


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_loss_equals_reference_each_ablation(small_llama, name):
    from alignkit.defences.repnoise import RepNoiseConfig

    cfg = RepNoiseConfig(beta=0.5, **ABLATIONS[name])  # beta raised so the noise term shows in the total
    frozen, grads = _check(small_llama, random_batch(97), cfg)
    if cfg.freeze_layers:
        assert frozen and all(grads[n] is None for n in grads if n.startswith("model.layers.0."))
        assert grads["model.layers.1.mlp.down_proj.weight"] is not None


@pytest.mark.parametrize("kw", [{}, {"use_mask": False, "noise_layers": "0"}, {"loss_variant": "official"}],
                         ids=["defaults", "no-mask", "official"])
def test_loss_equals_reference_tiny_random_llama(tiny, batch, kw):
    """On the project's tiny-random-llama (SmolLM2 tokenizer, real paired data), paper defaults."""
    from alignkit.defences.repnoise import RepNoiseConfig

    _check(tiny[0], batch, RepNoiseConfig(**kw))


def _tiny_arch(kind: str):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    if kind == "gpt_neox":
        cfg = GPTNeoXConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64)
    elif kind == "gpt2":
        cfg = GPT2Config(vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_positions=64)
    elif kind == "llama":
        cfg = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    else:
        cfg = Qwen2Config(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2", "qwen2"])
def test_other_architectures(kind):
    from alignkit.defences.repnoise import RepNoiseConfig

    model = _tiny_arch(kind)
    b = random_batch(97)
    for kw in ({}, {"use_mask": False, "noise_layers": "0,2"}, {"loss_variant": "official"}):
        _check(model, b, RepNoiseConfig(beta=0.5, **kw))


def test_gradient_checkpointing_same_loss_and_grads(small_llama):
    """Non-reentrant checkpointing recomputes layers in backward: the hooks must not capture twice."""
    import torch

    from alignkit.defences.base import disable_checkpointing, enable_checkpointing
    from alignkit.defences.repnoise import RepNoiseConfig, make_hooks, repnoise_loss

    model, batch = small_llama, random_batch(97)
    cfg = RepNoiseConfig(beta=0.5)
    out = []
    for gc in (False, True):
        model.train()
        if gc:
            enable_checkpointing(model)
        model.zero_grad(set_to_none=True)
        with make_hooks(model, cfg) as hooks:
            loss, _ = repnoise_loss(model, batch, hooks, cfg, seed=5)
            loss.backward()
        out.append((float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}))
        if gc:
            disable_checkpointing(model)
    model.eval()
    model.zero_grad(set_to_none=True)
    assert abs(out[0][0] - out[1][0]) <= 1e-5 * abs(out[0][0])
    for n, g in out[0][1].items():
        assert torch.allclose(g, out[1][1][n], rtol=1e-4, atol=1e-6 * float(g.abs().max() + 1)), n


def test_lens_ce_function_matches_autograd():
    import torch

    from alignkit.defences.repnoise import LensCrossEntropy

    torch.manual_seed(0)
    h = torch.randn(13, 8, requires_grad=True)
    w = torch.randn(21, 8, requires_grad=True)
    b = torch.randn(21, requires_grad=True)
    t = torch.randint(0, 21, (13,))
    ours = LensCrossEntropy.apply(h, w, b, t, 4)
    (3.0 * ours).backward()
    g_ours = [x.grad.clone() for x in (h, w, b)]
    for x in (h, w, b):
        x.grad = None
    ref = torch.nn.functional.cross_entropy(h @ w.t() + b, t, reduction="sum")
    (3.0 * ref).backward()
    assert torch.allclose(ours, ref, rtol=1e-6)
    for a, r in zip(g_ours, (h.grad, w.grad, b.grad)):
        assert torch.allclose(a, r, rtol=1e-5, atol=1e-6)


def test_mmd_matches_reference_formula():
    import torch

    from alignkit.defences.repnoise import mmd_multi_kernel
    from repnoise_reference import MMDLoss

    torch.manual_seed(0)
    x, y = torch.randn(4, 50) * 0.3, torch.randn(4, 50)
    assert torch.allclose(mmd_multi_kernel(x, y), MMDLoss()(x, y), rtol=1e-5)
