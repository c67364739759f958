"""``alignkit matrix``: run every cell (row, attack, seed) of a defences x attacks matrix as a cached stage.

Folder layout (``<out>`` = ``--output-dir``)::

    matrix.json                         the settings every cell shares (a re-run with others is refused)
    defences/<name>-s<seed>/            the defended model (alignkit.defences.defend's output folder)
    defences/<name>-s<seed>.json        {status, error, path}: a failed defence is recorded, not retrained
    cells/<row>/<attack>/s<seed>/       the attack's run folder (alignkit.attacks.attack)
    cells/<row>/<attack>/s<seed>.json   the cell's record (matrix/schema.py Cell: done with its numbers, or failed)
    capability/<name>-s<seed>.json      the defended model's held-out perplexity (base/ holds the undefended one's)
    search/<row>/                       --search-trials: one `search attack` study per row
    results.json, report.md, report.html, figures/

Several processes may run the same command on one folder: each cell, defence and capability measurement is taken
under its own :class:`alignkit.io.RunLock` (in ``.locks/``); a process skips what another holds, takes the next
cell, and waits at the end until every cell is recorded (a holder that dies releases its locks, and the cell is
then taken over and resumed). A finished cell is read back, never re-run; an unfinished attack resumes from its run
folder. A cell whose defence fails (e.g. a diverged training, :class:`AlignkitError`) or whose attack crashes is
recorded as failed with its error and the rest of the matrix goes on.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from alignkit.errors import AlignkitError
from alignkit.matrix.config import UNDEFENDED, MatrixConfig, Plan, resolve, signature_difference
from alignkit.matrix.schema import (Cell, CellSummary, CompliancePt, DefenceRow, MatrixResult, Spread, Threshold)


class _Busy(Exception):
    """Another process holds what this cell needs; take another cell."""


def _log(msg: str) -> None:
    from alignkit.training import log

    log(msg)


def _lock(out: Path, *parts: str):
    from alignkit.io import RunLock

    return RunLock(out.joinpath(".locks", *parts))


def _held_by_another(exc: AlignkitError) -> bool:
    """Whether RunLock refused because another process holds the lock (not: the folder cannot be created)."""
    return "in use by another alignkit run" in str(exc)


def _try_lock(out: Path, *parts: str):
    """The acquired lock, or None when another process holds it."""
    lock = _lock(out, *parts)
    try:
        lock.acquire()
    except AlignkitError as exc:
        if _held_by_another(exc):
            return None
        raise
    return lock


def _read(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _error_text(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if isinstance(exc, AlignkitError) else f"{type(exc).__name__}: {msg}"


class Matrix:
    """One process's run of a matrix (see the module docstring)."""

    def __init__(self, plan: Plan, judge: Any = None, log: Callable[[str], None] | None = None):
        self.plan, self.config, self.out = plan, plan.config, plan.out
        self._judge = judge
        self.log = log or _log
        self.tried: set[tuple] = set()  # failed records this process already re-ran (--retry-failed)

    # ---------------------------------------------------------------- folder
    def prepare_folder(self) -> None:
        from alignkit.io import check_creatable_dir, write_json

        out, sig = self.out, self.plan.signature
        if out.exists() and not out.is_dir():
            raise AlignkitError(f"output dir {str(out)!r} is a file; pick another --output-dir")
        check_creatable_dir(out)
        f = out / "matrix.json"
        lock = _lock(out, "matrix")
        _acquire_wait(lock, self.config.poll_s)
        try:
            if f.exists():
                old = (_read(f) or {}).get("signature")
                if not isinstance(old, dict):
                    raise AlignkitError(f"{str(f)!r} is unreadable; pick a new --output-dir")
                diff = signature_difference(old, sig)
                if diff is not None:
                    raise AlignkitError(f"output dir {str(out)!r} holds a matrix made with other settings ({diff}); "
                                        "pick a new --output-dir or run it with its settings")
                merged = {**old, "attacks": {**old.get("attacks", {}), **sig["attacks"]},
                          "defences": {**old.get("defences", {}), **sig["defences"]}}
            else:
                if out.is_dir() and any(p for p in out.iterdir() if p.name != ".locks"):
                    raise AlignkitError(f"output dir {str(out)!r} exists and is not an alignkit matrix folder; "
                                        "pick a new --output-dir")
                merged = sig
            write_json(f, {"kind": "matrix", "signature": merged})
        finally:
            lock.release()

    @property
    def judge(self):
        if self._judge is None or isinstance(self._judge, str):
            from alignkit.harmfulness import get_judge

            self._judge = get_judge(self._judge or self.config.judge)
        return self._judge

    def judge_label(self) -> str:
        from alignkit.harmfulness import judge_cache_name, judge_label

        if self._judge is None:
            return str(judge_cache_name(self.config.judge))
        return judge_label(self.judge)

    # ---------------------------------------------------------------- rows
    def rows(self) -> list[str]:
        return [UNDEFENDED, *self.plan.defences]

    def defence_file(self, name: str, seed: int) -> Path:
        return self.out / "defences" / f"{name}-s{seed}.json"

    def defence_dir(self, name: str, seed: int) -> Path:
        return self.out / "defences" / f"{name}-s{seed}"

    def defended_model(self, name: str, seed: int) -> str:
        """The row's model folder for ``seed`` (training the defence once, under its lock); raises _Busy when
        another process is training it, AlignkitError (its recorded error) when it failed."""
        if name == UNDEFENDED:
            return self.config.model
        f = self.defence_file(name, seed)
        rec = _read(f)
        if rec and rec.get("status") == "done" and Path(rec.get("path", "")).is_dir():
            return rec["path"]
        if rec and rec.get("status") == "failed" and not self._retry(("defence", name, seed)):
            raise AlignkitError(f"defence {name} (seed {seed}) failed: {rec.get('error')}")
        lock = _try_lock(self.out, "defences", f"{name}-s{seed}")
        if lock is None:
            raise _Busy()
        try:
            rec = _read(f)
            if rec and rec.get("status") == "done" and Path(rec.get("path", "")).is_dir():
                return rec["path"]
            if rec and rec.get("status") == "failed" and not self._retry(("defence", name, seed)):
                raise AlignkitError(f"defence {name} (seed {seed}) failed: {rec.get('error')}")
            self.tried.add(("defence", name, seed))
            return self._train_defence(name, seed, f)
        finally:
            lock.release()

    def _train_defence(self, name: str, seed: int, f: Path) -> str:
        from alignkit.io import write_json

        cfg = self.plan.defence_configs[name].model_copy(update={"seed": seed,
                                                                 "output_dir": str(self.defence_dir(name, seed))})
        self.log(f"matrix: defence {name}, seed {seed} -> {cfg.output_dir}")
        t0 = time.time()
        try:
            path = run_defence(cfg)
        except Exception as exc:  # noqa: BLE001 - a diverged or crashed defence fails its cells, not the matrix
            err = _error_text(exc)
            write_json(f, {"status": "failed", "error": err, "traceback": traceback.format_exc()[-4000:]})
            self.log(f"matrix: defence {name} (seed {seed}) failed: {err}")
            raise AlignkitError(f"defence {name} (seed {seed}) failed: {err}") from None
        write_json(f, {"status": "done", "path": str(path), "runtime_s": round(time.time() - t0, 1)})
        return str(path)

    def _retry(self, key: tuple) -> bool:
        return self.config.retry_failed and key not in self.tried

    # ---------------------------------------------------------------- cells
    def cell_file(self, row: str, attack: str, seed: int) -> Path:
        return self.out / "cells" / row / attack / f"s{seed}.json"

    def cell_dir(self, row: str, attack: str, seed: int) -> Path:
        return self.out / "cells" / row / attack / f"s{seed}"

    def recorded(self, row: str, attack: str, seed: int) -> Optional[Cell]:
        """The cell's record when it is finished (done, or failed and not to be retried)."""
        rec = _read(self.cell_file(row, attack, seed))
        if rec is None:
            return None
        try:
            cell = Cell.model_validate(rec)
        except ValueError:
            return None
        if cell.status == "failed" and self._retry(("cell", row, attack, seed)):
            return None
        return cell

    def attack_config(self, row: str, attack: str, seed: int, model_dir: str):
        """The attack of cell (row, attack, seed): the suite's config on the row's model, that seed, the cell's
        folder; a security-vectors model is attacked with its adapter active (families that have that mode)."""
        from pydantic import ValidationError

        base = self.plan.attack_configs[attack]
        values = {**base.model_dump(), "model": model_dir, "seed": seed, "output_dir": str(self.cell_dir(row, attack,
                                                                                                         seed)),
                  "save_model": False, "overwrite": False}
        notes = []
        if row != UNDEFENDED:
            from alignkit.defences.security_vectors import security_vector_path

            sv = security_vector_path(model_dir)
            if sv is not None:
                if "security_vector" in type(base).model_fields:
                    try:
                        return type(base)(**{**values, "security_vector": str(sv)}), notes
                    except ValidationError:
                        pass
                notes.append(f"{attack} has no security-vector mode: the security-vectors model (the unchanged base "
                             "weights) is attacked without its adapter")
        return type(base)(**values), notes

    def run_cell(self, row: str, attack: str, seed: int) -> Cell:
        """Run (or resume) one cell and record it; a failure is recorded as a failed cell."""
        from alignkit.io import write_json

        t0 = time.time()
        try:
            model_dir = self.defended_model(row, seed)  # _Busy (another process trains it) propagates
        except AlignkitError as exc:
            self.tried.add(("cell", row, attack, seed))
            cell = Cell(defence=row, attack=attack, seed=seed, status="failed", error=str(exc))
            write_json(self.cell_file(row, attack, seed), cell)
            return cell
        self.tried.add(("cell", row, attack, seed))
        try:
            cfg, notes = self.attack_config(row, attack, seed, model_dir)
            self.log(f"matrix: {attack} on {row} (seed {seed})")
            res = run_attack(cfg, self.judge)
            cell = cell_from_result(row, attack, seed, res, model_dir, notes, time.time() - t0)
        except Exception as exc:  # noqa: BLE001 - a crashed attack fails its cell, the matrix goes on
            err = _error_text(exc)
            self.log(f"matrix: {attack} on {row} (seed {seed}) failed: {err}")
            cell = Cell(defence=row, attack=attack, seed=seed, status="failed", error=err,
                        run_dir=str(self.cell_dir(row, attack, seed)), runtime_s=round(time.time() - t0, 1))
            write_json(self.cell_file(row, attack, seed), cell)
            (self.cell_file(row, attack, seed).with_suffix(".traceback.txt")).write_text(
                traceback.format_exc(), encoding="utf-8")
            return cell
        write_json(self.cell_file(row, attack, seed), cell)
        return cell

    def run_cells(self) -> dict[tuple, Cell]:
        """Every cell, this process taking the ones no other holds; returns once all are recorded."""
        c = self.config
        todo = [(row, attack, seed) for seed in c.seeds for row in self.rows() for attack in self.plan.attacks]
        done: dict[tuple, Cell] = {}
        waiting_since = None
        while todo:
            progressed = False
            for key in list(todo):
                cell = self.recorded(*key)
                if cell is None:
                    lock = _try_lock(self.out, "cells", *key[:2], f"s{key[2]}")
                    if lock is None:
                        continue  # another process runs it
                    try:
                        cell = self.recorded(*key)
                        if cell is None:
                            cell = self.run_cell(*key)
                    except _Busy:
                        continue  # its defence is being trained by another process
                    finally:
                        lock.release()
                done[key] = cell
                todo.remove(key)
                progressed = True
            if todo and not progressed:
                if waiting_since is None:
                    waiting_since = time.time()
                    self.log(f"matrix: waiting for {len(todo)} cell(s) other processes hold")
                time.sleep(c.poll_s)
            else:
                waiting_since = None
        return done

    # ---------------------------------------------------------------- capability
    def capability(self, name: str, seed: int, model_dir: str) -> Optional[tuple[float, float, float]]:
        """(rise, perplexity, base perplexity) of a defended model, measured once (under a lock)."""
        from alignkit.io import write_json

        c = self.config
        f = self.out / "capability" / f"{name}-s{seed}.json"
        key = {"model": model_dir, "data": c.capability_data, "n": c.capability_texts, "seed": c.data_seed,
               "template": c.template, "dtype": c.dtype}
        rec = _read(f)
        if rec and rec.get("key") == key:
            return rec["rise"], rec["perplexity"], rec["base_perplexity"]
        lock = _lock(self.out, "capability", f"{name}-s{seed}")
        _acquire_wait(lock, c.poll_s)
        try:
            rec = _read(f)
            if rec and rec.get("key") == key:
                return rec["rise"], rec["perplexity"], rec["base_perplexity"]
            self.log(f"matrix: capability of {name} (seed {seed})")
            rise, ppl, base = measure_capability(c.model, model_dir, template=c.template, n=c.capability_texts,
                                                 seed=c.data_seed, dtype=c.dtype, data_name=c.capability_data,
                                                 cache_dir=self.out)
            write_json(f, {"key": key, "rise": rise, "perplexity": ppl, "base_perplexity": base})
            return rise, ppl, base
        finally:
            lock.release()

    def defence_rows(self) -> tuple[list[DefenceRow], Optional[float], list[str]]:
        c = self.config
        rows, base_ppl, notes = [], None, []
        for name in self.plan.defences:
            row = DefenceRow(name=name, config=self.plan.defence_configs[name].model_dump(mode="json"))
            rises = []
            for seed in c.seeds:
                rec = _read(self.defence_file(name, seed)) or {}
                if rec.get("status") != "done":
                    row.model_dirs[str(seed)] = None
                    row.errors[str(seed)] = str(rec.get("error") or "not trained")
                    continue
                row.model_dirs[str(seed)] = rec["path"]
                try:
                    rise, ppl, base_ppl = self.capability(name, seed, rec["path"])
                except Exception as exc:  # noqa: BLE001 - no capability number for this seed, the rest goes on
                    notes.append(f"capability of {name} (seed {seed}) not measured: {_error_text(exc)}")
                    continue
                row.perplexity[str(seed)] = ppl
                rises.append(rise)
            row.capability_rise = spread(rises)
            rows.append(row)
        return rows, base_ppl, notes

    # ---------------------------------------------------------------- searches
    def searches(self, model_dirs: dict[str, Optional[str]]) -> tuple[dict[str, str], Any]:
        """--search-trials: one attack search per row (first seed), then the budget curves (undefended first)."""
        from alignkit.search.budget_curve import budget_curves

        c = self.config
        dirs, sources, labels = {}, [], []
        for row in self.rows():
            model = model_dirs.get(row)
            if model is None:
                continue
            folder = self.out / "search" / row
            self.log(f"matrix: attack search ({c.search_attack}, {c.search_trials} trials) on {row}")
            try:
                run_search(self.search_config(model, folder))
            except Exception as exc:  # noqa: BLE001 - a failed search leaves its row out of the plot
                self.log(f"matrix: attack search on {row} failed: {_error_text(exc)}")
                continue
            dirs[row] = str(folder)
            sources.append(folder)
            labels.append(row)
        if not sources or labels[0] != UNDEFENDED:
            return dirs, None
        margin = self.phi_margin()
        phi = c.phi
        return dirs, budget_curves(sources, labels, phi=phi, margin=margin, judge=self.judge_label())

    def search_config(self, model: str, folder: Path):
        from alignkit.search.attack import AttackSearchConfig

        c = self.config
        return AttackSearchConfig(model=model, output_dir=str(folder), n_trials=c.search_trials,
                                  preset=c.preset, attack=c.search_attack, judge=c.judge,
                                  allow_judge_import=c.allow_judge_import, eval_prompts=c.eval_prompts,
                                  max_new_tokens=c.max_new_tokens, data_seed=c.data_seed, dtype=c.dtype,
                                  capability_texts=c.capability_texts, capability_data=c.capability_data,
                                  sampler_seed=c.seeds[0])

    # ---------------------------------------------------------------- summary
    def phi_margin(self) -> float:
        if self.config.phi_margin is not None:
            return float(self.config.phi_margin)
        m = getattr(self.judge, "phi_margin", None)
        if m is not None:
            return float(m)
        from alignkit.search.budget_curve import DEFAULT_PHI_MARGIN

        return DEFAULT_PHI_MARGIN


