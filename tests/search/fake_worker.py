"""A search worker with a cheap objective, for the multi-process tests: the same storage, study, signature and
worker loop as ``alignkit search``, only the trial's work is a sleep.

    python fake_worker.py STORAGE_URL N_TRIALS LOG_FILE SLEEP_S [SLOW_TRIAL SLOW_S] [--reset-running]
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    from alignkit.errors import AlignkitError
    from alignkit.search.space import parse_space
    from alignkit.search.study import open_storage, open_study, run_worker, trial_folder_number
    from pydantic import BaseModel

    class Cfg(BaseModel):
        x: float = 0.0
        k: int = 0

    reset = "--reset-running" in argv
    argv = [a for a in argv if a != "--reset-running"]
    url, n, log_file, sleep_s = argv[0], int(argv[1]), argv[2], float(argv[3])
    slow_trial, slow_s = (int(argv[4]), float(argv[5])) if len(argv) > 5 else (-1, 0.0)
    space = parse_space({"params": {"x": {"low": 0.0, "high": 1.0}, "k": {"low": 0, "high": 1000}}}, Cfg)
    try:
        storage = open_storage(url, heartbeat_interval=1, grace_period=3)
        study = open_study(storage, {"kind": "fake", "space": space.fingerprint()}, ["maximize"], sampler_seed=0)
    except AlignkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def objective(trial):
        values = space.sample(trial)
        folder = trial_folder_number(trial)
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "trial": trial.number, "folder": folder, "event": "start",
                                "params": values}) + "\n")
        time.sleep(slow_s if folder == slow_trial else sleep_s)
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "trial": trial.number, "folder": folder, "event": "end"}) + "\n")
        return values["x"]

    counts = run_worker(study, objective, n, log=lambda m: print(m, flush=True), reset_running=reset, poll_s=0.5)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
