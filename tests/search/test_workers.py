"""Several worker processes share one study through Optuna's storage (the real storage / study / worker-loop
code of alignkit.search with a cheap objective): every requested trial runs exactly once, a killed worker's
trial is failed and re-run with the same parameters, re-running continues the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent


def _worker(url: str, n: int, log: Path, sleep_s: float, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, str(HERE / "fake_worker.py"), url, str(n), str(log), str(sleep_s),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _events(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []


def _study(url: str):
    import optuna

    return optuna.load_study(study_name="alignkit-search", storage=url)


def test_two_workers_share_one_study_and_run_each_trial_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    log = tmp_path / "log.jsonl"
    procs = [_worker(url, 6, log, 1.0) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from optuna.trial import TrialState

    trials = _study(url).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)  # pruned = surplus only
    assert all(t.user_attrs.get("surplus") for t in trials if t.state == TrialState.PRUNED)
    starts = [e for e in _events(log) if e["event"] == "start"]
    # no trial run twice, and every finished trial was run
    assert sorted(e["trial"] for e in starts) == sorted(t.number for t in complete)
    assert len({e["pid"] for e in starts}) == 2  # both workers took part
    assert len({t.user_attrs["worker"] for t in complete}) == 2


def test_killed_worker_trial_is_failed_and_rerun_and_the_study_continues(tmp_path):
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    url = f"sqlite:///{tmp_path / 'study.db'}"
    log = tmp_path / "log.jsonl"
    # trial 1 is slow: the worker is killed while it runs (no chance to clean up)
    p = _worker(url, 3, log, 0.2, "1", "60")
    deadline = time.time() + 120
    while not any(e["event"] == "start" and e["trial"] == 1 for e in _events(log)):
        assert time.time() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    states = {t.number: t.state for t in _study(url).get_trials()}
    assert states[1] == TrialState.RUNNING  # not lost: still visible as running

    # the same command again: after the heartbeat grace period the dead trial is failed and re-queued
    q = _worker(url, 3, log, 0.2)
    out, err = q.communicate(timeout=120)
    assert q.returncode == 0, err
    trials = _study(url).get_trials()
    assert trials[1].state == TrialState.FAIL
    retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[1].params
    # the retry ran in the dead trial's folder (so a real attack resumes from its checkpoint)
    assert any(e["event"] == "end" and e["trial"] == retries[0].number and e["folder"] == 1 for e in _events(log))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3

    # re-running with a larger budget continues the same study
    r = _worker(url, 5, log, 0.1)
    r.communicate(timeout=120)
    assert r.returncode == 0
    after = _study(url).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in after) == 5
    assert [t.params for t in after[:len(trials)]] == [t.params for t in trials]


def test_journal_storage_without_heartbeat_reset_running(tmp_path):
    """Optuna 5's journal storage has no heartbeat: a dead worker's trial is reported, and --reset-running
    re-queues it (same parameters)."""
    from optuna.trial import TrialState

    url = f"journal:{tmp_path / 'study.journal'}"
    log = tmp_path / "log.jsonl"
    p = _worker(url, 2, log, 0.2, "1", "60")
    deadline = time.time() + 120
    while not any(e["event"] == "start" and e["trial"] == 1 for e in _events(log)):
        assert time.time() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    q = _worker(url, 2, log, 0.2)
    out, _ = q.communicate(timeout=60)
    assert q.returncode == 0 and "--reset-running" in out  # told, not silently dropped
    r = _worker(url, 2, log, 0.2, "--reset-running")
    r.communicate(timeout=60)
    assert r.returncode == 0
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    trials = optuna.load_study(study_name="alignkit-search",
                               storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))).get_trials()
    assert trials[1].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    redo = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(redo) == 1 and redo[0].params == trials[1].params and redo[0].state == TrialState.COMPLETE


def test_unopenable_storage_is_one_line(tmp_path):
    p = _worker(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", 1, tmp_path / "log", 0.1)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and err.startswith("error: cannot open storage") and err.count("\n") == 1


def test_two_cli_workers_real_attacks_share_one_study(tmp_path):
    """The real command twice at once on tiny-random-llama: one study, three attack run folders, each trial run
    by one worker."""
    from search_support import TINY_ATTACK_SPACE, TINY_OPTIONS

    space = tmp_path / "space.yaml"
    space.write_text(TINY_ATTACK_SPACE)
    out = tmp_path / "search"
    args = [sys.executable, "-m", "alignkit.cli", "search", "attack", "--output-dir", str(out), "--n-trials", "3",
            "--space", str(space)]
    for k, v in TINY_OPTIONS.items():
        flag = f"--{k.replace('_', '-')}"
        args += [flag] if v is True else [flag, str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    from optuna.trial import TrialState

    trials = _study(f"sqlite:///{out / 'study.db'}").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    starts = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines() if '"start"' in x]
    assert sorted(e["trial"] for e in starts) == sorted(t.number for t in complete)  # each run once
    for t in complete:
        res = json.loads((out / "trials" / f"trial-{t.number:04d}" / "results.json").read_text())
        assert res["final_harmfulness"] == t.values[0] and res["config"]["lr"] == t.params["lr"]
    final = json.loads((out / "results.json").read_text())
    assert final["counts"]["complete"] == 3