def _acquire_wait(lock, poll_s: float) -> None:
    """Acquire ``lock``, waiting while another process holds it."""
    while True:
        try:
            lock.acquire()
            return
        except AlignkitError as exc:
            if not _held_by_another(exc):
                raise
            time.sleep(min(poll_s, 2.0))


# seams the tests replace (a crashed attack, a diverged defence) and the Python API's entry points
def run_defence(cfg) -> Path:
    from alignkit.defences import defend

    return Path(defend(cfg))


def run_attack(cfg, judge):
    from alignkit.attacks import attack

    return attack(cfg, judge=judge)


def run_search(cfg):
    from alignkit.search.attack import search_attack

    return search_attack(cfg, log=_log)


def measure_capability(base: str, model_dir: str, **kw) -> tuple[float, float, float]:
    from alignkit.attacks.capability import perplexity_rise

    return perplexity_rise(base, model_dir, **kw)


def cell_from_result(row: str, attack: str, seed: int, res: Any, model_dir: str, notes: list[str],
                     runtime_s: float) -> Cell:
    """A done cell from its AttackResult, with the refusal rates read from the run's saved generations."""
    from alignkit.conditions.context import compliance_curve

    steps = [p.step for p in res.curve]
    comp, _why = compliance_curve(Path(res.run_dir), steps)
    pts = [CompliancePt(step=p.step, compliance=p.compliance, n=p.n) for p in comp] if comp else None
    first = next((p for p in pts if p.step == steps[0]), None) if pts else None
    last = next((p for p in pts if p.step == steps[-1]), None) if pts else None
    return Cell(defence=row, attack=attack, seed=seed, status="done", run_dir=str(res.run_dir), model_dir=model_dir,
                budget_label=res.budget_label, curve=list(res.curve), compliance=pts,
                initial_harmfulness=res.initial_harmfulness, final_harmfulness=res.final_harmfulness,
                initial_refusal_rate=None if first is None else 1.0 - first.compliance,
                final_refusal_rate=None if last is None else 1.0 - last.compliance,
                notes=list(notes) + list(res.notes), runtime_s=round(runtime_s, 1))


