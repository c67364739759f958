"""``evaluate(config) -> EvaluationReport``: the four immunization conditions (+ depth analysis) for one or
more defended models beside their undefended base, under the same attacks and judge.

Run folder layout (``--output-dir``)::

    config.json            the resolved EvaluateConfig
    stages/<name>.json     one file per finished stage ({key, result}); a stage whose key (config slice +
                           model fingerprints) matches is skipped, so a killed run resumes where it stopped
    attacks/<group>/<model>/<attack>/   attack run folders (alignkit.attacks; they resume from checkpoints)
    results.json           the EvaluationReport (schema-validated)
    report.md, report.html the report (see alignkit.reporting)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

# each condition module registers its runner in CONDITIONS (the pipeline dispatches by name)
from alignkit.conditions import depth, generalization, resistance, stability_runner, trainability  # noqa: F401
from alignkit.conditions.config import EvaluateConfig  # noqa: F401  (re-exported: the one definition)
from alignkit.conditions.context import Context
from alignkit.conditions.meaning import meaning_problem
from alignkit.conditions.registry import CONDITIONS
from alignkit.conditions.schema import EvaluationReport
from alignkit.conditions.verdicts import compliance_condition_verdicts, condition_verdicts  # noqa: F401 (re-exported)
from alignkit.errors import AlignkitError
from alignkit.io import write_json


# ----------------------------------------------------------------------------------------------- pipeline


def _units(config: EvaluateConfig) -> int:
    return sum(CONDITIONS.get(c).units(config) for c in config.conditions)


def evaluate(config: EvaluateConfig, *, progress: Any = None, log: Callable[[str], None] | None = None,
             extra: dict | None = None) -> EvaluationReport:
    """Run the configured conditions; write ``results.json``, ``report.md`` and ``report.html``."""
    from alignkit.io import RunLock

    with RunLock(config.run_dir()):  # one writer per run folder; a second run fails naming the holder
        return _evaluate(config, progress=progress, log=log, extra=extra)


def preflight(ctx: Context) -> None:
    """Mistakes that would otherwise surface only after an hour of attacks: one-line errors up front."""
    from alignkit import data
    from alignkit.models import context_length

    c = ctx.config
    from alignkit.judges.base import check_judge_option

    check_judge_option(c.judge)
    try:
        ctx.eval_prompts()  # --eval-dataset / --eval-split: registered, with prompts
    except AlignkitError as exc:
        raise AlignkitError(f"--eval-dataset: {exc}") from None
    if "generalization" in c.conditions:
        cats = sorted({r.category for r in data.load("harmful-qa", split="train", seed=c.seed)})
        bad = [x for x in c.heldout_categories if x not in cats]
        if bad:
            raise AlignkitError(f"--heldout-categories: unknown categor{'y' if len(bad) == 1 else 'ies'} "
                                f"{', '.join(map(repr, bad))}; choose from {', '.join(cats)}")
        # the generated set named but empty; a missing file or unknown name
        source, _ = generalization.resolve_cross_domain(c.cross_domain_data, c.seed)
        if source is not None:
            check_attack_data(source, c.seed, "--cross-domain-data")
    for e in ctx.models:
        n = context_length(e.path)
        if n is not None and c.max_new_tokens >= n:
            raise AlignkitError(f"--max-new-tokens {c.max_new_tokens} does not fit the context of {e.label} "
                                f"({n} tokens); give fewer")


def check_attack_data(source: str, seed: int, flag: str) -> None:
    """Harmful QA attack data named by ``flag``: a registered set must have rows, a file must exist and read
    as question/answer pairs, an unknown bare name is refused. A hub id (``org/name``) is read when used."""
    from alignkit import data
    from alignkit.attacks import AttackConfig
    from alignkit.attacks.base import load_train_records

    p = Path(source).expanduser()
    path_like = source.startswith((".", "/", "~")) or p.suffix.lower() in (
        ".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt") or source.count("/") > 1
    if source not in data.names() and not p.exists() and not path_like and "/" in source:
        return  # an ``org/name`` hub id: read (or refused) when its attack runs
    try:
        load_train_records(AttackConfig(dataset=source, data_seed=seed, num_samples=1))
    except AlignkitError as exc:
        raise AlignkitError(f"{flag}: {exc}") from None


def _evaluate(config: EvaluateConfig, *, progress: Any = None, log: Callable[[str], None] | None = None,
              extra: dict | None = None) -> EvaluationReport:
    from alignkit.provenance import Provenance

    ctx = Context(config, progress=progress, log=log)
    preflight(ctx)
    write_json(ctx.run_dir / "config.json", json.loads(config.model_dump_json()))
    if progress is not None:
        ctx._task = progress.add_task("evaluate", total=_units(config))
    results: dict[str, Any] = {}
    for cond in config.conditions:
        t0 = time.time()
        ctx.log(f"condition: {cond}")
        results[cond] = CONDITIONS.get(cond)(ctx)
        ctx.timings[cond] = round(time.time() - t0, 1)
    ctx.release()
    models = [m.model_copy(update={"pre_attack_harmfulness": ctx.pre.get(m.label),
                                   "pre_attack_compliance": ctx.pre_compliance.get(m.label)}) for m in ctx.models]
    try:
        judge = ctx.judge_label()
    except AlignkitError:
        judge = config.judge
    prov = Provenance(model=config.base, data={"eval": f"{config.eval_dataset}:{config.eval_split}:"
                                                       f"{config.eval_prompts}", "attack": "harmful-qa:train"},
                      judge=judge, seed=config.seed)
    if ctx.stages.reused:
        ctx.notes.append(f"reused {len(ctx.stages.reused)} finished stage(s) from an earlier run")
    report = EvaluationReport(config=json.loads(config.model_dump_json()), provenance=json.loads(prov.model_dump_json()),
                              judge=judge, models=models, phi=ctx.phi, compliance=ctx.compliance,
                              run_dir=str(ctx.run_dir),
                              timings=ctx.timings, notes=ctx.notes, extra=extra or {}, **results)
    from alignkit.judges.agreement import refusal_agreement  # judge vs refusal detector on saved generations

    report.extra.setdefault("judge_agreement", refusal_agreement(ctx.run_dir, judge))
    report.verdicts = condition_verdicts(report)
    report.compliance_verdicts = compliance_condition_verdicts(report)
    save_report(report, ctx.run_dir)
    return report


def save_report(report: EvaluationReport, run_dir: Path) -> dict[str, Path]:
    """Write results.json (validated by a round trip) and the md/html reports: everything is validated and
    rendered first, then written all or nothing (a folder in the way or a read-only disk is one
    :class:`AlignkitError` and writes no file)."""
    from alignkit.io import write_files
    from alignkit.reporting.render import render_files

    text = report.model_dump_json(indent=2)
    EvaluationReport.model_validate_json(text)  # schema check before writing
    files: dict[str, str | bytes] = {"results.json": text + "\n", **render_files(report)}
    paths = write_files(run_dir, files, what="the report")
    return {"results": paths["results.json"], "report_md": paths["report.md"], "report_html": paths["report.html"]}


def _field(loc) -> str:
    """A pydantic / JSON location as a field path: ``resistance.runs[0].examples[1].score``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _non_finite(obj: Any, loc: tuple = ()) -> Optional[tuple]:
    """The location of the first NaN / Infinity in parsed JSON, or None."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return loc
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, loc + (k,))
        if found is not None:
            return found
    return None


def load_report(path: str | Path) -> EvaluationReport:
    """Read and fully validate an evaluation's ``results.json`` (a run folder or the file): its schema, then its
    meaning (:func:`alignkit.conditions.meaning.meaning_problem`: one base, at least one defended model, unique
    labels, shares and scores in [0, 1], verdicts that follow from their numbers); every problem is one
    :class:`AlignkitError` naming the file and the field."""
    from pydantic import ValidationError

    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.exists():
        raise AlignkitError(f"no results.json at {str(p)!r}")
    if p.is_dir():
        raise AlignkitError(f"{str(p)!r} is a folder; give a run folder or its results.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AlignkitError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AlignkitError(f"{str(p)!r} is not UTF-8 text; give an evaluation results.json") from None
    except ValueError as exc:
        raise AlignkitError(f"{str(p)!r} is not valid JSON ({str(exc).splitlines()[0][:120]}); give an evaluation "
                            "results.json") from None
    bad = _non_finite(data)
    if bad is not None:
        raise AlignkitError(f"{p}: {_field(bad)} is not a finite number (NaN or Infinity); replace it with a "
                            "number")
    try:
        report = EvaluationReport.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        msg = e["msg"].removeprefix("Value error, ")
        extra = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise AlignkitError(f"{p}: {_field(e['loc'])}: {msg}{extra}; fix that field or re-run the evaluation"
                            ) from None
    problem = meaning_problem(report, data)  # what the schema cannot say: a base, unique labels, [0, 1], verdicts
    if problem is not None:
        raise AlignkitError(f"{p}: {problem[0]}: {problem[1]}; fix that field or re-run the evaluation")
    return report
