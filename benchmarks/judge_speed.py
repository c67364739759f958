"""Scoring speed of the harm judges (completions per second), the default minilm@5 beside minilm@3 in the same run.

    python benchmarks/judge_speed.py [--n 256] [--threads 2] [--words 40]
        [--judges minilm@5,minilm@3,refusal-keywords,minilm@5+bf16]

Inputs: n (prompt, completion) pairs from the templated judge data (alignkit.judges.recipe.synthetic), with each
completion cut or repeated to about ``--words`` words (the demo generates 40-50 new tokens). 40 distinct prompts,
as in an evaluation. Each judge scores the whole set twice; the faster pass is reported (the first pays one-off
costs like tokenizer warm-up). On a shared machine absolute numbers vary; compare judges within one run. The
"idle-machine estimate" divides the process CPU time by the thread count (an upper bound on what the same cores
would give without other jobs, assuming the threads would be kept busy). The 1-minute load average before and
after each judge is printed with it: on a box with more runnable jobs than cores, wall-clock rates fall and waiting
OpenMP threads inflate the CPU time, so compare judges within one run. ``--judges`` takes judge specs with options
(``minilm@5:precision=bfloat16``, the same as ``minilm@5+bf16``). The first judge's rate is also reported as
a ratio to the second's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def inputs(n: int, words: int) -> tuple[list[str], list[str]]:
    from alignkit.judges.recipe.synthetic import synthetic_rows

    rows = synthetic_rows(0)
    prompts = sorted({r["prompt"] for r in rows})[:40]
    comps = []
    for i in range(n):
        w = rows[i % len(rows)]["response"].split()
        while len(w) < words:
            w = w + w
        comps.append(" ".join(w[:words]))
    return [prompts[i % len(prompts)] for i in range(n)], comps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--judges", default="minilm@5,minilm@3,refusal-keywords")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from alignkit.judges import get_judge, parse_judge_spec

    prompts, comps = inputs(a.n, a.words)
    out = {"n": a.n, "threads": a.threads, "words": a.words, "judges": {}}
    for spec in a.judges.split(","):
        t = time.time()
        name, opts = parse_judge_spec(spec.strip())
        j = get_judge(name, **opts)
        load = time.time() - t
        best, cpu = float("inf"), float("inf")
        load0 = os.getloadavg()[0]
        for _ in range(2):
            t, c = time.time(), time.process_time()
            j.score(prompts, comps)
            best, cpu = min(best, time.time() - t), min(cpu, time.process_time() - c)
        # CPU seconds spread over the threads: what an otherwise idle machine with that many cores would take
        idle = a.n / max(1e-9, cpu / a.threads)
        out["judges"][j.describe()] = {"load_s": round(load, 2), "score_s": round(best, 2), "cpu_s": round(cpu, 2),
                                       "completions_per_s": round(a.n / best, 1),
                                       "completions_per_s_idle_estimate": round(idle, 1),
                                       "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        print(f"{j.describe():18s} init {load:5.1f}s  score {best:6.2f}s (cpu {cpu:6.2f}s)  {a.n / best:7.1f} "
              f"completions/s  (idle-machine estimate {idle:6.1f}/s)  loadavg {load0:.1f}->{os.getloadavg()[0]:.1f}",
              flush=True)
    names = list(out["judges"])
    if len(names) > 1:
        base = out["judges"][names[1]]["completions_per_s"]
        out["ratio_first_vs_second"] = round(out["judges"][names[0]]["completions_per_s"] / base, 2)
        print(f"{names[0]} / {names[1]} speed ratio: {out['ratio_first_vs_second']:.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
