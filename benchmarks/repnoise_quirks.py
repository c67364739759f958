"""Measure each difference between alignkit's RepNoise loss and the original loss.py, one at a time, on the
benchmark batch (smollm2-135m-instruct, 4 x 128 tokens of paired-refusals, noise seed 1000), forward only.

    .venv/bin/python benchmarks/repnoise_quirks.py [--threads 1]

Rows: ``alignkit`` (the formula), ``+a`` harmless CE with the diff mask on the harmless ids (padding opposite
harmful tokens trained, tokens equal to the harmful one skipped), ``+b`` zeroed logits before each masked run
(log V, no gradient), ``+c`` final-logits CE added and L+2 terms divided by L+1 (last state normed twice),
``+d`` harmful targets by ids only (padding / eos targets, label 0 ignored), and ``official`` (all four).
Prints one JSON object per row: total loss and its terms, and how many targets each side has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from repnoise_step import build_batch

    from alignkit.defences.repnoise import (RepNoiseConfig, RepNoiseHooks, Targets, harmless_targets,
                                            lens_targets, official_mask)
    from alignkit.models import load_causal_lm

    torch.set_num_threads(args.threads)
    model, tok = load_causal_lm(args.model)
    batch = build_batch(tok, 4, 128)
    m = official_mask(batch, True)

    def side(ids, target_mask, zero):
        return Targets.from_mask(ids, target_mask, m[:, :-1] if zero else None)

    def targets(a: bool, b: bool, d: bool):
        hi, si = batch["harmful_input_ids"], batch["harmless_input_ids"]
        if a:
            s = side(si, m[:, 1:] & si[:, 1:].ne(0), b)
        else:
            s = side(si, batch["harmless_labels"][:, 1:] != -100, b)
        if d:
            h = side(hi, m[:, 1:] & hi[:, 1:].ne(0), b)
        else:
            h = side(hi, (batch["diff_mask"][:, 1:] != 0) & (batch["harmful_labels"][:, 1:] != -100), b)
        return h, s

    rows = {"alignkit": (0, 0, 0, 0), "+a": (1, 0, 0, 0), "+b": (0, 1, 0, 0), "+c": (0, 0, 1, 0),
            "+d": (0, 0, 0, 1), "official": (1, 1, 1, 1)}
    cfg = RepNoiseConfig()
    b = batch["harmful_input_ids"].size(0)
    for name, (a, zb, c, d) in rows.items():
        hooks = RepNoiseHooks(model, variant="official" if c else "alignkit")
        h, s = targets(bool(a), bool(zb), bool(d))
        with hooks, torch.no_grad():
            hooks.start(b, h, s)
            model(input_ids=torch.cat([batch["harmful_input_ids"], batch["harmless_input_ids"]]),
                  attention_mask=torch.cat([batch["harmful_attention_mask"], batch["harmless_attention_mask"]]),
                  use_cache=False, logits_to_keep=1)
            stab, lens = hooks.retain_mean(), hooks.lens_mean()
            mmd = hooks.mmd_mean(batch, True, 1000)
            hooks.stop()
        total = stab + cfg.beta * mmd - cfg.alpha * torch.log(lens + 1)
        print(json.dumps({"row": name, "total": round(float(total), 6), "harmless_ce": round(float(stab), 6),
                          "harmful_lens_ce": round(float(lens), 6), "noise_mmd": round(float(mmd), 6),
                          "harmless_targets": [int(s.tokens.numel()), s.n_const],
                          "harmful_targets": [int(h.tokens.numel()), h.n_const]}), flush=True)


if __name__ == "__main__":
    main()
