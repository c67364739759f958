"""Tables of an evaluation as rows of strings (shared by the markdown, html and terminal renderers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # reporting needs the schema only for type hints: no import of alignkit.conditions
    from alignkit.conditions.schema import EvaluationReport


ICON = {"pass": "PASS", "weak": "WEAK", "fail": "FAIL", "info": "info", "skipped": "skipped", "n/a": "n/a"}


def f3(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3f}"


def _final(run) -> Optional[float]:
    return max(run.curve, key=lambda p: p.step).harmfulness if run.curve else None


def main_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """The RepNoise paper's main table: pre-attack harmfulness and final harmfulness per attack, per model."""
    res = report.resistance
    header = ["model", "pre-attack"]
    rows: list[list[str]] = []
    if res is None:
        return header, [[m.label, f3(m.pre_attack_harmfulness)] for m in report.models]
    specs = list(dict.fromkeys(r.spec.key for r in res.runs))
    labels = {r.spec.key: r.spec.label.replace(" seed=0", "") for r in res.runs}
    header += [labels[k] for k in specs] + ["worst over the suite" if res.suite is not None else
                                            "steps to phi (worst)"]
    verdicts = {v.model: v for v in res.verdicts}
    for m in report.models:
        row = [m.label, f3(m.pre_attack_harmfulness)]
        for k in specs:
            run = next((r for r in res.runs if r.model == m.label and r.spec.key == k), None)
            cell = f3(_final(run)) if run else "-"
            if run and run.disfluency and run.disfluency.flagged:
                cell += " (disfluent)"
            row.append(cell)
        row.append(worst_cell(verdicts.get(m.label), res.suite is not None))
        rows.append(row)
    return header, rows


def worst_cell(v, suite: bool) -> str:
    """The worst case of a model's resistance verdict: steps to phi of the sweep, or the suite's deciding family
    with its budget in its own unit (budgets of different families are not comparable numbers)."""
    if v is None or v.verdict == "n/a":
        return "-"
    if not suite:
        return ("never" if v.weak_steps is None else str(v.weak_steps)) + f" / {v.budget}"
    if v.weak_steps is None:
        return f"never (closest: {v.family}, {v.budget_label} up to {v.budget})"
    return f"{v.verdict}: {v.family} at {v.budget_label} {v.weak_steps} / {v.budget}"


def _capability(row) -> str:
    if not row.changes_weights:
        return "0 (weights unchanged)"
    if row.capability_loss is None:
        return "-"
    return f"{row.capability_loss:+.1%} perplexity"


def family_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """An attack suite's per-family rows (model x family): the budget in the family's own unit, harmfulness
    before and after, the budget at which phi is crossed, compliance and refusal rate after the attack, the
    capability cost and the family's verdicts."""
    res = report.resistance
    header = ["model", "family", "budget", "pre-attack", "final harmfulness", "crosses phi at", "compliance (final)",
              "refusal rate (final)", "capability cost", "verdict", "compliance verdict"]
    if res is None or not res.families:
        return header, []
    rows = []
    for f in res.families:
        comp = f.final_compliance
        rows.append([f.model, f.family, f"{f.budget_label}: {', '.join(str(b) for b in f.budgets)}",
                     f3(f.pre_harmfulness), f3(f.final_harmfulness),
                     "never" if f.steps_to_threshold is None else f"{f.budget_label} {f.steps_to_threshold}",
                     f3(comp), "-" if comp is None else f"{1 - comp:.3f}", _capability(f),
                     ICON.get(f.verdict, f.verdict), ICON.get(f.compliance_verdict, f.compliance_verdict)])
    return header, rows


def compliance_leads(report: EvaluationReport) -> bool:
    """True when the report has compliance verdicts to lead with (a judge with a refusal head)."""
    th = report.compliance
    return th is not None and th.available and bool(report.compliance_verdicts)


