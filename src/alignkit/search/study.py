"""The Optuna side shared by both searches: storage, the study and its signature, and the worker loop.

Workers coordinate only through Optuna's storage (no scheduler of our own):

- default storage: ``sqlite:///<output-dir>/study.db`` (embedded, nothing to start); ``--storage URL`` takes
  any Optuna RDB URL (``postgresql://``, ``mysql://``, ``sqlite:///``) or ``journal:PATH`` for a journal file
  (e.g. on a shared disk);
- RDB storages run Optuna's heartbeat: a worker that dies leaves a RUNNING trial whose heartbeat stops; after
  the grace period the next worker (or the same command re-run) marks it FAIL and Optuna's
  ``RetryHeartbeatStaleTrialCallback`` queues a copy with the same parameters, which reuses the dead trial's
  run folder (an attack resumes from its last Trainer checkpoint). Optuna 5's journal storage has no
  heartbeat: a killed worker's trial stays RUNNING and is reported; ``--reset-running`` fails and re-queues it
  when you know no worker is alive;
- the study carries a signature (search kind, model, defence, space fingerprint, fixed settings); a worker whose
  command differs stops with a one-line error before it changes anything;
- each worker runs trials until the study holds ``n_trials`` finished ones; a trial started by two workers
  at the same moment beyond that number is dropped (state PRUNED, user attr ``surplus``) before any work.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

from alignkit.errors import AlignkitError

STUDY_NAME = "alignkit-search"
SIGNATURE_ATTR = "alignkit_signature"


class _UserErrorFilter:
    """Drops Optuna's "Trial N failed ... because of the following error" log records (with their traceback) when
    the error is an :class:`AlignkitError`: the CLI prints that error as its one line; a real bug keeps its
    traceback. Also masks credentials (:func:`~alignkit.search.common.redact`) in every record Optuna logs."""

    def __init__(self) -> None:
        self.dropped: set[str] = set()

    def filter(self, record) -> bool:
        from alignkit.search.common import redact

        msg = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, AlignkitError) and msg.startswith("Trial "):
            self.dropped.add(msg.split()[1])
            return False
        if msg.startswith("Trial ") and " failed with value " in msg and msg.split()[1] in self.dropped:
            return False
        clean = redact(msg, _SECRETS)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_FILTER = _UserErrorFilter()
_SECRETS: tuple[str, ...] = ()  # credentials of the storage URL in use (masked in every message)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logger = optuna.logging.get_logger("optuna")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for h in logger.handlers:  # records of optuna's child loggers reach these handlers without the logger filter
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)


#: the package to install for a storage URL whose database driver is missing (SQLAlchemy 2.1's default drivers)
DRIVERS = {"postgresql": 'psycopg[binary] (pip install "alignkit[postgres]")',
           "postgresql+psycopg": 'psycopg[binary] (pip install "alignkit[postgres]")',
           "postgresql+psycopg2": "psycopg2-binary", "postgresql+asyncpg": "asyncpg",
           "postgresql+pg8000": "pg8000", "mysql": "mysqlclient", "mysql+mysqldb": "mysqlclient",
           "mysql+pymysql": "PyMySQL", "mysql+mysqlconnector": "mysql-connector-python",
           "mariadb+mariadbconnector": "mariadb"}


def missing_driver(url: str) -> str | None:
    """Which package provides the database driver of ``url`` when it cannot be imported (None: importable or
    unknown)."""
    scheme = url.split("://", 1)[0].lower()
    try:
        from sqlalchemy.engine import make_url

        make_url(url).get_dialect().import_dbapi()
    except ImportError:
        return DRIVERS.get(scheme) or f"the Python driver of {scheme}"
    except Exception:  # noqa: BLE001 - a bad URL: reported by the storage itself
        return None
    return None


def storage_error(url: str, exc: BaseException) -> AlignkitError:
    """One line for a storage that cannot be opened or read, credentials masked (drivers echo the DSN)."""
    from alignkit.search.common import redact, url_secrets

    secrets = url_secrets(url)
    driver = missing_driver(url) if "://" in url else None
    if driver is not None:
        return AlignkitError(f"cannot open storage {redact(url, secrets)!r}: its database driver is not installed; "
                             f"install {driver}")
    text = str(exc).strip()
    msg = text.splitlines()[0][:200] if text else type(exc).__name__
    return AlignkitError(f"cannot open storage {redact(url, secrets)!r}: {redact(msg, secrets)}")


def storage_url(output_dir: Path, storage: Optional[str]) -> str:
    return storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"


def open_storage(url: str, *, heartbeat_interval: int = 30, grace_period: int = 120, max_retry: int = 3):
    """An Optuna storage for ``url``; one-line error when it cannot be opened."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from alignkit.search.common import redact, url_secrets

    global _SECRETS
    _SECRETS = tuple(dict.fromkeys(_SECRETS + url_secrets(url)))
    _quiet_optuna()
    shown = redact(url, _SECRETS)
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):].removeprefix("//")).expanduser()
            if not path.parent.is_dir():
                raise AlignkitError(f"cannot open storage {shown!r}: folder {str(path.parent)!r} does not exist")
            check_journal_file(shown, path)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise AlignkitError(f"cannot open storage {shown!r}: give an Optuna storage URL (sqlite:///FILE, "
                                "postgresql://..., mysql://...) or journal:FILE")
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:"):
            db = url.split(":///", 1)[-1]
            if db and db != ":memory:" and not Path(db).expanduser().parent.is_dir():
                raise AlignkitError(f"cannot open storage {shown!r}: folder {str(Path(db).parent)!r} does not exist")
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                    **kwargs)
            except Exception as exc:  # workers started together race to create the tables: try again
                if attempt == 5 or not any(w in str(exc) for w in ("already exists", "locked", "UNIQUE")):
                    raise
                time.sleep(0.5 * (attempt + 1))
    except AlignkitError:
        raise
    except Exception as exc:  # driver missing, host unreachable, bad URL, unreadable file ...
        raise storage_error(url, exc) from None


