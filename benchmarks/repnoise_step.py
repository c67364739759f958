"""Benchmark one RepNoise training step: ours vs the straightforward reference implementation, and vs a plain
fine-tuning step, on ``smollm2-135m-instruct`` at batch 4 x 128 tokens of the project's paired data, on CPU,
at two points of training:

- ``early``: the model as loaded (the first steps of a defence);
- ``late``: a state with high harmful CE, as late in a RepNoise run: the model after ``--late-ascent-steps``
  steps of gradient ascent (Adam, lr ``--late-lr``) on the harmful answers of the same batch, made once and
  shared by every variant. There the logit-lens softmax probabilities fall below float32's smallest normal
  number (1.2e-38); on many CPUs matmuls over such denormal numbers run 100x slower. Training runs inside
  :func:`alignkit.denormals.flush_denormals` (as ``alignkit defend`` / attacks do) and the fused lens floors
  probabilities below exp(-87) to 0, so ours should cost the same early and late.

    .venv/bin/python benchmarks/repnoise_step.py [--batch 4 --length 128 --steps 2 --threads 2]

Each variant runs in its own subprocess (fresh allocator, its own peak memory): load the model, build the same
batch, run one warm-up step (its loss is the reported loss value: same initial weights, same noise seed), then
``--steps`` timed steps (zero_grad, loss, backward, Adam step); the step time is the median of the timed ones.
``time_ratio_vs_plain_ft`` and ``loss_rel_diff`` are reported for both points; the ``late`` diagnostics say how
many lens probabilities are denormal there and how much slower a matmul over them is on this CPU without
flush-to-zero (``denormal_matmul_slowdown``).

Peak memory: torch's CPU allocations are invisible to ``tracemalloc``, so we read the process's resident set:
``peak_rss`` = ``ru_maxrss`` at the end (lifetime peak, includes the ~1 GB of Python + torch + weights that every
variant shares) and ``step_peak`` = that peak minus the resident set measured just before the first step (what
the step itself adds: activations, logits, gradients, Adam state). Ratios use ``step_peak`` (``peak_rss`` ratios
are printed too). The last line printed is one JSON object with the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("ours", "reference", "plain")
PHASES = ("early", "late")
HERE = Path(__file__).resolve().parent


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
    sys.path.insert(0, str(HERE.parent / "tests" / "defences"))
    from repnoise_reference import reference_repnoise_loss

    from alignkit.defences.repnoise import RepNoiseConfig, make_hooks, repnoise_loss
    from alignkit.denormals import flush_denormals
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(args.model)
    if args.phase == "late":
        from safetensors.torch import load_file

        model.load_state_dict(load_file(args.late_state), strict=False)
    model.train()
    batch = build_batch(tok, args.batch, args.length)
    cfg = RepNoiseConfig(loss_variant=args.loss_variant)
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
    with flush_denormals():
        for i in range(args.steps + 1):
            t0 = time.perf_counter()
            losses.append(step(seed=1000 + i))
            times.append(time.perf_counter() - t0)
    peak = _maxrss_mb()
    if hooks is not None:
        hooks.remove()
    return {"variant": variant, "phase": args.phase, "loss_first_step": losses[0], "losses": losses,
            "warmup_s": round(times[0], 3), "step_s": round(statistics.median(times[1:]), 3),
            "step_times": [round(t, 3) for t in times[1:]], "rss_before_mb": round(rss_before, 1),
            "peak_rss_mb": round(peak, 1), "step_peak_mb": round(peak - rss_before, 1),
            "batch": [args.batch, args.length], "diff_mask_tokens": int(batch["diff_mask"].sum()),
            "threads": args.threads}


def make_late_state(args) -> dict:
    """Gradient ascent on the harmful answers of the benchmark batch until harmful CE is high; saves the weights
    and reports the harmful CE, the share of denormal lens probabilities and a matmul timed over them with and
    without flush-to-zero (does this CPU penalise denormals?)."""
    import torch
    from safetensors.torch import save_file

    from alignkit.defences.arch import find_parts
    from alignkit.denormals import flush_denormals
    from alignkit.models import load_causal_lm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_causal_lm(args.model)
    model.train()
    batch = build_batch(tok, args.batch, args.length)
    opt = torch.optim.Adam(model.parameters(), lr=args.late_lr)
    ces = []
    with flush_denormals():
        for _ in range(args.late_ascent_steps):
            opt.zero_grad(set_to_none=True)
            out = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                        labels=batch["harmful_labels"], use_cache=False)
            (-out.loss).backward()
            opt.step()
            ces.append(round(float(out.loss.detach()), 3))
    model.eval()
    parts = find_parts(model)
    with torch.no_grad():
        out = model(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"],
                    labels=batch["harmful_labels"], use_cache=False, output_hidden_states=True)
        final_ce = float(out.loss)
        tgt = (batch["diff_mask"][:, 1:] != 0) & (batch["harmful_labels"][:, 1:] != -100)
        rows, cols = torch.nonzero(tgt, as_tuple=True)
        feats = torch.cat([parts.norm(h[rows, cols]) for h in out.hidden_states[:-1]]
                          + [out.hidden_states[-1][rows, cols]])
        w = parts.lm_head.weight
        logp = torch.log_softmax((feats[:682] @ w.t()).float(), dim=-1)
        p = logp.exp()  # flush off here: the denormals as they come out of exp
        denormal_share = float(((p > 0) & (p < 1.1754944e-38)).float().mean())
        below_floor = float((logp <= -87.0).float().mean())
        hc = feats[:682].float()
        timing = {}
        for ftz in (False, True):
            ctx = flush_denormals() if ftz else contextlib.nullcontext()
            with ctx:
                t0 = time.perf_counter()
                _ = p @ w
                timing[ftz] = time.perf_counter() - t0
            del ctx
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()
               if k != "lm_head.weight" or not model.config.tie_word_embeddings}, args.make_late)
    return {"ascent_ce": ces, "harmful_final_ce": round(final_ce, 3), "lens_rows_timed": int(hc.size(0)),
            "lens_denormal_share": round(denormal_share, 4), "lens_share_below_floor": round(below_floor, 4),
            "denormal_matmul_s": round(timing[False], 3), "denormal_matmul_ftz_s": round(timing[True], 3),
            "denormal_matmul_slowdown": round(timing[False] / max(1e-9, timing[True]), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phases", default=",".join(PHASES), help="early, late or both (comma separated)")
    ap.add_argument("--loss-variant", default="alignkit", choices=("alignkit", "official"))
    ap.add_argument("--late-ascent-steps", type=int, default=8, help="ascent steps that make the late state")
    ap.add_argument("--late-lr", type=float, default=1e-3, help="Adam lr of those ascent steps")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=PHASES, default="early", help=argparse.SUPPRESS)
    ap.add_argument("--late-state", help=argparse.SUPPRESS)
    ap.add_argument("--make-late", help=argparse.SUPPRESS)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.make_late:
        print("RESULT " + json.dumps(make_late_state(args)), flush=True)
        return
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args)), flush=True)
        return

    src = str(HERE.parent / "src")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    common = ["--model", args.model, "--batch", str(args.batch), "--length", str(args.length), "--steps",
              str(args.steps), "--threads", str(args.threads), "--loss-variant", args.loss_variant]

    def sub(extra: list[str]) -> dict:
        p = subprocess.run([sys.executable, __file__, *common, *extra], capture_output=True, text=True, env=env)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"{' '.join(extra)} failed:\n{p.stderr[-3000:]}")
        res = json.loads(line[len("RESULT "):])
        print(json.dumps(res), flush=True)
        return res

    def ratio(a, b):
        return round(a / b, 3) if b else None

    import tempfile

    loads = [os.getloadavg()[0]]
    out: dict = {"model": args.model, "batch": [args.batch, args.length], "loss_variant": args.loss_variant,
                 "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        late_state = str(Path(tmp) / "late.safetensors")
        for phase in args.phases.split(","):
            extra = ["--phase", phase]
            if phase == "late":
                out["late_state"] = sub(["--make-late", late_state, "--late-ascent-steps",
                                         str(args.late_ascent_steps), "--late-lr", str(args.late_lr)])
                extra += ["--late-state", late_state]
            results = {v: sub(["--variant", v, *extra]) for v in args.variants.split(",")}
            loads.append(os.getloadavg()[0])
            r: dict = {}
            if "ours" in results and "reference" in results:
                o, ref = results["ours"], results["reference"]
                r.update({
                    "loss_ours": o["loss_first_step"], "loss_reference": ref["loss_first_step"],
                    "loss_rel_diff": abs(o["loss_first_step"] - ref["loss_first_step"]) / abs(ref["loss_first_step"]),
                    "speedup_vs_reference": ratio(ref["step_s"], o["step_s"]),
                    "step_peak_mem_ratio_vs_reference": ratio(o["step_peak_mb"], ref["step_peak_mb"]),
                    "peak_rss_ratio_vs_reference": ratio(o["peak_rss_mb"], ref["peak_rss_mb"]),
                })
            if "ours" in results and "plain" in results:
                o, pl = results["ours"], results["plain"]
                r.update({"time_ratio_vs_plain_ft": ratio(o["step_s"], pl["step_s"]),
                          "step_peak_mem_ratio_vs_plain_ft": ratio(o["step_peak_mb"], pl["step_peak_mb"])})
            r["step_s"] = {k: v["step_s"] for k, v in results.items()}
            r["step_peak_mb"] = {k: v["step_peak_mb"] for k, v in results.items()}
            out[phase] = r
    out["load_avg_1m"] = [round(x, 2) for x in loads]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
