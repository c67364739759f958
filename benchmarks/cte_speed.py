"""Seconds per CTE for each generator (MCTO at the paper's search settings), against the code at a
baseline git revision measured in the same run.

    python benchmarks/cte_speed.py [--n 20] [--methods mcto,dac,random] [--baseline cb0d923] [--repeat 2]

The current code explains ``n`` original trajectories of the shipped AIRL agent with each method
(normalisation bounds fitted first, not timed). The baseline revision (default: the commit before the
issue-13 changes, with its own environment, weights and settings) is exported with ``git archive`` into a
temporary folder and run in a subprocess on the same task; with ``--repeat`` the two alternate, so load
from other jobs on a shared machine hits both alike. Reported per method: wall and CPU seconds per CTE
(CPU time is not inflated by other jobs), median and p90 wall, mean CTE length and quality, and the ratio
baseline / current. The 1-minute load average before and after is printed beside the timings.
The last line is JSON. Target: MCTO <= 0.1 s per CTE (wall and CPU) on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Runs inside the subprocess, against whichever alignkit is first on sys.path.
RUNNER = r"""
import json, sys, time
import numpy as np
from alignkit.cte.core import GENERATORS
from alignkit.cte.env import EmergencyEnv
from alignkit.cte import pipeline as P
n, methods, seed = int(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3])
env, model = EmergencyEnv(), P.make_model(None)
scorer = P.fit_normaliser(env, model, seed=seed)
origs = P.originals(env, model, n, seed=seed)
out = {}
for m in methods:
    scorer.reset_history()
    model.step_cache.clear()
    gen = GENERATORS.get(m)(env, model, scorer, seed=seed, **P.SETTINGS.get(m, {}))
    t0, c0 = time.perf_counter(), time.process_time()
    ctes = gen.generate(origs)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    secs = np.array([c.seconds for c in ctes])
    out[m] = {"s_per_cte": total / len(ctes), "cpu_s_per_cte": cpu / len(ctes), "n": len(ctes),
              "median": float(np.median(secs)), "p90": float(np.percentile(secs, 90)),
              "mean_len": float(np.mean([c.length for c in ctes])),
              "mean_quality": float(np.mean([c.quality for c in ctes])),
              "share_same_next_state": float(np.mean([c.cf.states[1] == c.orig.states[1] for c in ctes])),
              "share_start_ge_70": float(np.mean([c.start >= 70 for c in ctes]))}
print("RESULT " + json.dumps(out))
"""


def run(src: Path, n: int, methods: str, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", RUNNER, str(n), methods, str(seed)], env=env, cwd=src,
                         capture_output=True, text=True, check=False)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"benchmark subprocess failed ({src}):\n{res.stderr[-3000:]}")


def export(rev: str, dest: Path) -> Path:
    """``src/`` of ``rev`` into ``dest`` (git archive), returns the folder to put on PYTHONPATH."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=False)
    if tar.returncode != 0:
        raise SystemExit(f"git archive {rev} failed: {tar.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)
    return dest / "src"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--methods", default="mcto,dac,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default="cb0d923", help="git revision to compare with ('' = none)")
    ap.add_argument("--repeat", type=int, default=1, help="alternating rounds of baseline and current")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    rounds: dict[str, list[dict]] = {"current": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        base_src = export(args.baseline, Path(tmp)) if args.baseline else None
        for _ in range(args.repeat):
            if base_src is not None:
                rounds["baseline"].append(run(base_src, args.n, args.methods, args.seed))
            rounds["current"].append(run(ROOT / "src", args.n, args.methods, args.seed))
    out = {"n": args.n, "cpu_count": os.cpu_count(), "loadavg_1min_start": round(load0, 2),
           "loadavg_1min_end": round(os.getloadavg()[0], 2), "baseline": args.baseline or None,
           "repeat": args.repeat, "methods": {}, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    for m in args.methods.split(","):
        row = {}
        for which, rs in rounds.items():
            if not rs:
                continue
            row[which] = {k: round(float(np.mean([r[m][k] for r in rs])), 4) for k in rs[0][m]}
        if "baseline" in row:
            row["speedup_wall"] = round(row["baseline"]["s_per_cte"] / row["current"]["s_per_cte"], 2)
            row["speedup_cpu"] = round(row["baseline"]["cpu_s_per_cte"] / row["current"]["cpu_s_per_cte"], 2)
        out["methods"][m] = row
        for which, r in row.items():
            if isinstance(r, dict):
                print(f"{m:7s} {which:8s} {r['s_per_cte']:8.4f} s/CTE wall {r['cpu_s_per_cte']:8.4f} CPU  "
                      f"(median {r['median']:.4f}, p90 {r['p90']:.4f}, length {r['mean_len']:.2f}, "
                      f"first step reaches the original next state {r['share_same_next_state']:.2f}, starts>=70 {r['share_start_ge_70']:.2f})")
        if "speedup_wall" in row:
            print(f"{m:7s} baseline/current: wall {row['speedup_wall']}x, CPU {row['speedup_cpu']}x")
    print(f"load average (1 min): {out['loadavg_1min_start']} at start, {out['loadavg_1min_end']} at end, "
          f"{out['cpu_count']} cores")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
