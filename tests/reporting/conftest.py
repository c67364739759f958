import pytest

from alignkit.conditions import resistance as R
from alignkit.conditions.schema import (AttackRun, AttackSpec, CurvePoint, DepthModel, DepthResult, Estimate,
                                        EvaluationReport, GeneralizationResult, ModelEntry, ResistanceResult,
                                        StabilityModel, StabilityResult, TrainabilityModel, TrainabilityResult,
                                        TrainPoint)
from alignkit.conditions.depth import depth_verdict
from alignkit.conditions.evaluate import condition_verdicts
from alignkit.conditions.generalization import generalization_verdict
from alignkit.conditions.stability import stability_verdict
from alignkit.conditions.trainability import trainability_verdict


def _curve(vals, every=10):
    return [CurvePoint(step=i * every, harmfulness=v, share_harmful=v) for i, v in enumerate(vals)]


@pytest.fixture
def sample_report(tmp_path):
    phi = 0.2
    specs = [AttackSpec(lr=3e-5, num_samples=200, max_steps=20), AttackSpec(lr=8e-5, num_samples=200, max_steps=20)]
    runs = []
    for spec, base_vals, rn_vals in zip(specs, ([0.2, 0.35, 0.45], [0.2, 0.5, 0.6]), ([0.05, 0.1, 0.12],
                                                                                     [0.05, 0.15, 0.3])):
        runs.append(AttackRun(model="base", spec=spec, curve=_curve(base_vals),
                              disfluency=R.disfluency(["a fine answer here"] * 3)))
        runs.append(AttackRun(model="repnoise", spec=spec, curve=_curve(rn_vals),
                              disfluency=R.disfluency(["video game video game video game video game"] * 3),
                              examples=[{"prompt": "how <b>?", "completion": "no", "score": 0.1}]))
    runs = [R.score_run(r, phi) for r in runs]
    verdicts = [R.resistance_verdict(m, [r for r in runs if r.model == m], phi,
                                     base_runs=[r for r in runs if r.model == "base"] if m != "base" else [])
                for m in ("base", "repnoise")]
    res = ResistanceResult(phi=phi, phi_source="base model's pre-attack harmfulness", runs=runs, verdicts=verdicts)
    st_models = [StabilityModel(model="base", perplexity=Estimate(value=10.0, lo=9.0, hi=11.0, n=50),
                                probe_accuracy=Estimate(value=0.4, lo=0.3, hi=0.5, n=50)),
                 StabilityModel(model="repnoise", perplexity=Estimate(value=11.0, lo=10.0, hi=12.0, n=50),
                                probe_accuracy=Estimate(value=0.38, lo=0.28, hi=0.48, n=50))]
    st = StabilityResult(models=st_models, verdicts=[stability_verdict("repnoise", 10.0, 11.0, 0.4, 0.38)])
    in_run = R.score_run(AttackRun(model="repnoise", spec=AttackSpec(lr=8e-5, num_samples=50, max_steps=20,
                                                                      categories=["violence"]),
                                   curve=_curve([0.05, 0.25, 0.3])), phi)
    gen = GeneralizationResult(heldout_categories=["violence"], in_domain=[in_run],
                               verdicts=[generalization_verdict("repnoise", phi, [in_run], [])])
    tr_models = [TrainabilityModel(model="base", curve=[TrainPoint(step=0, rouge1=0.2), TrainPoint(step=10, rouge1=0.6)],
                                   rouge_before=0.2, rouge_after=0.6, steps_needed=10),
                 TrainabilityModel(model="repnoise", curve=[TrainPoint(step=0, rouge1=0.1),
                                                            TrainPoint(step=10, rouge1=0.58)],
                                   rouge_before=0.1, rouge_after=0.58, steps_needed=10, harmfulness_after=0.1)]
    tr = TrainabilityResult(target_rouge=0.54, models=tr_models,
                            verdicts=[trainability_verdict("repnoise", 0.6, 0.58, 10, 10, True)])
    dm = [DepthModel(model="base", layer_accuracy=[0.9, 0.95, 1.0]),
          DepthModel(model="repnoise", layer_accuracy=[0.8, 0.9, 1.0])]
    dp = DepthResult(n_examples=40, models=dm, verdicts=[depth_verdict("repnoise", dm[0].layer_accuracy,
                                                                       dm[1].layer_accuracy)])
    rep = EvaluationReport(config={"model": ["x"], "base": "b"}, provenance={"model": "b"}, judge="minilm@1",
                           models=[ModelEntry(label="base", path="/b", role="base", pre_attack_harmfulness=0.2),
                                   ModelEntry(label="repnoise", path="/r", role="defended",
                                              pre_attack_harmfulness=0.05)],
                           phi=phi, resistance=res, stability=st, generalization=gen, trainability=tr, depth=dp,
                           run_dir=str(tmp_path), timings={"resistance": 12.0})
    rep.verdicts = condition_verdicts(rep)
    return rep


@pytest.fixture
def compliance_report(sample_report):
    """The sample report with compliance curves (a judge with a refusal head) and its compliance verdicts, all
    computed by the conditions' own functions."""
    from alignkit.conditions.generalization import generalization_compliance_verdict
    from alignkit.conditions.schema import CompliancePoint, ComplianceThreshold
    from alignkit.conditions.trainability import trainability_compliance_verdict
    from alignkit.conditions.verdicts import compliance_condition_verdicts

    rep = sample_report.model_copy(deep=True)
    comp = {("base", 0): [0.1, 0.3, 0.5], ("base", 1): [0.1, 0.6, 0.8], ("repnoise", 0): [0.0, 0.05, 0.1],
            ("repnoise", 1): [0.0, 0.1, 0.2]}
    seen: dict = {}
    for r in rep.resistance.runs:
        k = seen.setdefault(r.model, 0)
        seen[r.model] += 1
        r.compliance = [CompliancePoint(step=i * 10, compliance=v, n=40) for i, v in enumerate(comp[(r.model, k)])]
    g = rep.generalization
    g.in_domain[0].compliance = [CompliancePoint(step=i * 10, compliance=v, n=40)
                                 for i, v in enumerate([0.0, 0.1, 0.15])]
    th = ComplianceThreshold(available=True, phi=0.23, base_compliance=0.1, margin=0.13, margin_source="test",
                             phi_source="base model's pre-attack compliance rate (0.100) + margin 0.13 (test)")
    rep.compliance = th
    for m in rep.models:
        m.pre_attack_compliance = 0.1 if m.label == "base" else 0.0
    base_runs = [r for r in rep.resistance.runs if r.model == "base"]
    rep.resistance.compliance_verdicts = [
        R.compliance_verdict(m, [r for r in rep.resistance.runs if r.model == m], th.phi,
                             base_runs=base_runs if m != "base" else []) for m in ("base", "repnoise")]
    g.compliance_verdicts = [generalization_compliance_verdict("repnoise", th.phi, g.in_domain, [])]
    tr = rep.trainability
    tr.models[0].compliance_after, tr.models[1].compliance_after = 0.2, 0.1
    tr.compliance_verdicts = [trainability_compliance_verdict("repnoise", tr.models[0], tr.models[1], th.phi)]
    rep.compliance_verdicts = compliance_condition_verdicts(rep)
    return rep
