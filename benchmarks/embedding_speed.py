"""Cost of the embedding-space attack: seconds per prompt per 100 optimisation steps (docs/results.md, "Tamper
attacks: embedding-space attack").

    python benchmarks/embedding_speed.py [--model smollm2-135m-instruct] [--prompts 2] [--steps 100]
        [--train-batch 4] [--suffix-length 20] [--compare-cache-steps 10]

Measured, not extrapolated: ``--steps`` full optimisation steps (default 100) of

- per-prompt mode on ``--prompts`` evaluation prompts (harmful-eval:test, the attack runner's seeded sample),
  each with its own suffix, all updated every step: cost per prompt = time / prompts;
- universal mode with minibatches of ``--train-batch`` training prompts (harmful-qa:train): cost per training
  prompt = time / train-batch (one step runs forward + backward on ``train-batch`` prompts).

Both use the attack's defaults (20 "!" vectors, signed gradient, step 0.01, target "Sure, here is", chat template,
prefix cache on). ``--compare-cache-steps N`` also times N steps of per-prompt mode with and without the prefix
cache (the ratio only; 0: skip). Reported: wall and CPU seconds (CPU time is less inflated by other jobs on a shared
box), torch threads, the 1-minute load average before and after, the CPU model, the date. The last line is JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time


def _load() -> float:
    return os.getloadavg()[0]


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=2, help="per-prompt mode: evaluation prompts (>= 2)")
    ap.add_argument("--steps", type=int, default=100, help="optimisation steps measured (not extrapolated)")
    ap.add_argument("--train-batch", type=int, default=4, help="universal mode: training prompts per step")
    ap.add_argument("--suffix-length", type=int, default=20)
    ap.add_argument("--compare-cache-steps", type=int, default=10)
    args = ap.parse_args()

    import torch

    from alignkit import data
    from alignkit.attacks import embedding as E
    from alignkit.attacks.base import load_eval_prompts
    from alignkit.models import load_causal_lm

    load_before = _load()
    model, tok = load_causal_lm(args.model)
    model.eval()
    cfg = E.EmbeddingConfig(model=args.model, eval_prompts=args.prompts, suffix_length=args.suffix_length,
                            steps=[0, args.steps], batch_size=max(args.prompts, args.train_batch))
    eval_q = [p.prompt for p in load_eval_prompts(cfg)]
    train_q = E.load_train_questions(cfg.model_copy(update={"mode": "universal"}))[:max(args.train_batch, 8)]
    init_ids = E.init_token_ids(tok, cfg.suffix_length, cfg.init)
    rows = []

    def run(questions, universal, steps, cache=True, batch=None):
        parts = E.encode_parts(tok, questions, cfg.target, cfg.template)
        init = E.init_suffix(model, init_ids, 1 if universal else len(parts))
        losses: list[float] = []
        st, wall, cpu = _timed(lambda: E.optimise(
            model, parts, E.OptimState(0, init), max_steps=steps, universal=universal, optimizer=cfg.optimizer,
            step_size=cfg.step_size, batch_size=batch or len(parts), seed=0, cache_prefix=cache,
            on_step=lambda s, v: losses.append(v)))
        tokens = sum(len(p.before) + len(p.after) for p in parts) / len(parts)
        return wall, cpu, losses, tokens

    wall, cpu, losses, tokens = run(eval_q, False, args.steps)
    rows.append({"mode": "per-prompt", "prompts": len(eval_q), "steps": args.steps, "wall_s": round(wall, 1),
                 "cpu_s": round(cpu, 1), "s_per_prompt_per_100_steps_wall": round(wall / len(eval_q) * 100 / args.steps,
                                                                                    1),
                 "s_per_prompt_per_100_steps_cpu": round(cpu / len(eval_q) * 100 / args.steps, 1),
                 "mean_prompt_tokens": round(tokens, 1), "loss_first": round(losses[0], 3),
                 "loss_last": round(losses[-1], 3)})
    wall, cpu, losses, tokens = run(train_q, True, args.steps, batch=args.train_batch)
    rows.append({"mode": "universal", "prompts": args.train_batch, "steps": args.steps, "wall_s": round(wall, 1),
                 "cpu_s": round(cpu, 1),
                 "s_per_prompt_per_100_steps_wall": round(wall / args.train_batch * 100 / args.steps, 1),
                 "s_per_prompt_per_100_steps_cpu": round(cpu / args.train_batch * 100 / args.steps, 1),
                 "mean_prompt_tokens": round(tokens, 1), "loss_first": round(losses[0], 3),
                 "loss_last": round(losses[-1], 3)})
    cache_ratio = None
    if args.compare_cache_steps > 0:
        n = args.compare_cache_steps
        w_on, c_on, _, _ = run(eval_q, False, n, cache=True)
        w_off, c_off, _, _ = run(eval_q, False, n, cache=False)
        cache_ratio = {"steps": n, "cached_cpu_s": round(c_on, 1), "uncached_cpu_s": round(c_off, 1),
                       "speedup_cpu": round(c_off / c_on, 2), "speedup_wall": round(w_off / w_on, 2)}
    load_after = _load()

    print(f"embedding attack cost on {args.model}, k={args.suffix_length}, {args.steps} measured steps, "
          f"signed gradient, prefix cache on")
    print(f"{'mode':<11} {'prompts':>7} {'wall s':>8} {'cpu s':>8} {'s/prompt/100 steps (wall)':>26} "
          f"{'(cpu)':>7} {'tokens':>7} {'loss first->last':>18}")
    for r in rows:
        print(f"{r['mode']:<11} {r['prompts']:>7} {r['wall_s']:>8} {r['cpu_s']:>8} "
              f"{r['s_per_prompt_per_100_steps_wall']:>26} {r['s_per_prompt_per_100_steps_cpu']:>7} "
              f"{r['mean_prompt_tokens']:>7} {r['loss_first']:>8} -> {r['loss_last']:<7}")
    if cache_ratio:
        print(f"prefix cache, {cache_ratio['steps']} per-prompt steps: CPU {cache_ratio['uncached_cpu_s']} s "
              f"without -> {cache_ratio['cached_cpu_s']} s with ({cache_ratio['speedup_cpu']}x CPU, "
              f"{cache_ratio['speedup_wall']}x wall)")
    env = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": _cpu_model(),
           "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_1min_before": load_before,
           "load_1min_after": load_after, "torch": torch.__version__}
    print(f"date {env['date']}; CPU {env['cpu']} ({env['cores']} cores); torch threads {env['torch_threads']}; "
          f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after")
    print(json.dumps({"rows": rows, "prefix_cache": cache_ratio, "env": env}))


if __name__ == "__main__":
    main()
