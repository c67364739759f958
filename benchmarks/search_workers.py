"""Trials per hour of ``alignkit search attack`` with one worker and with two workers sharing one machine, before
and after the thread policy of issue 28 (a worker uses cores / workers-on-this-machine torch threads).

    python benchmarks/search_workers.py [--trials 4] [--model tiny-random-llama] [--out /tmp/search-workers]

Three runs of the same study (same space, same number of trials, a fresh search folder each):

- ``one worker``: one process, the default policy (alone on the machine: every core);
- ``two workers, 2 threads each (before)``: two processes with ``--threads 2`` each, torch's default on a 2-core
  machine before issue 28 (each worker fights the other for both cores);
- ``two workers, default policy (after)``: two processes, no ``--threads``: each finds the other through the
  search folder and uses cores / 2 threads.

Trials are short real attacks (2 optimizer steps on 4 examples, 2 evaluation prompts of 16 new tokens before and
after, perplexity on 4 passages). On the default tiny-random-llama the three runs take a few minutes; the cost of
oversubscribed threads there is OpenMP's (every parallel section of every op waits for a core the other process
holds), which is what slowed the real runs of issue 28. ``--model smollm2-135m-instruct`` gives the same
comparison on the real model (about 7 min per trial with one core on a loaded machine).

Reported per run: wall seconds from launch to the last worker's exit, trials per hour over
that wall time, and trials per hour between the first trial start and the last trial end (``trials.jsonl``), with
the 1-minute load average before and after (other jobs on the machine slow every run; compare runs of one call).
``OMP_NUM_THREADS`` is removed from the workers' environment (it caps the default policy). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SPACE = """
params:
  lr: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}
fixed:
  max_steps: 2
  num_samples: 4
  batch_size: 2
  max_length: 64
"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run(name: str, workers: int, threads: int | None, args, root: Path) -> dict:
    out = root / name.replace(" ", "-")
    shutil.rmtree(out, ignore_errors=True)
    space = root / "space.yaml"
    cmd = [sys.executable, "-m", "alignkit.cli", "search", "attack", "--model", args.model, "--judge",
           "refusal-keywords", "--space", str(space), "--n-trials", str(args.trials), "--eval-prompts", "2",
           "--max-new-tokens", "16", "--capability-texts", "4", "--output-dir", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["TOKENIZERS_PARALLELISM"] = "false"
    before = load()
    t0 = time.time()
    procs = []
    for i in range(workers):
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out.parent / f"{out.name}-{i}.log",
                                                                                   "w"), env=env))
        time.sleep(0.5)  # the second worker opens the study the first one created
    codes = [p.wait() for p in procs]
    wall = time.time() - t0
    if any(codes):
        raise SystemExit(f"{name}: a worker failed ({codes}); see {out.parent}/{out.name}-*.log")
    rows = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines() if x.strip()]
    starts = [r["time"] for r in rows if r.get("event") == "start"]
    ends = [r["time"] for r in rows if r.get("event") == "end"]
    threads_seen = sorted({line.split("worker: ", 1)[1].split(" torch")[0]
                           for i in range(workers)
                           for line in (out.parent / f"{out.name}-{i}.log").read_text().splitlines()
                           if "worker: " in line})
    span = max(ends) - min(starts)
    res = {"run": name, "workers": workers, "threads_per_worker": threads_seen, "trials": len(ends),
           "wall_s": round(wall, 1), "trials_per_hour_wall": round(len(ends) * 3600 / wall, 1),
           "trials_per_hour_span": round(len(ends) * 3600 / span, 1), "load_before": before, "load_after": load()}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--model", default="tiny-random-llama")
    ap.add_argument("--out", default="/tmp/alignkit-search-workers")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "space.yaml").write_text(SPACE)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load {load()}", flush=True)
    results = [run("one worker", 1, None, args, root),
               run("two workers 2 threads each (before)", 2, 2, args, root),
               run("two workers default policy (after)", 2, None, args, root)]
    print(json.dumps({"cores": cores, "model": args.model, "results": results}))


if __name__ == "__main__":
    main()