def check_journal_file(url: str, path: Path) -> None:
    """A journal storage file must be absent, empty or an Optuna journal: one JSON operation per line (the last
    line may be cut short by a killed worker). Optuna would append the new study to any other file and fail on
    the next read, damaging the file further."""
    if path.is_dir():
        raise AlignkitError(f"cannot open storage {url!r}: {str(path)!r} is a folder; give a journal file")
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AlignkitError(f"cannot open storage {url!r}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last piece has no newline: an operation still being written (or cut by a kill)
    for line in complete:
        if not line.strip():
            continue
        try:
            op = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            op = None
        if not isinstance(op, dict) or "op_code" not in op:
            raise AlignkitError(f"cannot open storage {url!r}: not an Optuna journal file; give a new file name "
                                "or the journal the study was started with")
    if not complete and lines[0].strip() and not lines[0].lstrip().startswith(b"{"):
        raise AlignkitError(f"cannot open storage {url!r}: not an Optuna journal file; give a new file name or "
                            "the journal the study was started with")


def open_study(storage, signature: dict[str, Any], directions: list[str], sampler_seed: int | None = None):
    """Load the study in ``storage`` (checking its signature) or create it. Nothing is written to an existing
    study whose signature differs."""
    import optuna

    sampler = TrialSeededSampler((lambda seed: optuna.samplers.TPESampler(seed=seed)) if len(directions) == 1
                                 else (lambda seed: optuna.samplers.NSGAIISampler(seed=seed)), sampler_seed)
    sig = json.dumps(signature, sort_keys=True)
    try:
        existing = [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:
        from alignkit.search.common import redact

        raise AlignkitError("cannot read the study storage: "
                            + redact(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__, _SECRETS)
                            ) from None
    if STUDY_NAME in existing:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler)
        old = study.user_attrs.get(SIGNATURE_ATTR)
        if old is not None and old != sig:
            raise AlignkitError("the study in this storage was created with other settings ("
                                + _diff(json.loads(old), signature)
                                + "); use another --output-dir / --storage, or the original settings")
        if [d.name.lower() for d in study.directions] != directions:
            raise AlignkitError("the study in this storage has other objectives; use another --output-dir / "
                                "--storage")
        if old is None:
            study.set_user_attr(SIGNATURE_ATTR, sig)
        return study
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=directions, sampler=sampler,
                                load_if_exists=True)
    old = study.user_attrs.get(SIGNATURE_ATTR)
    if old is None:
        study.set_user_attr(SIGNATURE_ATTR, sig)
    elif old != sig:  # another worker created it a moment ago with other settings
        raise AlignkitError("the study in this storage was created with other settings ("
                            + _diff(json.loads(old), signature) + ")")
    return study


