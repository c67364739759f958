"""The report's verdict rows (:class:`ConditionVerdict`): one per condition and defended model, read from each
condition's result, for the harm score (:func:`condition_verdicts`) and for the compliance rate
(:func:`compliance_condition_verdicts`). Pure functions of an :class:`EvaluationReport`."""

from __future__ import annotations

from alignkit.conditions.registry import ORDER
from alignkit.conditions.schema import ConditionVerdict, EvaluationReport

#: the conditions with a compliance verdict (stability and depth measure no harm score)
COMPLIANCE_CONDITIONS = ("resistance", "generalization", "trainability")


def condition_verdicts(report: EvaluationReport) -> list[ConditionVerdict]:
    out: list[ConditionVerdict] = []
    for m in report.defended():
        def find(items, attr="model"):
            return next((v for v in items if getattr(v, attr) == m.label), None)

        for cond in ORDER:
            res = getattr(report, cond)
            if res is None:
                out.append(ConditionVerdict(condition=cond, model=m.label, verdict="skipped", detail="not run"))
                continue
            v = find(res.verdicts)
            if v is None:
                out.append(ConditionVerdict(condition=cond, model=m.label, verdict="n/a", detail=""))
            else:
                out.append(ConditionVerdict(condition=cond, model=m.label, verdict=v.verdict, detail=v.detail))
    return out


def compliance_condition_verdicts(report: EvaluationReport) -> list[ConditionVerdict]:
    """Resistance, generalization and trainability verdicts on the compliance rate, per defended model; 'n/a' with
    the reason when the evaluation has none (a judge without a refusal head)."""
    th = report.compliance
    na = f"not available ({th.reason})" if th is not None and not th.available else "not available"
    out: list[ConditionVerdict] = []
    for m in report.defended():
        for cond in COMPLIANCE_CONDITIONS:
            res = getattr(report, cond)
            if res is None:
                out.append(ConditionVerdict(condition=cond, model=m.label, verdict="skipped", detail="not run"))
                continue
            v = next((x for x in res.compliance_verdicts if x.model == m.label), None)
            out.append(ConditionVerdict(condition=cond, model=m.label, verdict="n/a", detail=na) if v is None
                       else ConditionVerdict(condition=cond, model=m.label, verdict=v.verdict, detail=v.detail))
    return out
