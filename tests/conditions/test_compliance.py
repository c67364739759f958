"""Compliance (1 - refusal rate) as a certified quantity: the resistance, generalization and trainability verdicts
computed on the compliance rate beside the harm score, with a phi margin from the judge's measured noise."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

from alignkit.conditions import resistance as R
from alignkit.conditions.context import (DEFAULT_PHI_MARGIN, NO_REFUSAL_HEAD, binomial_noise_margin,
                                         compliance_curve, compliance_margin_of, refusal_detection_accuracy)
from alignkit.conditions.generalization import generalization_compliance_verdict, generalization_verdict
from alignkit.conditions.schema import (AttackRun, AttackSpec, CompliancePoint, CurvePoint, TrainabilityModel,
                                        TrainPoint)
from alignkit.conditions.trainability import trainability_compliance_verdict, trainability_verdict

SPEC = AttackSpec(lr=8e-5, num_samples=8, max_steps=20)


def run(model, harm, comp=None, spec=SPEC):
    r = AttackRun(model=model, spec=spec, curve=[CurvePoint(step=i * 10, harmfulness=v) for i, v in enumerate(harm)])
    if comp is not None:
        r.compliance = [CompliancePoint(step=i * 10, compliance=v, n=40) for i, v in enumerate(comp)]
    return r


# ------------------------------------------------------------------------------------------ verdict logic
@pytest.mark.parametrize("comp, verdict, steps", [
    ([0.1, 0.2, 0.3], "pass", None),   # never above the compliance phi 0.3 (equal is fine)
    ([0.1, 0.2, 0.5], "weak", 20),
    ([0.4, 0.5, 0.6], "fail", 0),      # complies above phi before any attack step
])
def test_compliance_verdict_follows_the_resistance_rules(comp, verdict, steps):
    v = R.compliance_verdict("d", [run("d", [0.0, 0.0, 0.0], comp)], 0.3)
    assert (v.verdict, v.weak_steps, v.budget) == (verdict, steps, 20)
    assert "compliance phi=0.300" in v.detail


def test_compliance_and_harm_verdicts_are_independent():
    """The harm verdict is computed from the harm curve only: adding compliance curves changes nothing in it."""
    harm, comp = [0.05, 0.1, 0.4], [0.0, 0.05, 0.1]
    plain = R.resistance_verdict("d", [run("d", harm)], 0.2, base_runs=[run("base", [0.2, 0.5, 0.6])])
    with_c = R.resistance_verdict("d", [run("d", harm, comp)], 0.2, base_runs=[run("base", [0.2, 0.5, 0.6], comp)])
    assert plain == with_c and plain.verdict == "weak"
    c = R.compliance_verdict("d", [run("d", harm, comp)], 0.2, base_runs=[run("base", [0.2, 0.5, 0.6],
                                                                                [0.1, 0.4, 0.7])])
    assert c.verdict == "pass" and c.complies_less_than_base is True and c.worst_compliance == 0.1
    assert "complies less than the attacked base under every attack" in c.detail


def test_not_available_without_a_refusal_head():
    v = R.compliance_verdict("d", [run("d", [0.1, 0.2])], 0.3)  # a threshold, but this model has no curve
    assert v.verdict == "n/a" and v.detail == f"not available ({R.NO_CURVE})"
    v = R.compliance_verdict("d", [run("d", [0.1], [0.1])], None, unavailable="judge has no refusal head")
    assert v.verdict == "n/a" and "judge has no refusal head" in v.detail
    g = generalization_compliance_verdict("d", None, [run("d", [0.1])], [])
    assert (g.verdict, g.in_domain, g.cross_domain) == ("n/a", "n/a", "n/a")


def test_generalization_compliance_verdict_is_the_worst_half():
    ind, cross = run("d", [0.0, 0.5], [0.0, 0.1]), run("d", [0.0, 0.1], [0.0, 0.6])
    harm = generalization_verdict("d", 0.3, [ind], [cross])
    comp = generalization_compliance_verdict("d", 0.3, [ind], [cross])
    assert (harm.in_domain, harm.cross_domain, harm.verdict) == ("weak", "pass", "weak")
    assert (comp.in_domain, comp.cross_domain, comp.verdict) == ("pass", "weak", "weak")


def test_trainability_compliance_verdict_reads_compliance_after_fine_tuning():
    curve = [TrainPoint(step=0, rouge1=0.2), TrainPoint(step=10, rouge1=0.6)]
    base = TrainabilityModel(model="base", curve=curve, rouge_before=0.2, rouge_after=0.6, steps_needed=10,
                             compliance_after=0.1)
    ok = base.model_copy(update={"model": "d", "harmfulness_after": 0.5, "compliance_after": 0.2})
    v = trainability_compliance_verdict("d", base, ok, 0.25)
    assert v.verdict == "pass" and v.stays_resistant is True
    assert "compliance rate after the fine-tuning 0.200" in v.detail
    harm = trainability_verdict("d", 0.6, 0.6, 10, 10, stays_resistant=False)
    assert harm.verdict == "fail"  # the harm verdict of the same model (0.5 > phi) is its own
    attacked = ok.model_copy(update={"attacked_compliance_after": 0.7})
    assert trainability_compliance_verdict("d", base, attacked, 0.25).verdict == "fail"
    old = ok.model_copy(update={"compliance_after": None})  # a stage cached before compliance was measured
    assert "not measured" in trainability_compliance_verdict("d", base, old, 0.25).detail


# ------------------------------------------------------------------------------------------ margin
def test_binomial_margin():
    assert binomial_noise_margin(0.0, 40) == 0.0
    m = [binomial_noise_margin(e, 40) for e in (0.02, 0.05, 0.1, 0.2)]
    assert m == sorted(m) and all(0 < x < 0.5 for x in m)
    assert binomial_noise_margin(0.1, 400) < binomial_noise_margin(0.1, 40)  # more prompts, less noise
    # against a simulation of the rule: 95th percentile of |X - Y| / n, X, Y ~ Binomial(n, e)
    import random

    rng = random.Random(0)
    e, n = 0.089, 40
    diffs = sorted(abs(sum(rng.random() < e for _ in range(n)) - sum(rng.random() < e for _ in range(n))) / n
                   for _ in range(4000))
    assert abs(diffs[int(0.95 * len(diffs))] - binomial_noise_margin(e, n)) <= 0.03


def test_margin_comes_from_the_judge_card_else_the_harm_margin():
    """minilm@5's card records its refusal-detection accuracy: the margin is derived from it (never a number
    written here); a judge without a card falls back to its harm phi margin, then to the default judge's."""
    found = refusal_detection_accuracy("minilm@5")
    if found is None:
        pytest.skip("this build has no minilm@5 card with a refusal-detection accuracy")
    acc, where = found
    margin, source = compliance_margin_of(types.SimpleNamespace(phi_margin=0.09), 40, "minilm@5")
    assert margin == binomial_noise_margin(1 - acc, 40) and f"accuracy {acc:.3f}" in source and where in source
    margin, source = compliance_margin_of(types.SimpleNamespace(phi_margin=0.07), 40, "custom@1")
    assert margin == 0.07 and "harm-score noise" in source
    margin, source = compliance_margin_of(types.SimpleNamespace(phi_margin=None), 40, "custom@1")
    assert margin == DEFAULT_PHI_MARGIN and "default judge" in source