def trial_seed(seed: int | None, number: int) -> int | None:
    """The sampler seed of trial ``number``: distinct per trial, the same for the same study seed and number."""
    return None if seed is None else (int(seed) * 1_000_003 + int(number)) % (2 ** 32)


class _TrialSeeded:
    """A sampler that builds a fresh inner sampler (TPE, NSGA-II) for every trial, seeded from the study's seed
    and the trial's number. With one sampler seeded once per process, every worker and every re-run of the
    command replayed the same random draws: a continued study proposed its first trials' parameters again, and N
    workers started together would all propose the same ones. Trial numbers are unique in the storage, so the
    draws differ between trials and workers, and a single-worker study is still reproducible. Both samplers
    read the history from the storage on every call, so nothing is lost by rebuilding them."""

    def __init__(self, factory: Callable[[int | None], Any], seed: int | None):
        self._factory, self._seed = factory, seed
        self._number: int | None = None
        self._inner = factory(seed)

    def _for(self, trial) -> Any:
        if trial.number != self._number:
            self._inner, self._number = self._factory(trial_seed(self._seed, trial.number)), trial.number
        return self._inner

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def TrialSeededSampler(factory: Callable[[int | None], Any], seed: int | None):
    """:class:`_TrialSeeded` as an ``optuna.samplers.BaseSampler`` (Optuna is imported lazily)."""
    import optuna

    cls = type("TrialSeededSampler", (_TrialSeeded, optuna.samplers.BaseSampler), {})
    return cls(factory, seed)


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: study has {_short(old.get(k))}, this command {_short(new.get(k))}" for k in keys[:3])


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= 60 else s[:57] + "..."