def spread(values: list[float]) -> Optional[Spread]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return Spread(mean=statistics.fmean(vals), sd=statistics.stdev(vals) if len(vals) > 1 else 0.0, lo=min(vals),
                  hi=max(vals), n=len(vals))


def thresholds(m: Matrix, cells: dict[tuple, Cell]) -> dict[str, Threshold]:
    """phi per attack: the undefended model's pre-attack (budget-0) harmfulness under that attack, mean over seeds,
    + the phi margin (or --phi); the compliance phi likewise from its budget-0 compliance rate + the compliance
    margin of the evaluation's conditions (judges with a refusal head only)."""
    c = m.config
    out = {}
    margin = m.phi_margin()
    cmargin: Optional[tuple[float, str]] = None
    for attack in m.plan.attacks:
        base = [cells[(UNDEFENDED, attack, s)] for s in c.seeds if (UNDEFENDED, attack, s) in cells]
        done = [x for x in base if x.status == "done"]
        if c.phi is not None:
            phi, src = c.phi, "given (--phi)"
        elif done:
            pre = statistics.fmean(x.initial_harmfulness for x in done)
            phi = min(1.0, pre + margin)
            src = (f"undefended pre-attack harmfulness under {attack} ({pre:.3f}, mean of {len(done)} seed(s)) + "
                   f"margin {margin:g}")
        else:
            phi, src = None, f"not available: {attack} failed on the undefended model"
        comp = [x.compliance[0].compliance for x in done if x.compliance]
        cphi, csrc = None, ("not available (no refusal head)" if done else
                            f"not available: {attack} failed on the undefended model")
        if done and len(comp) == len(done):
            if cmargin is None:
                from alignkit.conditions.context import compliance_margin_of

                cmargin = compliance_margin_of(m.judge, c.eval_prompts, m.judge_label())
            pre_c = statistics.fmean(comp)
            cphi = min(1.0, pre_c + cmargin[0])
            csrc = (f"undefended pre-attack compliance rate under {attack} ({pre_c:.3f}) + margin {cmargin[0]:g} "
                    f"({cmargin[1]})")
        out[attack] = Threshold(attack=attack, phi=phi, source=src, compliance_phi=cphi, compliance_source=csrc)
    return out


