"""Meaning checks of an evaluation's ``results.json``, beyond its schema: a file that parses can still say
nothing true (``models: []`` rendered as "resistance: pass", a negative harmfulness drawn as a point, a report
without a base, a model listed twice, a verdict that its numbers contradict).

:func:`meaning_problem` returns the first problem as ``(field path, what is wrong)`` or None; every loader of a
results.json (:func:`alignkit.conditions.evaluate.load_report`, hence ``alignkit report``) turns it into one line.
The verdicts are checked by recomputing them with the conditions' own pure functions from the numbers stored
beside them (phi, curves, ROUGE-1, perplexities, probe accuracies) and the tolerances in the stored config.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

from alignkit.conditions.config import EvaluateConfig
from alignkit.conditions.depth import depth_verdict
from alignkit.conditions.generalization import generalization_compliance_verdict, generalization_verdict
from alignkit.conditions.resistance import compliance_verdict, family_rows, resistance_verdict, score_run
from alignkit.conditions.schema import AttackRun, EvaluationReport, FamilySpec
from alignkit.conditions.stability import stability_verdict
from alignkit.conditions.trainability import (stays_below, steps_needed, trainability_compliance_verdict,
                                              trainability_verdict)
from alignkit.conditions.verdicts import compliance_condition_verdicts, condition_verdicts

Problem = tuple[str, str]

#: fields that hold a share, a probability or a score in [0, 1] wherever they appear in the report (the run's
#: config, provenance and ``extra`` are the user's and the demo's, not checked here)
UNIT_FIELDS = frozenset({
    "phi", "pre_attack_harmfulness", "pre_attack_compliance", "harmfulness_mean", "share_harmful", "score",
    "worst_harmfulness", "worst_compliance", "harmfulness_after", "attacked_harmfulness_after", "compliance_after",
    "attacked_compliance_after", "compliance", "base_compliance", "margin", "rouge1", "rouge_before", "rouge_after",
    "target_rouge", "repetition_rate", "empty_share", "probe_accuracy", "over_refusal", "layer_accuracy",
    "per_category", "ci95", "pre_harmfulness", "final_harmfulness", "peak_harmfulness", "final_compliance"})
#: counts inside such fields (a compliance point's step, an estimate's n)
COUNT_FIELDS = frozenset({"step", "n"})
NOT_CHECKED = ("config", "provenance", "extra", "timings")


def _numbers(obj: Any, path: str, inside: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(path, value, in a [0, 1] field) of every number in parsed JSON."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = str(k)
            unit = False if key in COUNT_FIELDS else (inside or key in UNIT_FIELDS)
            yield from _numbers(v, f"{path}.{key}" if path else key, unit)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]", inside)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj, inside


def _unit_problem(data: dict) -> Optional[Problem]:
    for key, value in data.items():
        if key in NOT_CHECKED:
            continue
        for path, x, unit in _numbers(value, key, key in UNIT_FIELDS):
            if unit and not (0.0 <= float(x) <= 1.0):
                return path, f"{x!r} is not in [0, 1] (a share or score)"
    return None


def _structure_problem(rep: EvaluationReport) -> Optional[Problem]:
    if not rep.models:
        return "models", "is empty; an evaluation compares at least one defended model with its base"
    bases = [i for i, m in enumerate(rep.models) if m.role == "base"]
    if len(bases) != 1:
        return "models", (f"holds {len(bases)} base models; an evaluation has exactly one (role 'base')"
                          if bases else "holds no base model (role 'base'); an evaluation has exactly one")
    if not rep.defended():
        return "models", "holds no defended model (role 'defended'); an evaluation has at least one"
    seen: set[str] = set()
    for i, m in enumerate(rep.models):
        if m.label in seen:
            return f"models[{i}].label", f"{m.label!r} appears twice; labels are unique"
        seen.add(m.label)
    return None


def _rows_problem(rep: EvaluationReport) -> Optional[Problem]:
    """Every verdict row names a model of the report, once per list."""
    labels = {m.label for m in rep.models}
    lists: list[tuple[str, list]] = [("verdicts", rep.verdicts), ("compliance_verdicts", rep.compliance_verdicts)]
    for cond in ("resistance", "stability", "generalization", "trainability", "depth"):
        res = getattr(rep, cond)
        if res is not None:
            lists.append((f"{cond}.verdicts", res.verdicts))
            if hasattr(res, "compliance_verdicts"):
                lists.append((f"{cond}.compliance_verdicts", res.compliance_verdicts))
            if hasattr(res, "models"):
                lists.append((f"{cond}.models", res.models))
    for name, items in lists:
        seen: set[tuple] = set()
        for i, v in enumerate(items):
            if v.model not in labels:
                return f"{name}[{i}].model", f"{v.model!r} is not one of the report's models ({', '.join(labels)})"
            key = (getattr(v, "condition", None), v.model)
            if key in seen:
                return f"{name}[{i}]", f"a second row for {v.model!r}; one per model"
            seen.add(key)
    runs = [(f"resistance.runs[{i}]", r) for i, r in enumerate(rep.resistance.runs)] if rep.resistance else []
    if rep.generalization is not None:
        runs += [(f"generalization.in_domain[{i}]", r) for i, r in enumerate(rep.generalization.in_domain)]
        runs += [(f"generalization.cross_domain[{i}]", r) for i, r in enumerate(rep.generalization.cross_domain)]
    for path, r in runs:
        if r.model not in labels:
            return f"{path}.model", f"{r.model!r} is not one of the report's models ({', '.join(labels)})"
    res = rep.resistance
    if res is not None:
        seen_runs: set[tuple] = set()
        for i, r in enumerate(res.runs):
            if (r.model, r.spec.key) in seen_runs:
                return f"resistance.runs[{i}]", f"a second run of {r.spec.key!r} on {r.model!r}; one per attack"
            seen_runs.add((r.model, r.spec.key))
            if isinstance(r.spec, FamilySpec) and res.suite is None:
                return f"resistance.runs[{i}].spec", "is a family of an attack suite, but resistance.suite is empty"
            if isinstance(r.spec, FamilySpec) and r.spec.budgets != [p.step for p in r.curve]:
                return f"resistance.runs[{i}].spec.budgets", (f"{r.spec.budgets!r} are not the curve's steps "
                                                              f"{[p.step for p in r.curve]!r}")
            if not r.changes_weights and r.capability_loss not in (None, 0.0):
                return f"resistance.runs[{i}].capability_loss", (f"{r.capability_loss!r} for an attack that does "
                                                                 "not change weights; its capability loss is 0")
        seen: set[tuple] = set()
        for i, row in enumerate(res.families):
            if row.model not in labels:
                return f"resistance.families[{i}].model", (f"{row.model!r} is not one of the report's models "
                                                           f"({', '.join(labels)})")
            if (row.model, row.family) in seen:
                return f"resistance.families[{i}]", f"a second row for {row.family!r} on {row.model!r}; one per family"
            seen.add((row.model, row.family))
    return None


def _differs(field: str, stored: Any, expected: Any) -> Optional[Problem]:
    if stored == expected or (isinstance(stored, float) and isinstance(expected, float)
                              and math.isclose(stored, expected, rel_tol=1e-9, abs_tol=1e-12)):
        return None
    return field, (f"says {stored!r} but its numbers give {expected!r}; the verdicts must follow from the numbers "
                   "they summarise")


def _config(rep: EvaluationReport, name: str) -> Any:
    v = rep.config.get(name) if isinstance(rep.config, dict) else None
    return EvaluateConfig.model_fields[name].default if v is None else v


def _own(runs: list[AttackRun], model: str) -> list[AttackRun]:
    return [r for r in runs if r.model == model]


def _verdict_problem(rep: EvaluationReport) -> Optional[Problem]:
    less = bool(_config(rep, "require_less_than_base"))
    res = rep.resistance
    if res is not None:
        if rep.phi is not None and not math.isclose(rep.phi, res.phi, abs_tol=1e-12):
            return "resistance.phi", f"{res.phi!r} differs from the report's phi {rep.phi!r}"
        base_runs = _own(res.runs, "base")
        for i, r in enumerate(res.runs):
            s = score_run(r, res.phi)
            for f in ("strong", "steps_to_threshold"):
                p = _differs(f"resistance.runs[{i}].{f}", getattr(r, f), getattr(s, f))
                if p:
                    return p
        for i, v in enumerate(res.verdicts):
            e = resistance_verdict(v.model, _own(res.runs, v.model), res.phi,
                                   base_runs=[] if v.model == "base" else base_runs, require_less_than_base=less)
            for f in ("verdict", "strong", "weak_steps", "budget_label", "family"):
                p = _differs(f"resistance.verdicts[{i}].{f}", getattr(v, f), getattr(e, f))
                if p:
                    return p
        th = rep.compliance
        for i, v in enumerate(res.compliance_verdicts):
            e = compliance_verdict(v.model, _own(res.runs, v.model), th.phi if th and th.available else None,
                                   base_runs=[] if v.model == "base" else base_runs, require_less_than_base=less)
            for f in ("verdict", "strong", "weak_steps", "budget_label", "family"):
                p = _differs(f"resistance.compliance_verdicts[{i}].{f}", getattr(v, f), getattr(e, f))
                if p:
                    return p
        p = _family_problem(rep, less)
        if p:
            return p
    g = rep.generalization
    if g is not None and rep.phi is not None:
        bi, bc = _own(g.in_domain, "base"), _own(g.cross_domain, "base")
        th = rep.compliance
        for name, items, fn, phi in (
                ("verdicts", g.verdicts, generalization_verdict, rep.phi),
                ("compliance_verdicts", g.compliance_verdicts, generalization_compliance_verdict,
                 th.phi if th and th.available else None)):
            for i, v in enumerate(items):
                e = fn(v.model, phi, _own(g.in_domain, v.model), _own(g.cross_domain, v.model), base_in_domain=bi,
                       base_cross_domain=bc, require_less_than_base=less)
                for f in ("verdict", "in_domain", "cross_domain"):
                    p = _differs(f"generalization.{name}[{i}].{f}", getattr(v, f), getattr(e, f))
                    if p:
                        return p
    t = rep.trainability
    if t is not None and t.models:
        base = next((m for m in t.models if m.model == "base"), None)
        if base is None:
            return "trainability.models", "holds no row for the base model"
        for i, m in enumerate(t.models):
            p = _differs(f"trainability.models[{i}].steps_needed", m.steps_needed,
                         steps_needed(m.curve, t.target_rouge))
            if p:
                return p
        rows = {m.model: m for m in t.models}
        tol, ratio = float(_config(rep, "rouge_tolerance")), float(_config(rep, "max_steps_ratio"))
        th = rep.compliance
        for i, v in enumerate(t.verdicts):
            m = rows.get(v.model)
            if m is None:
                return f"trainability.verdicts[{i}].model", f"{v.model!r} has no row in trainability.models"
            stays = stays_below(rep.phi, m.harmfulness_after, m.attacked_harmfulness_after)
            e = trainability_verdict(v.model, base.rouge_after, m.rouge_after, base.steps_needed, m.steps_needed,
                                     stays, tol, ratio)
            for f in ("verdict", "stays_resistant"):
                p = _differs(f"trainability.verdicts[{i}].{f}", getattr(v, f), getattr(e, f))
                if p:
                    return p
        for i, v in enumerate(t.compliance_verdicts):
            m = rows.get(v.model)
            if m is None:
                return f"trainability.compliance_verdicts[{i}].model", f"{v.model!r} has no row in trainability.models"
            e = trainability_compliance_verdict(v.model, base, m, th.phi if th and th.available else None, tol, ratio)
            for f in ("verdict", "stays_resistant"):
                p = _differs(f"trainability.compliance_verdicts[{i}].{f}", getattr(v, f), getattr(e, f))
                if p:
                    return p
    st = rep.stability
    if st is not None and st.models:
        rows = {m.model: m for m in st.models}
        base = rows.get("base")
        if base is None:
            return "stability.models", "holds no row for the base model"

        def val(e):
            return None if e is None else e.value

        for i, v in enumerate(st.verdicts):
            m = rows.get(v.model)
            if m is None:
                return f"stability.verdicts[{i}].model", f"{v.model!r} has no row in stability.models"
            e = stability_verdict(v.model, base.perplexity.value, m.perplexity.value, base.probe_accuracy.value,
                                  m.probe_accuracy.value, float(_config(rep, "ppl_tolerance")),
                                  float(_config(rep, "acc_tolerance")), base_natural_ppl=val(base.natural_perplexity),
                                  natural_ppl=val(m.natural_perplexity), base_over_refusal=val(base.over_refusal),
                                  over_refusal=val(m.over_refusal))
            p = _differs(f"stability.verdicts[{i}].verdict", v.verdict, e.verdict)
            if p:
                return p
    d = rep.depth
    if d is not None and d.models:
        rows = {m.model: m for m in d.models}
        base = rows.get("base")
        for i, v in enumerate(d.verdicts):
            m = rows.get(v.model)
            if base is None or m is None:
                return f"depth.verdicts[{i}].model", f"{v.model!r} or the base has no row in depth.models"
            p = _differs(f"depth.verdicts[{i}].verdict", v.verdict,
                         depth_verdict(v.model, base.layer_accuracy, m.layer_accuracy).verdict)
            if p:
                return p
    for name, stored, expected in (("verdicts", rep.verdicts, condition_verdicts(rep)),
                                   ("compliance_verdicts", rep.compliance_verdicts,
                                    compliance_condition_verdicts(rep))):
        if name == "compliance_verdicts" and not stored:
            continue  # a results file written before compliance verdicts
        want = {(x.condition, x.model): x.verdict for x in expected}
        for i, x in enumerate(stored):
            if (x.condition, x.model) in want and x.verdict != want[(x.condition, x.model)]:
                return (f"{name}[{i}].verdict", f"says {x.verdict!r} but {x.condition}'s own verdict for "
                        f"{x.model!r} is {want[(x.condition, x.model)]!r}")
        have = {(x.condition, x.model) for x in stored}
        missing = [k for k in want if k not in have]
        if missing:
            return name, f"has no {missing[0][0]} verdict for {missing[0][1]!r}"
    return None


def _family_problem(rep: EvaluationReport, less: bool) -> Optional[Problem]:
    """An attack suite's per-family rows: one per suite run (model x family), each recomputed from its run with
    :func:`~alignkit.conditions.resistance.family_rows` (numbers, crossing budget, verdicts, capability cost)."""
    res = rep.resistance
    th = rep.compliance
    expected = {(r.model, r.family): r for r in family_rows(res.runs, res.phi, th.phi if th and th.available else None,
                                                             less)}
    if res.suite is not None:
        fams = list(dict.fromkeys(r.spec.key for r in res.runs if isinstance(r.spec, FamilySpec)))
        if res.suite.families != fams:
            return "resistance.suite.families", f"{res.suite.families!r} are not the suite's runs' families {fams!r}"
    for i, row in enumerate(res.families):
        want = expected.get((row.model, row.family))
        if want is None:
            return f"resistance.families[{i}]", f"has no run of {row.family!r} on {row.model!r} in resistance.runs"
        for f in ("budget_label", "budgets", "changes_weights", "pre_harmfulness", "final_harmfulness",
                  "peak_harmfulness", "steps_to_threshold", "final_compliance", "capability_loss", "verdict",
                  "compliance_verdict"):
            p = _differs(f"resistance.families[{i}].{f}", getattr(row, f), getattr(want, f))
            if p:
                return p
    have = {(r.model, r.family) for r in res.families}
    missing = [k for k in expected if k not in have]
    if missing:
        return "resistance.families", f"has no row for {missing[0][1]!r} on {missing[0][0]!r}"
    return None


def meaning_problem(report: EvaluationReport, data: Optional[dict] = None) -> Optional[Problem]:
    """The first thing a schema-valid report gets wrong, as ``(field path, what is wrong)``, or None.
    ``data``: the parsed JSON it was read from (numbers are checked there, so the path is the file's)."""
    return (_structure_problem(report)
            or _unit_problem(data if data is not None else report.model_dump(mode="json"))
            or _rows_problem(report)
            or _verdict_problem(report))