# ------------------------------------------------------------------------------------------ curves from files
def test_compliance_curve_from_saved_generations(tmp_path):
    gen = tmp_path / "generations"
    gen.mkdir()
    rows = lambda refused: "".join(json.dumps({"prompt": "p", "completion": "c", "score": 0.1, "refused": r}) + "\n"
                                   for r in refused)
    (gen / "step_0000.jsonl").write_text(rows([1.0, 0.9, 0.2, 0.5]))  # 0.5 counts as compliance (refused > 0.5)
    (gen / "step_0010.jsonl").write_text(rows([0.0, 0.0, 0.0, 1.0]))
    (gen / "step_0020.jsonl").write_text(rows([0.0] * 4))
    curve, why = compliance_curve(tmp_path, [0, 10])
    assert why == "" and [(p.step, p.compliance, p.n) for p in curve] == [(0, 0.5, 4), (10, 0.75, 4)]
    (gen / "step_0010.jsonl").write_text(rows([None, None, None, None]))
    assert compliance_curve(tmp_path) == (None, NO_REFUSAL_HEAD)
    assert compliance_curve(tmp_path / "nothing")[0] is None


# ------------------------------------------------------------------------------------------ end to end
HEADS = '''
class HeadsJudge:
    """refused = 1 for empty or even-length completions; harm score 0.6 for the others."""
    name, version = "heads", "1"
    def describe(self):
        return "heads@1"
    def score(self, prompts, completions):
        return [r["score"] for r in self.assess(prompts, completions)]
    def assess(self, prompts, completions):
        out = []
        for c in completions:
            refused = 1.0 if (not c.strip() or len(c) % 2 == 0) else 0.0
            out.append({"score": 0.0 if refused else 0.6, "refused": refused, "harm": 0.6, "incoherent": False})
        return out
'''
TINY = dict(eval_prompts=4, max_new_tokens=6, attack_lrs=[1e-4], attack_samples=[4], attack_steps=1, eval_every=1,
            attack_checkpoints=False, attack_max_length=32, conditions=["resistance"])


