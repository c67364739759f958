"""Benchmark one RepNoise training step: ours vs the straightforward reference implementation, and vs a plain
fine-tuning step, on ``smollm2-135m-instruct`` at batch 4 x 128 tokens of the project's paired data, on CPU.

    .venv/bin/python benchmarks/repnoise_step.py [--batch 4 --length 128 --steps 2 --threads 2]

Each variant runs in its own subprocess (fresh allocator, its own peak memory): load the model, build the same
batch, run one warm-up step (its loss is the reported loss value: same initial weights, same noise seed), then
``--steps`` timed steps (zero_grad, loss, backward, Adam step); the step time is the median of the timed ones.

Peak memory: torch's CPU allocations are invisible to ``tracemalloc``, so we read the process's resident set:
``peak_rss`` = ``ru_maxrss`` at the end (lifetime peak, includes the ~1 GB of Python + torch + weights that every
variant shares) and ``step_peak`` = that peak minus the resident set measured just before the first step (what
the step itself adds: activations, logits, gradients, Adam state). Ratios use ``step_peak`` (``peak_rss`` ratios
are printed too). The last line printed is one JSON object with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("ours", "reference", "plain")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def build_batch(tok, batch: int, length: int, template: str = "chat"):
    from alignkit import data
    from alignkit.formatting import PairCollator, encode_pair

    recs = data.load("paired-refusals", "train", 0)
    feats = []
    for r in recs:  # the first pairs whose harmful side fills the sequence (as a 128-token defence batch)
        f = encode_pair(tok, r.question, r.harmful, r.harmless, template, length)
        if len(f["harmful_input_ids"]) == length:
            feats.append(f)
        if len(feats) == batch:
            break
    return PairCollator(tok.pad_token_id)(feats)


def run_variant(variant: str, args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from alignkit.defences.repnoise import RepNoiseConfig, make_hooks, repnoise_loss
    from alignkit.defences.repnoise_reference import reference_repnoise_loss
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(args.model)
    model.train()
    batch = build_batch(tok, args.batch, args.length)
    cfg = RepNoiseConfig()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    hooks = make_hooks(model, cfg) if variant == "ours" else None
    if hooks is not None:
        hooks.register()  # once, for every step

    def step(seed: int) -> float:
        opt.zero_grad(set_to_none=True)
        if variant == "ours":
            loss, _ = repnoise_loss(model, batch, hooks, cfg, seed)
        elif variant == "reference":
            loss, _ = reference_repnoise_loss(model, batch, cfg, seed)
        else:  # plain fine-tuning step on the harmful sequences (what an attack step costs)
            out = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                        labels=batch["harmful_labels"], use_cache=False)
            loss = out.loss
        loss.backward()
        opt.step()
        return float(loss.detach())

    rss_before = _rss_mb()
    times, losses = [], []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        losses.append(step(seed=1000 + i))
        times.append(time.perf_counter() - t0)
    peak = _maxrss_mb()
    if hooks is not None:
        hooks.remove()
    return {"variant": variant, "loss_first_step": losses[0], "losses": losses,
            "warmup_s": round(times[0], 3), "step_s": round(statistics.median(times[1:]), 3),
            "step_times": [round(t, 3) for t in times[1:]], "rss_before_mb": round(rss_before, 1),
            "peak_rss_mb": round(peak, 1), "step_peak_mb": round(peak - rss_before, 1),
            "batch": [args.batch, args.length], "diff_mask_tokens": int(batch["diff_mask"].sum()),
            "threads": args.threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args)), flush=True)
        return

    results = {}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    for v in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", v, "--model", args.model, "--batch", str(args.batch),
               "--length", str(args.length), "--steps", str(args.steps), "--threads", str(args.threads)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"variant {v} failed:\n{p.stderr[-3000:]}")
        results[v] = json.loads(line[len("RESULT "):])
        print(json.dumps(results[v]), flush=True)

    def ratio(a, b):
        return round(a / b, 3) if b else None

    out = {"model": args.model, "batch": [args.batch, args.length], "load_avg_1m": os.getloadavg()[0]}
    if "ours" in results and "reference" in results:
        o, r = results["ours"], results["reference"]
        out.update({
            "loss_ours": o["loss_first_step"], "loss_reference": r["loss_first_step"],
            "loss_rel_diff": abs(o["loss_first_step"] - r["loss_first_step"]) / abs(r["loss_first_step"]),
            "speedup_vs_reference": ratio(r["step_s"], o["step_s"]),
            "step_peak_mem_ratio_vs_reference": ratio(o["step_peak_mb"], r["step_peak_mb"]),
            "peak_rss_ratio_vs_reference": ratio(o["peak_rss_mb"], r["peak_rss_mb"]),
        })
    if "ours" in results and "plain" in results:
        o, pl = results["ours"], results["plain"]
        out.update({"time_ratio_vs_plain_ft": ratio(o["step_s"], pl["step_s"]),
                    "step_peak_mem_ratio_vs_plain_ft": ratio(o["step_peak_mb"], pl["step_peak_mb"])})
    out["step_s"] = {k: v["step_s"] for k, v in results.items()}
    out["step_peak_mb"] = {k: v["step_peak_mb"] for k, v in results.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
