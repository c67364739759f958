"""Search workers sharing a machine (issue 28): each worker uses cores / (workers on this machine) torch threads,
found through the search folder; a killed worker's registration is recognised and removed; --threads overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_worker_threads_rule(monkeypatch):
    from alignkit.search.study import worker_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert worker_threads(1, cores=2) == 2
    assert worker_threads(2, cores=2) == 1
    assert worker_threads(3, cores=2) == 1  # never 0
    assert worker_threads(2, cores=16) == 8
    assert worker_threads(2, threads=3, cores=2) == 3  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert worker_threads(1, cores=16) == 1  # an explicit OMP_NUM_THREADS caps the default


def test_registry_counts_live_workers_and_drops_dead_ones(tmp_path):
    from alignkit.search.study import WORKERS_DIR, WorkerRegistry, _proc_start

    reg = WorkerRegistry(tmp_path)
    reg.register()
    assert reg.count() == 1
    # a live second worker on this machine (a real process)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        f = reg.dir / f"{reg.host}-{other.pid}.json"
        f.write_text(json.dumps({"pid": other.pid, "host": reg.host, "start": _proc_start(other.pid)}))
        assert reg.count() == 2
        # the same pid with another start time: a new process that reused a dead worker's pid
        f.write_text(json.dumps({"pid": other.pid, "host": reg.host, "start": "1"}))
        assert reg.count() == 1 and not f.exists()
        f.write_text(json.dumps({"pid": other.pid, "host": reg.host, "start": _proc_start(other.pid)}))
    finally:
        other.kill()
        other.wait()
    assert reg.count() == 1 and not f.exists()  # killed: its file is removed by the next count
    (reg.dir / "elsewhere-1.json").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    assert reg.count() == 1  # workers on other machines do not share these cores
    (reg.dir / "elsewhere-1.json").unlink()
    reg.unregister()
    assert not (tmp_path / WORKERS_DIR).exists()


def test_run_worker_sets_threads_per_trial_and_cleans_up(tmp_path, monkeypatch):
    import optuna
    import torch

    from alignkit.search import study as st

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(st, "machine_cores", lambda: 2)
    storage = st.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = st.open_study(storage, {"kind": "test"}, ["maximize"], sampler_seed=0)
    seen, logs = [], []
    fake_other = tmp_path / st.WORKERS_DIR / f"{st.socket.gethostname()}-{os.getppid()}.json"

    def objective(trial):
        seen.append(torch.get_num_threads())
        if trial.number == 0:  # a second worker (our parent process, alive) joins during trial 0
            fake_other.write_text(json.dumps({"pid": os.getppid(), "host": st.socket.gethostname(),
                                              "start": st._proc_start(os.getppid())}))
        return trial.suggest_float("x", 0, 1)

    old = torch.get_num_threads()
    try:
        st.run_worker(study, objective, 2, log=logs.append, workers_dir=tmp_path)
        assert seen == [2, 1], seen  # alone: both cores; with a second worker: one each
        assert any("2 torch thread(s) (2 cores / 1 worker(s)" in m for m in logs), logs
        assert any("1 torch thread(s) (2 cores / 2 worker(s)" in m for m in logs), logs
        # this worker removed its own file (the folder stays: the other worker is still registered)
        assert sorted(p.name for p in (tmp_path / st.WORKERS_DIR).iterdir()) == [fake_other.name]
        fake_other.unlink()
        seen.clear()
        st.run_worker(study, objective, 3, log=logs.append, workers_dir=tmp_path, threads=1)
        assert seen == [1] and "(--threads)" in logs[-1]
        assert not (tmp_path / st.WORKERS_DIR).exists()  # the last worker removes the folder too
    finally:
        torch.set_num_threads(old)
    assert optuna.__version__
