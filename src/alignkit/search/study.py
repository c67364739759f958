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


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_url(output_dir: Path, storage: Optional[str]) -> str:
    return storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"


def open_storage(url: str, *, heartbeat_interval: int = 30, grace_period: int = 120, max_retry: int = 3):
    """An Optuna storage for ``url``; one-line error when it cannot be opened."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    _quiet_optuna()
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):].removeprefix("//")).expanduser()
            if not path.parent.is_dir():
                raise AlignkitError(f"cannot open storage {url!r}: folder {str(path.parent)!r} does not exist")
            check_journal_file(url, path)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise AlignkitError(f"cannot open storage {url!r}: give an Optuna storage URL (sqlite:///FILE, "
                                "postgresql://..., mysql://...) or journal:FILE")
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:"):
            db = url.split(":///", 1)[-1]
            if db and db != ":memory:" and not Path(db).expanduser().parent.is_dir():
                raise AlignkitError(f"cannot open storage {url!r}: folder {str(Path(db).parent)!r} does not exist")
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
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise AlignkitError(f"cannot open storage {url!r}: {msg}") from None


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
        raise AlignkitError(f"cannot read the study storage: {str(exc).splitlines()[0][:200]}") from None
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


def run_worker(study, objective: Callable[[Any], Any], n_trials: int, *, log: Callable[[str], None],
               reset_running: bool = False, poll_s: float | None = None) -> dict[str, int]:
    """Run trials of ``study`` until it holds ``n_trials`` finished (COMPLETE or guard-PRUNED) trials.

    While the remaining trials are RUNNING in other workers this worker waits (heartbeat storages: a dead
    worker's trial is failed and re-queued after its grace period, and this worker runs the retry)."""
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
            study.optimize(guarded, n_trials=1, gc_after_trial=True)
            continue
        if not heartbeat:
            log(f"{c['running']} trial(s) still RUNNING in other workers; this storage has no heartbeat, so if "
                "no other worker is alive, run the same command with --reset-running to redo them")
            break
        time.sleep(poll_s)  # other workers hold the remaining trials; stay until they finish or go stale
    return trial_counts(study)
