"""A real PostgreSQL server behind ``search attack`` (issue 28): a throwaway PostgreSQL 15 server in a temporary
folder, two ``alignkit search attack`` worker processes on tiny-random-llama sharing one study through it, one of
them killed with SIGKILL in the middle of a trial: the study completes, the dead trial is failed by the heartbeat
and re-run with the same parameters. The storage URL carries a password: it must appear in no output line and no
file (stdout, stderr, results.json, report.html, search.json, trial folders, lock owner files).

Skipped (with the reason) only where the PostgreSQL server binaries are not installed. The driver, psycopg 3,
comes from the ``test`` extra (``pip install -e '.[test]'``); nothing is installed at test time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PASSWORD = "Pg-s3cret-9f7c1e"  # the secret that must never be printed or stored
USER = "alignkit"
SPACE = """
params:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
fixed:
  max_steps: 2
  num_samples: 4
  max_length: 32
  batch_size: 2
"""


def _bindir() -> Path | None:
    cands = [os.environ.get("ALIGNKIT_PG_BINDIR", ""), "/usr/lib/postgresql/15/bin"]
    which = shutil.which("pg_ctl")
    if which:
        cands.append(str(Path(which).parent))
    cands += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    for c in cands:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server():
    """``(host, port)`` of a PostgreSQL server started for this module (user ``alignkit`` with a password, SCRAM
    authentication on 127.0.0.1), stopped and deleted afterwards."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: looked in "
                    "/usr/lib/postgresql/*/bin, PATH and $ALIGNKIT_PG_BINDIR")
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0  # initdb refuses to run as root
    account = None
    if as_root:  # run the server as 'postgres' (the packages create it), else as 'nobody'
        import pwd

        for name in ("postgres", "nobody"):
            try:
                pg = pwd.getpwnam(name)
                account = name
                break
            except KeyError:
                continue
        if account is None:
            pytest.skip("running as root and there is neither a 'postgres' nor a 'nobody' account to run the "
                        "server as (initdb refuses root)")
    # /tmp: the server account must reach the folder (a root-only $TMPDIR would not do)
    root = Path(tempfile.mkdtemp(prefix="alignkit-pg-", dir="/tmp" if as_root and os.path.isdir("/tmp") else None))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_root:
        for p in (root, sock, pwfile):
            os.chown(p, pg.pw_uid, pg.pw_gid)

    def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        full = (["runuser", "-u", account, "--"] if as_root else []) + list(cmd)
        return subprocess.run(full, capture_output=True, text=True, check=check, timeout=120)

    port = _free_port()
    run(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
        "-E", "UTF8", "--no-sync")
    started = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start", check=False)
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
    try:
        yield "127.0.0.1", port
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def _new_database(host: str, port: int, name: str) -> str:
    """A fresh database on the server; returns its URL (with the password)."""
    import psycopg

    with psycopg.connect(host=host, port=port, user=USER, password=PASSWORD, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{USER}:{PASSWORD}@{host}:{port}/{name}"


def _cmd(url: str, out: Path, space: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "alignkit.cli", "search", "attack", "--model", "tiny-random-llama",
            "--judge", "refusal-keywords", "--space", str(space), "--n-trials", str(n), "--eval-prompts", "2",
            "--max-new-tokens", "2", "--capability-texts", "2", "--heartbeat-interval", "1", "--grace-period", "2",
            "--storage", url, "--output-dir", str(out)]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "ALIGNKIT_RUNS": str(tmp_path / "runs")}


def _starts(out: Path) -> list[dict]:
    f = out / "trials.jsonl"
    if not f.exists():
        return []
    rows = []
    for line in f.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # being written
    return rows


def _assert_no_secret(texts: list[str], folder: Path | None) -> None:
    for t in texts:
        assert PASSWORD not in t, t[-3000:]
    if folder is not None:
        for f in folder.rglob("*"):
            if f.is_file():
                assert PASSWORD.encode() not in f.read_bytes(), f