def summarize_cell(row: str, attack: str, runs: list[Cell], th: Threshold) -> CellSummary:
    """One (row, attack) over its seeds, its verdicts by the resistance condition's pure functions (worst case over
    the seeds that finished)."""
    from alignkit.conditions.resistance import compliance_verdict, resistance_verdict
    from alignkit.conditions.schema import AttackRun, AttackSpec, CompliancePoint

    done = [r for r in runs if r.status == "done"]
    failed = [r for r in runs if r.status == "failed"]
    s = CellSummary(defence=row, attack=attack, budget_label=done[0].budget_label if done else None,
                    seeds_done=[r.seed for r in done], seeds_failed=[r.seed for r in failed],
                    errors=[f"seed {r.seed}: {r.error}" for r in failed], verdict="failed")
    if not done:
        s.detail = "no seed finished: " + "; ".join(s.errors)
        return s
    s.harmfulness = spread([r.final_harmfulness for r in done])
    s.initial_harmfulness = spread([r.initial_harmfulness for r in done])
    rr = [r.final_refusal_rate for r in done]
    s.refusal_rate = spread(rr) if all(x is not None for x in rr) else None

    def run_of(r: Cell) -> AttackRun:
        spec = AttackSpec(lr=0.0, num_samples=0, seed=r.seed, max_steps=max(p.step for p in r.curve))
        comp = ([CompliancePoint(step=p.step, compliance=p.compliance, n=p.n) for p in r.compliance]
                if r.compliance else None)
        return AttackRun(model=row, spec=spec, curve=r.curve, run_dir=r.run_dir, compliance=comp)

    runs_ = [run_of(r) for r in done]
    unit = s.budget_label or "steps"
    if th.phi is None:
        s.verdict, s.detail = "n/a", th.source
    else:
        v = resistance_verdict(row, runs_, th.phi)
        s.verdict = v.verdict
        s.detail = v.detail.replace(" steps", f" ({unit})") + (f"; worst over seeds {s.seeds_done}"
                                                               if len(done) > 1 else "")
    if th.compliance_phi is not None:
        cv = compliance_verdict(row, runs_, th.compliance_phi)
        s.compliance_verdict, s.compliance_detail = cv.verdict, cv.detail.replace(" steps", f" ({unit})")
    if failed:
        s.detail += f"; {len(failed)} of {len(runs)} seeds failed"
    return s


