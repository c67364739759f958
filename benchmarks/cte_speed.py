"""Seconds per CTE for each generator (MCTO at the paper's search settings) on the shipped weights.

    python benchmarks/cte_speed.py [--n 20] [--methods mcto,dac,random] [--weights DIR]

Each method explains the same ``n`` original trajectories of the shipped AIRL policy (normalisation
bounds fitted first, not timed). Prints a table, then one JSON line (last) with seconds per CTE
(wall mean, median, p90; CPU time per CTE, which other jobs on a shared machine do not
inflate), mean CTE length and mean quality. Target: MCTO <= 1.5 s per CTE on a 2-core CPU
(the reference implementation took ~15 s). The machine load at the start is reported too, because
other jobs on a shared CPU inflate the times.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--methods", default="mcto,dac,random")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from alignkit.cte.core import GENERATORS
    from alignkit.cte.env import EmergencyEnv
    from alignkit.cte.pipeline import SETTINGS, fit_normaliser, make_model, originals

    env, model = EmergencyEnv(), make_model(args.weights)
    scorer = fit_normaliser(env, model, seed=args.seed)
    origs = originals(env, model, args.n, seed=args.seed)
    load = os.getloadavg()[0]
    out = {"n": args.n, "cpu_count": os.cpu_count(), "loadavg_1min": round(load, 2), "methods": {}}
    for m in args.methods.split(","):
        scorer.reset_history()
        model.step_cache.clear()  # every method starts cold
        gen = GENERATORS.get(m)(env, model, scorer, seed=args.seed, **SETTINGS.get(m, {}))
        t0, c0 = time.perf_counter(), time.process_time()
        ctes = gen.generate(origs)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        secs = np.array([c.seconds for c in ctes])
        out["methods"][m] = {
            "s_per_cte": round(total / len(ctes), 4), "cpu_s_per_cte": round(cpu / len(ctes), 4),
            "median": round(float(np.median(secs)), 4), "p90": round(float(np.percentile(secs, 90)), 4),
            "mean_len": round(float(np.mean([c.length for c in ctes])), 2),
            "mean_quality": round(float(np.mean([c.quality for c in ctes])), 3),
            "settings": {k: v for k, v in SETTINGS.get(m, {}).items() if not callable(v)},
        }
        print(f"{m:7s} {total / len(ctes):8.3f} s/CTE wall, {cpu / len(ctes):.3f} CPU s  "
              f"(median {np.median(secs):.3f}, p90 {np.percentile(secs, 90):.3f}, "
              f"mean length {out['methods'][m]['mean_len']})", flush=True)
    out["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