def test_two_workers_survive_kill_9_on_postgres(pg_server, tmp_path):
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    host, port = pg_server
    url = _new_database(host, port, "kill9")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "search"
    env = _env(tmp_path)
    n = 3
    victim = subprocess.Popen(_cmd(url, out, space, n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
    survivor = subprocess.Popen(_cmd(url, out, space, n), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
    # kill the victim as soon as it has started a trial it has not finished
    deadline = time.time() + 120
    killed_trial = None
    while time.time() < deadline and killed_trial is None:
        rows = _starts(out)
        mine = [r for r in rows if str(r.get("worker", "")).endswith(f":{victim.pid}")]
        ended = {r["trial"] for r in mine if r.get("event") == "end"}
        running = [r["trial"] for r in mine if r.get("event") == "start" and r["trial"] not in ended]
        if running:
            victim.send_signal(signal.SIGKILL)
            killed_trial = running[-1]
        elif victim.poll() is not None:
            break
        time.sleep(0.05)
    v_out, v_err = victim.communicate(timeout=60)
    assert killed_trial is not None, ("the victim never started a trial", v_err[-3000:])
    assert victim.returncode == -signal.SIGKILL
    s_out, s_err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, s_err[-4000:]

    study = optuna.load_study(study_name="alignkit-search", storage=url)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == n, [(t.number, t.state.name) for t in trials]
    assert [t.number for t in failed] == [killed_trial]  # the dead worker's trial, failed by the heartbeat
    retries = [t for t in complete if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed_trial]
    assert len(retries) == 1 and retries[0].params == failed[0].params  # re-run with the same parameters
    assert retries[0].user_attrs["worker"].endswith(f":{survivor.pid}")
    res = json.loads((out / "results.json").read_text())
    assert len([r for r in res["trials"] if r["state"] == "COMPLETE"]) == n
    assert res["storage"] == f"postgresql://{USER}:***@{host}:{port}/kill9"
    # the worker registry: the killed worker's file was recognised as dead and removed, the survivor removed its own
    assert not (out / ".search-workers").exists()
    _assert_no_secret([v_out, v_err, s_out, s_err], out)


@pytest.mark.parametrize("case", ["wrong-password", "refused", "missing-driver"])
def test_storage_password_never_printed(pg_server, tmp_path, case):
    """Storages that fail: a wrong password on the real server, a port where nothing listens, a driver that is
    not installed: one line, exit 2, the password masked, nothing written."""
    host, port = pg_server
    secret = PASSWORD + "-x"
    url = {"wrong-password": f"postgresql://{USER}:{secret}@{host}:{port}/postgres",
           "refused": f"postgresql://{USER}:{secret}@127.0.0.1:{_free_port()}/db",
           "missing-driver": f"postgresql+{_absent_driver()}://{USER}:{secret}@{host}:{port}/db"}[case]
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "search"
    r = subprocess.run(_cmd(url, out, space, 1), capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open storage"), lines
    assert f"{USER}:***@" in lines[0]
    assert secret not in r.stdout + r.stderr and PASSWORD not in r.stdout + r.stderr
    assert not out.exists()


def _absent_driver() -> str:
    """A PostgreSQL driver SQLAlchemy knows that is not installed here."""
    import importlib.util

    for dialect, module in (("psycopg2", "psycopg2"), ("pg8000", "pg8000"), ("asyncpg", "asyncpg")):
        if importlib.util.find_spec(module) is None:
            return dialect
    pytest.skip("every PostgreSQL driver SQLAlchemy knows is installed here")


def test_missing_driver_names_the_package():
    from alignkit.search.study import DRIVERS, missing_driver

    d = _absent_driver()
    assert missing_driver(f"postgresql+{d}://u:p@h/db") == DRIVERS[f"postgresql+{d}"]
    assert missing_driver("postgresql://u:p@h/db") is None  # psycopg 3 comes with the test extra
    assert "psycopg[binary]" in DRIVERS["postgresql"] and "alignkit[postgres]" in DRIVERS["postgresql"]
    assert missing_driver("sqlite:///x.db") is None