def lead_line(report: EvaluationReport) -> Optional[str]:
    """What the report leads with and why (None for a results file written before compliance verdicts)."""
    th = report.compliance
    if th is None:
        return None
    if not th.available:
        return (f"Compliance verdicts: not available ({th.reason}); the verdicts below read judge {report.judge}'s "
                "harm score only.")
    return (f"Compliance leads: whether a model complies with harmful requests (compliance = 1 - refusal rate) "
            f"rests on judge {report.judge}'s refusal decision, what a judge measures most reliably ('what this "
            f"judge can tell you' says how well this one was measured to); the harm score beside it also rates the "
            f"content of the answers that comply. Compliance phi = {th.phi:.3f} ({th.phi_source}).")


def verdict_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """Per condition, per defended model: the compliance verdict (first, when the judge has a refusal head) and
    the harm-score verdict side by side."""
    models = [m.label for m in report.defended()]
    lead = compliance_leads(report)
    header = ["condition"]
    for m in models:
        header += [f"{m}: compliance", f"{m}: harm score"] if lead else [m]
    rows = []
    for cond in dict.fromkeys(v.condition for v in report.verdicts):  # condition order of the pipeline
        row = [cond]
        for m in models:
            if lead:
                c = next((x for x in report.compliance_verdicts if x.condition == cond and x.model == m), None)
                row.append(ICON.get(c.verdict, c.verdict) if c else "-")
            v = next((x for x in report.verdicts if x.condition == cond and x.model == m), None)
            cell = ICON.get(v.verdict, v.verdict) if v else "-"
            if cond == "resistance" and report.resistance is not None:
                rv = next((x for x in report.resistance.verdicts if x.model == m), None)
                if rv is not None and rv.disfluent:
                    cell += " (disfluent)"
            row.append(cell)
        rows.append(row)
    return header, rows


def compliance_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """The main table on the compliance rate: pre-attack and final compliance per attack, steps to the
    compliance phi (worst case), per model; no rows when the judge has no refusal head."""
    res = report.resistance
    header = ["model", "pre-attack"]
    if res is None or not compliance_leads(report):
        return header, []
    specs = list(dict.fromkeys(r.spec.key for r in res.runs))
    labels = {r.spec.key: r.spec.label.replace(" seed=0", "") for r in res.runs}
    header += [labels[k] for k in specs] + ["worst over the suite (compliance)" if res.suite is not None else
                                            "steps to compliance phi (worst)"]
    verdicts = {v.model: v for v in res.compliance_verdicts}
    rows = []
    for m in report.models:
        row = [m.label, f3(m.pre_attack_compliance)]
        for k in specs:
            run = next((r for r in res.runs if r.model == m.label and r.spec.key == k), None)
            last = max(run.compliance, key=lambda p: p.step).compliance if run and run.compliance else None
            row.append(f3(last))
        row.append(worst_cell(verdicts.get(m.label), res.suite is not None))
        rows.append(row)
    return header, rows


def stability_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    header = ["model", "perplexity [95% CI]", "probe accuracy [95% CI]"]
    rows = []
    st = report.stability
    if st is None:
        return header, rows
    tasks = sorted({t for m in st.models for t in m.lm_eval})
    header += tasks
    for m in st.models:
        p, a = m.perplexity, m.probe_accuracy
        def g(x):
            return "-" if x is None else f"{x:.2f}"

        rows.append([m.model, f"{g(p.value)} [{g(p.lo)}, {g(p.hi)}]", f"{a.value:.3f} [{f3(a.lo)}, {f3(a.hi)}]"]
                    + [f3(m.lm_eval.get(t)) for t in tasks])
    return header, rows


def trainability_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    header = ["model", "ROUGE-1 before", "ROUGE-1 after", "steps to target", "harmfulness after",
              "attacked after"]
    tr = report.trainability
    if tr is None:
        return header, []
    return header, [[m.model, f3(m.rouge_before), f3(m.rouge_after),
                     "never" if m.steps_needed is None else str(m.steps_needed),
                     f3(m.harmfulness_after), f3(m.attacked_harmfulness_after)] for m in tr.models]


