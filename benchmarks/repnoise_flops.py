"""FLOP model of one RepNoise step against one plain fine-tuning step, for the benchmark's model and for larger
public model shapes: how far below the measured time ratio (benchmarks/repnoise_step.py) an exact implementation
can go, and why the ratio depends on the model's shape.

    .venv/bin/python benchmarks/repnoise_flops.py [--batch 4 --length 128 --masked 235 --harmless-answer 235]

Counted (multiply-adds x 2; training = forward + backward = 3 x forward for every matmul with trainable
inputs):

- plain step (what an attack step costs): the body and the LM head over all ``batch x length`` tokens;
- RepNoise step (alignkit's loss): the body over the harmful AND the harmless sequence of each pair
  (``2 x batch x length`` tokens), the LM head on the harmless answer tokens only (harmless CE), and the logit
  lens: every hidden state j = 0..L through the final norm and the LM head on the ``masked`` harmful answer
  tokens (forward logits, then two gradient matmuls: into the hidden states and into the tied LM-head weight).
  The noise (MMD) term and norms are left out (< 1% here).

The lens costs ``(L + 1) x masked x vocab x d x 6`` flops: for a small model with a large vocabulary (SmolLM2-135M:
vocab 49,152 x d 576 is a quarter of its parameters) it alone is ~3 plain steps, so no exact implementation in
float32 gets a RepNoise step to 3 x a plain step at that shape; for 7-8B models the body dominates and the same
loss costs 2.3-3.0 x. Shapes are the public ``config.json`` values of each model (hidden size, layers, MLP size,
attention and key/value heads, vocabulary); the benchmark's own model is read from its local config.

Written by hand (a few lines of arithmetic): FLOP counters count one executed step on one model and cannot price a
7B shape on this machine. ``--count`` checks the model on the benchmark's own model: it runs one step of each
(alignkit's RepNoise loss and a plain step, the benchmark batch) under ``torch.utils.flop_counter.FlopCounterMode``
and prints the counted TFLOP beside the model's (the counter misses the fused lens's in-place
``addmm_`` into the weight gradient; that one matmul is added by its formula and reported separately).
"""

from __future__ import annotations

import argparse
import json

# public config.json values: hidden, layers, intermediate (MLP), attention heads, key/value heads, vocabulary
SHAPES = {
    "SmolLM2-1.7B": dict(d=2048, layers=24, inter=8192, heads=32, kv_heads=32, vocab=49152),
    "Qwen2.5-0.5B": dict(d=896, layers=24, inter=4864, heads=14, kv_heads=2, vocab=151936),
    "Llama-2-7B": dict(d=4096, layers=32, inter=11008, heads=32, kv_heads=32, vocab=32000),
    "Llama-3-8B": dict(d=4096, layers=32, inter=14336, heads=32, kv_heads=8, vocab=128256),
}


def shape_of_local(model: str) -> dict:
    """The shape of a local/prepared model from its config.json (no weights loaded)."""
    from transformers import AutoConfig

    from alignkit.models import resolve_model

    c = AutoConfig.from_pretrained(resolve_model(model), trust_remote_code=False)
    heads = c.num_attention_heads
    return dict(d=c.hidden_size, layers=c.num_hidden_layers, inter=c.intermediate_size, heads=heads,
                kv_heads=getattr(c, "num_key_value_heads", None) or heads, vocab=c.vocab_size)


def step_flops(shape: dict, batch: int, length: int, masked: int, harmless_answer: int) -> dict:
    d, L, V = shape["d"], shape["layers"], shape["vocab"]
    kv = d * shape["kv_heads"] // shape["heads"]
    layer_params = 2 * d * d + 2 * d * kv + 3 * d * shape["inter"]  # q, o, k, v; gated MLP
    attn_per_token = 2 * 2 * (length / 2) * d  # QK^T and AV against a causal context of length/2 on average
    body_fwd_per_token = L * (2 * layer_params + attn_per_token)
    head_fwd_per_token = 2 * V * d
    tokens = batch * length
    plain = 3 * tokens * (body_fwd_per_token + head_fwd_per_token)
    body = 3 * 2 * tokens * body_fwd_per_token
    harmless_head = 3 * harmless_answer * head_fwd_per_token
    lens = 3 * (L + 1) * masked * head_fwd_per_token
    total = body + harmless_head + lens
    return {"plain_tflop": plain / 1e12, "repnoise_tflop": total / 1e12, "lens_tflop": lens / 1e12,
            "two_sequences_body_tflop": body / 1e12, "ratio": total / plain, "lens_vs_plain": lens / plain,
            "floor_without_lens": (body + harmless_head) / plain}