def trial_counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {"complete": 0, "running": 0, "waiting": 0, "failed": 0, "surplus": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.PRUNED and t.user_attrs.get("surplus"):
            out["surplus"] += 1
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            out["complete"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        elif t.state == TrialState.FAIL:
            out["failed"] += 1
    return out


def trial_folder_number(trial) -> int:
    """The number whose folder a trial uses: the original trial's for a retried one (so it resumes there)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if trial.user_attrs.get("retry_of") is not None:
        return int(trial.user_attrs["retry_of"])
    if not hasattr(trial, "system_attrs"):  # a live optuna.Trial: read its stored (frozen) copy
        trial = trial.study._storage.get_trial(trial._trial_id)
    orig = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return trial.number if orig is None else int(orig)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------------------------------------------------ workers / threads
WORKERS_DIR = ".search-workers"


def machine_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux ``/proc/PID/stat`` field 22): tells a live worker from a new
    process that reused a dead worker's pid. None where /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another account
    now = _proc_start(pid)
    return start is None or now is None or now == start


class WorkerRegistry:
    """This machine's workers of one search, found through the search folder: each live worker keeps
    ``<output-dir>/.search-workers/<host>-<pid>.json`` (pid, host, process start time) while it runs and removes it
    when it ends; a file left by a killed worker is recognised (its process is gone) and removed by the next
    worker that counts."""

    def __init__(self, folder: Path):
        self.dir = Path(folder) / WORKERS_DIR
        self.host = socket.gethostname()
        self.file = self.dir / f"{self.host}-{os.getpid()}.json"

    def register(self) -> None:
        from alignkit.io import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.file, json.dumps({"pid": os.getpid(), "host": self.host,
                                                  "start": _proc_start(os.getpid()), "time": time.time()}) + "\n")

    def unregister(self) -> None:
        try:
            self.file.unlink()
        except OSError:
            pass
        try:
            self.dir.rmdir()  # only when no other worker is registered
        except OSError:
            pass

    def count(self) -> int:
        """Live workers of this search on this machine (this one included)."""
        n = 0
        for f in self.dir.glob(f"{self.host}-*.json") if self.dir.is_dir() else []:
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
                pid = int(d["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written
            if pid == os.getpid() or _alive(pid, d.get("start")):
                n += 1
            else:
                try:
                    f.unlink()  # a killed worker's file
                except OSError:
                    pass
        return max(1, n)


def worker_threads(workers: int, threads: int | None = None, cores: int | None = None) -> int:
    """Torch threads of one worker: ``threads`` when given; else this machine's cores divided by the workers on
    it (at least 1), never more than ``OMP_NUM_THREADS`` when the environment sets it."""
    if threads:
        return int(threads)
    n = max(1, (cores or machine_cores()) // max(1, workers))
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        n = min(n, int(env))
    return n


def set_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n`` (returns the previous count)."""
    import torch

    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    return old


def run_worker(study, objective: Callable[[Any], Any], n_trials: int, *, log: Callable[[str], None],
               reset_running: bool = False, poll_s: float | None = None, workers_dir: Path | None = None,
               threads: int | None = None) -> dict[str, int]:
    """Run trials of ``study`` until it holds ``n_trials`` finished (COMPLETE or guard-PRUNED) trials.

    While the remaining trials are RUNNING in other workers this worker waits (heartbeat storages: a dead
    worker's trial is failed and re-queued after its grace period, and this worker runs the retry).

    ``workers_dir`` (the search folder): the worker registers there (:class:`WorkerRegistry`) and, before each
    trial, sets its torch threads to :func:`worker_threads` of the workers then alive on this machine (``threads``:
    a fixed count instead), so that N workers on a C-core machine do not run N x C threads that slow each other."""
    registry = WorkerRegistry(workers_dir) if workers_dir is not None else None
    if registry is None:
        return _run_worker(study, objective, n_trials, log=log, reset_running=reset_running, poll_s=poll_s,
                           before_trial=None)
    registry.register()
    shown: list[tuple[int, int]] = []

    def before_trial() -> None:
        workers = registry.count()
        n = worker_threads(workers, threads)
        set_threads(n)
        if not shown or shown[-1] != (workers, n):
            shown.append((workers, n))
            why = "--threads" if threads else f"{machine_cores()} cores / {workers} worker(s) on this machine"
            if not threads and n < machine_cores() // workers:
                why += f", capped by OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
            log(f"worker: {n} torch thread(s) ({why})")

    try:
        return _run_worker(study, objective, n_trials, log=log, reset_running=reset_running, poll_s=poll_s,
                           before_trial=before_trial)
    finally:
        registry.unregister()


def _run_worker(study, objective: Callable[[Any], Any], n_trials: int, *, log: Callable[[str], None],
                reset_running: bool, poll_s: float | None, before_trial: Callable[[], None] | None
                ) -> dict[str, int]:
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = study._storage
    heartbeat = is_heartbeat_enabled(storage)
    if poll_s is None:
        poll_s = float(storage.get_heartbeat_interval()) if heartbeat else 5.0
    if reset_running:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except Exception:  # finished meanwhile
                continue
            log(f"trial {t.number}: was RUNNING, marked FAIL (--reset-running) and queued again")
            study.enqueue_trial(t.params, user_attrs={"retry_of": trial_folder_number(t)}, skip_if_exists=False)

    def guarded(trial):
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING,
                                                                    TrialState.PRUNED))
                if t.number < trial.number and not t.user_attrs.get("surplus")]
        if len(done) >= n_trials:
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus trial: the study already has enough trials")
        trial.set_user_attr("worker", worker_id())
        return objective(trial)

    while True:
        if heartbeat:
            fail_stale_trials(study)
        c = trial_counts(study)
        if c["complete"] >= n_trials:
            break
        if c["waiting"] or c["complete"] + c["running"] < n_trials:
            if before_trial is not None:
                before_trial()
            study.optimize(guarded, n_trials=1, gc_after_trial=True)
            continue
        if not heartbeat:
            log(f"{c['running']} trial(s) still RUNNING in other workers; this storage has no heartbeat, so if "
                "no other worker is alive, run the same command with --reset-running to redo them")
            break
        time.sleep(poll_s)  # other workers hold the remaining trials; stay until they finish or go stale
    return trial_counts(study)