def run_matrix(config: MatrixConfig, *, judge: Any = None, log: Callable[[str], None] | None = None
               ) -> MatrixResult:
    """Run (resume, or read back) the matrix ``config`` and write results.json and the report. ``judge``: a
    judge object overriding ``config.judge`` (anything with ``score(prompts, completions)``)."""
    from alignkit.io import write_json
    from alignkit.judges.card import report_lines
    from alignkit.matrix.report import write_report
    from alignkit.provenance import Provenance
    from alignkit.training import device_kind

    t0 = time.time()
    plan = resolve(config)
    m = Matrix(plan, judge=judge, log=log)
    m.prepare_folder()
    c = plan.config
    m.log(f"matrix on {c.model}: rows {', '.join(m.rows())}; attacks {', '.join(plan.attacks)}; seeds "
          f"{c.seeds} -> {plan.out}")
    cells = m.run_cells()
    rows, base_ppl, notes = m.defence_rows()
    ths = thresholds(m, cells)
    summaries = [summarize_cell(row, attack, [cells[(row, attack, s)] for s in c.seeds], ths[attack])
                 for row in m.rows() for attack in plan.attacks]
    search_dirs, budget = {}, None
    if c.search_trials:
        first = {UNDEFENDED: c.model, **{r.name: r.model_dirs.get(str(c.seeds[0])) for r in rows}}
        search_dirs, budget = m.searches(first)
    labels = {}
    for (_row, attack, _s), cell in cells.items():
        if cell.budget_label:
            labels.setdefault(attack, cell.budget_label)
    jl = m.judge_label()
    prov = Provenance(model=c.model, judge=jl, seed=c.seeds[0], device=device_kind(), command=" ".join(sys.argv),
                      data={"eval": f"harmful-eval:test n={c.eval_prompts}",
                            "capability": f"{c.capability_data}:test n={c.capability_texts}"})
    result = MatrixResult(
        config=json.loads(c.model_dump_json()), model=c.model, judge=jl, seeds=list(c.seeds), rows=m.rows(),
        attacks=list(plan.attacks), budget_labels=labels, thresholds=[ths[a] for a in plan.attacks],
        base_perplexity=base_ppl, defences=rows,
        cells=[cells[(row, attack, s)] for s in c.seeds for row in m.rows() for attack in plan.attacks],
        summaries=summaries, budget=budget, search_dirs=search_dirs, judge_validity=report_lines(jl), notes=notes,
        provenance=prov, runtime_s=round(time.time() - t0, 1), run_dir=str(plan.out))
    lock = _lock(plan.out, "report")
    _acquire_wait(lock, c.poll_s)
    try:
        write_json(plan.out / "results.json", result)
        write_report(result, plan.out)
    finally:
        lock.release()
    n_failed = sum(1 for x in result.cells if x.status == "failed")
    m.log(f"done: {len(result.cells)} cells ({n_failed} failed); report in {plan.out / 'report.html'}")
    return result