def count_flops(args) -> dict:
    """Count one training step (loss + backward) of alignkit's RepNoise loss and of a plain step, on the benchmark's
    batch, with torch's FlopCounterMode (matmuls, convolutions and attention as torch counts them)."""
    import os
    import sys
    from pathlib import Path

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from repnoise_step import build_batch

    from alignkit.defences.repnoise import RepNoiseConfig, make_hooks, repnoise_loss
    from alignkit.models import load_causal_lm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_causal_lm(args.model)
    model.train()
    batch = build_batch(tok, args.batch, args.length)
    hooks = make_hooks(model, RepNoiseConfig())
    hooks.register()
    out = {}
    for name in ("repnoise", "plain"):
        model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as fc:
            if name == "repnoise":
                loss, _ = repnoise_loss(model, batch, hooks, RepNoiseConfig(), 1000)
            else:
                loss = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                             labels=batch["harmful_labels"], use_cache=False).loss
            loss.backward()
        out[f"{name}_tflop"] = fc.get_total_flops() / 1e12
    hooks.remove()
    out["masked"] = int(batch["diff_mask"].sum())
    # FlopCounterMode does not see the in-place ``grad_w.addmm_`` of the fused lens (the gradient into the LM
    # head weight, computed inside its forward): add it by the formula, and say so in the output
    cfg = model.config
    out["uncounted_lens_weight_grad_tflop"] = (2 * (cfg.num_hidden_layers + 1) * out["masked"] * cfg.vocab_size
                                               * cfg.hidden_size) / 1e12
    out["repnoise_counted_tflop"] = out["repnoise_tflop"]
    out["repnoise_tflop"] += out["uncounted_lens_weight_grad_tflop"]
    out["ratio"] = out["repnoise_tflop"] / out["plain_tflop"]
    out["harmless_answer"] = int((batch["harmless_labels"] != -100).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the benchmark's model (its config is read)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--masked", type=int, default=235, help="harmful answer tokens under the lens (the benchmark "
                    "batch's diff_mask_tokens)")
    ap.add_argument("--harmless-answer", type=int, default=235, help="harmless answer tokens (harmless CE)")
    ap.add_argument("--count", action="store_true", help="also count the flops of one executed step of each on "
                    "--model with torch's FlopCounterMode (slow: one RepNoise and one plain step)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.count:
        counted = count_flops(args)
        args.masked, args.harmless_answer = counted["masked"], counted["harmless_answer"]
    shapes = {args.model: shape_of_local(args.model), **SHAPES}
    rows = {}
    print(f"| shape | plain step TFLOP | RepNoise step TFLOP | lens / plain | two sequences, no lens | predicted ratio |")
    print("|---|---|---|---|---|---|")
    for name, shape in shapes.items():
        # token counts scale with the batch: the same shares of answer tokens as the benchmark batch
        r = step_flops(shape, args.batch, args.length, args.masked, args.harmless_answer)
        rows[name] = {k: round(v, 4) for k, v in r.items()}
        print(f"| {name} | {r['plain_tflop']:.3f} | {r['repnoise_tflop']:.3f} | {r['lens_vs_plain']:.2f}x | "
              f"{r['floor_without_lens']:.2f}x | {r['ratio']:.2f}x |")
    out = {"batch": [args.batch, args.length], "masked": args.masked, "harmless_answer": args.harmless_answer,
           "shapes": rows}
    if args.count:
        out["counted"] = counted
        print(f"counted on {args.model}: plain {counted['plain_tflop']:.3f} TFLOP, RepNoise "
              f"{counted['repnoise_counted_tflop']:.3f} TFLOP counted + {counted['uncounted_lens_weight_grad_tflop']:.3f}"
              f" (the lens's in-place weight-gradient matmul, which the counter does not see) = "
              f"{counted['repnoise_tflop']:.3f}, ratio {counted['ratio']:.2f}x")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