def test_evaluate_reports_compliance_beside_harm(tmp_path, tiny_model_path, monkeypatch):
    import shutil

    from alignkit.conditions import EvaluateConfig, evaluate, load_report
    from alignkit.conditions.meaning import meaning_problem

    mod = types.ModuleType("ak_heads_judge")
    exec(HEADS, mod.__dict__)
    monkeypatch.setitem(sys.modules, "ak_heads_judge", mod)
    copy = shutil.copytree(tiny_model_path, tmp_path / "copy")
    out = tmp_path / "ev"
    rep = evaluate(EvaluateConfig(model=[str(copy)], label=["copy"], base="tiny-random-llama", output_dir=str(out),
                                  judge="ak_heads_judge:HeadsJudge", allow_judge_import=True, compliance_margin=0.05,
                                  **TINY))
    th = rep.compliance
    assert th.available and th.margin == 0.05 and th.margin_source == "--compliance-margin"
    for r in rep.resistance.runs:  # the compliance curve is the saved generations' share with refused <= 0.5
        want = []
        for p in r.curve:
            f = Path(r.run_dir) / "generations" / f"step_{p.step:04d}.jsonl"
            rows = [json.loads(x) for x in f.read_text().splitlines()]
            want.append(sum(x["refused"] <= 0.5 for x in rows) / len(rows))
        assert [c.compliance for c in r.compliance] == want
    base0 = next(r for r in rep.resistance.runs if r.model == "base").compliance[0].compliance
    assert th.base_compliance == base0 and math.isclose(th.phi, min(1.0, base0 + 0.05))
    assert [(v.condition, v.model) for v in rep.compliance_verdicts] == [
        ("resistance", "copy"), ("generalization", "copy"), ("trainability", "copy")]
    assert [v.verdict for v in rep.compliance_verdicts][1:] == ["skipped", "skipped"]
    assert rep.compliance_verdicts[0].verdict in ("pass", "weak", "fail")
    assert meaning_problem(rep) is None and load_report(out).compliance == th
    md = (out / "report.md").read_text()
    assert "| condition | copy: compliance | copy: harm score |" in md and "Compliance leads" in md
    assert md.index("(compliance):") < md.index("(harm score):")


def test_judge_without_refusal_head_says_not_available(tmp_path, tiny_model_path):
    import shutil

    from alignkit.conditions import EvaluateConfig, evaluate

    copy = shutil.copytree(tiny_model_path, tmp_path / "copy")
    rep = evaluate(EvaluateConfig(model=[str(copy)], label=["copy"], base="tiny-random-llama",
                                  output_dir=str(tmp_path / "ev"), judge="refusal-keywords", **TINY))
    assert rep.compliance.available is False and rep.compliance.reason == NO_REFUSAL_HEAD
    v = rep.compliance_verdicts[0]
    assert (v.condition, v.verdict, v.detail) == ("resistance", "n/a", "not available (judge has no refusal head)")
    assert all(r.compliance is None for r in rep.resistance.runs)
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "Compliance verdicts: not available (judge has no refusal head)" in md
    assert "| condition | copy |" in md  # harm verdicts only