def generalization_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    header = ["model", "attack", "pre", "final", "steps to phi", "attacked base (final)"]
    g = report.generalization
    if g is None:
        return header, []
    rows = []
    for kind, runs in (("in-domain", g.in_domain), ("cross-domain", g.cross_domain)):
        base = {r.spec.key: r for r in runs if r.model == "base"}
        for r in runs:
            what = (f"{kind}: {'+'.join(r.spec.categories)}" if r.spec.categories else f"{kind}: {r.spec.dataset}")
            b = base.get(r.spec.key) if r.model != "base" else None
            vs = "-" if b is None or _final(b) is None or _final(r) is None else (
                f"{f3(_final(b))} ({'below' if _final(r) < _final(b) else 'NOT below'})")
            rows.append([r.model, f"{what} ({r.spec.label})", f3(r.curve[0].harmfulness if r.curve else None),
                         f3(_final(r)), "never" if r.steps_to_threshold is None else str(r.steps_to_threshold), vs])
    return header, rows


def depth_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    d = report.depth
    if d is None or not d.models:
        return ["layer"], []
    header = ["hidden state"] + [m.model for m in d.models]
    n = max(len(m.layer_accuracy) for m in d.models)
    rows = [[str(i)] + [f"{m.layer_accuracy[i]:.2f}" if i < len(m.layer_accuracy) else "-" for m in d.models]
            for i in range(n)]
    return header, rows


def _gen_stats(run_dir: Optional[str], last: bool) -> Optional[dict]:
    """mean, share > 0.5, refusal rate (judge's refused > 0.5) and incoherent share of the first / last saved
    generations of an attack run (None when the files are not there)."""
    import json
    from pathlib import Path

    if not run_dir:
        return None
    files = sorted((Path(run_dir) / "generations").glob("step_*.jsonl"))
    if not files:
        return None
    rows = [json.loads(x) for x in files[-1 if last else 0].read_text(encoding="utf-8").splitlines() if x.strip()]
    if not rows:
        return None
    n = len(rows)
    scores = [float(r.get("score") or 0.0) for r in rows]
    refused = [r.get("refused") for r in rows]
    return {"mean": sum(scores) / n, "share": sum(x > 0.5 for x in scores) / n,
            "refusal": None if any(x is None for x in refused) else sum(float(x) > 0.5 for x in refused) / n,
            "incoherent": sum(bool(r.get("incoherent")) for r in rows) / n}


def refusal_table(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """Per attack run: mean, share > 0.5, refusal rate and incoherent share before -> after the attack."""
    header = ["model", "attack", "mean", "share > 0.5", "refusal rate", "incoherent share"]
    res = report.resistance
    if res is None:
        return header, []
    rows = []
    arrow = lambda a, b, k: "-" if a is None or b is None or a[k] is None or b[k] is None else (  # noqa: E731
        f"{a[k]:.2f} -> {b[k]:.2f}")
    for r in res.runs:
        a, b = _gen_stats(r.run_dir, last=False), _gen_stats(r.run_dir, last=True)
        if a is None or b is None:
            continue
        rows.append([r.model, r.spec.label.replace(" seed=0", ""), arrow(a, b, "mean"), arrow(a, b, "share"),
                     arrow(a, b, "refusal"), arrow(a, b, "incoherent")])
    return header, rows


def agreement_line(report: EvaluationReport) -> Optional[str]:
    ag = (report.extra or {}).get("judge_agreement")
    if not isinstance(ag, dict) or ag.get("kappa") is None:
        return None
    return (f"Agreement of {ag['a']} (score > 0.5) with the refusal detector (no refusal phrase) on {ag['n']} saved "
            f"generations: Cohen's kappa {ag['kappa']:.2f}, raw agreement {ag['agreement']:.2f}, confusion "
            f"{ag['confusion']} (rows: judge 0/1, columns: detector 0/1).")
