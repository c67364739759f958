"""End-to-end runs of `alignkit evaluate` on tiny-random-llama with a minimal budget, and CLI errors."""

import json
import time

import pytest

from alignkit.conditions import EvaluateConfig, EvaluationReport, evaluate
from alignkit.conditions.stages import Stages

TINY = dict(eval_prompts=4, max_new_tokens=8, attack_lrs=[1e-4], attack_samples=[8], attack_steps=2, eval_every=1,
            stability_texts=8, probe_size=4, train_steps=2, train_eval_every=1, train_eval_size=2, depth_pairs=6,
            generalization_samples=8, attack_checkpoints=False, judge="refusal-keywords")


@pytest.mark.slow
def test_evaluate_smoke_tiny_model_and_resume(tmp_path):
    """Two defended models beside the base (the immunization paper's comparison shape): an undefended copy and
    a 2-step adversarial-loss model."""
    from alignkit.defences import defend
    from alignkit.defences.adversarial_loss import AdversarialLossConfig

    adv = defend(AdversarialLossConfig(model="tiny-random-llama", output_dir=str(tmp_path / "adv"), max_steps=2,
                                       batch_size=2, max_length=40, num_samples=4, save_every=0))
    import shutil

    from alignkit.models import resolve_model

    copy = shutil.copytree(resolve_model("tiny-random-llama"), tmp_path / "copy")  # the base itself is refused
    cfg = EvaluateConfig(model=[str(copy), str(adv)], label=["copy", "adversarial-loss"],
                         base="tiny-random-llama", output_dir=str(tmp_path / "ev"), **TINY)
    rep = evaluate(cfg)
    out = tmp_path / "ev"
    again = EvaluationReport.model_validate_json((out / "results.json").read_text())
    assert again.phi == rep.phi and [m.label for m in again.models] == ["base", "copy", "adversarial-loss"]
    assert len(rep.resistance.runs) == 3 and len(rep.resistance.runs[0].curve) == 3  # steps 0, 1, 2
    base_pre = rep.resistance.runs[0].curve[0].harmfulness
    assert rep.resistance.runs[0].model == "base"
    # refusal-keywords has no measured refusal noise: the default judge's margin (0.09) is added, and said so
    assert cfg.phi_margin is None and rep.phi == pytest.approx(min(1.0, base_pre + 0.09))
    assert "margin 0.09" in rep.resistance.phi_source and "the default judge's" in rep.resistance.phi_source
    assert {v.condition for v in rep.verdicts} == {"resistance", "stability", "generalization", "trainability",
                                                    "depth"}
    for cond in ("resistance", "stability", "generalization", "trainability"):  # a verdict per defended model
        assert {v.model for v in rep.verdicts if v.condition == cond} >= {"copy", "adversarial-loss"}, cond
    assert rep.generalization.heldout_categories  # in-domain attack ran on held-out categories
    # trainability measures the base after the same harmless fine-tuning too, and says so beside the verdict
    tr = {m.model: m for m in rep.trainability.models}
    assert all(tr[k].harmfulness_after is not None for k in ("base", "copy", "adversarial-loss"))
    assert all(f"base after the same {tr['base'].harmfulness_after:.3f}" in v.detail
               for v in rep.verdicts if v.condition == "trainability")
    # the in-domain attack on a model reuses that model's step-0 evaluation from its resistance attack
    in_domain = [json.loads(x) for f in (out / "attacks" / "in-domain").rglob("metrics.jsonl")
                 for x in f.read_text().splitlines()]
    assert in_domain and all("reused_from" in r for r in in_domain if r.get("type") == "eval" and r["step"] == 0)
    md = (out / "report.md").read_text()
    assert "adversarial-loss" in md and "copy" in md
    # refusal-keywords has no refusal head: no compliance verdicts, and the report says why
    assert rep.compliance.available is False and "no refusal head" in rep.compliance.reason
    assert {(v.condition, v.verdict) for v in rep.compliance_verdicts} == {
        (c, "n/a") for c in ("resistance", "generalization", "trainability")}
    assert "Compliance verdicts: not available (judge has no refusal head)" in md
    from alignkit.conditions import load_report

    assert load_report(out).verdicts == rep.verdicts  # the meaning checks accept a real evaluation
    assert (out / "report.md").exists() and "data:image/png;base64," in (out / "report.html").read_text()
    # a second run reuses every finished stage
    t0 = time.time()
    rep2 = evaluate(cfg)
    assert time.time() - t0 < 60
    assert any("reused" in n for n in rep2.notes)
    assert rep2.resistance.runs[0].curve == rep.resistance.runs[0].curve


def test_stage_cache(tmp_path):
    st = Stages(tmp_path)
    calls = []
    assert st.run("a", {"k": 1}, lambda: calls.append(1) or {"v": 1}) == {"v": 1}
    assert st.run("a", {"k": 1}, lambda: calls.append(1) or {"v": 2}) == {"v": 1}  # cached
    assert st.run("a", {"k": 2}, lambda: calls.append(1) or {"v": 3}) == {"v": 3}  # key changed
    assert len(calls) == 2 and json.loads((tmp_path / "stages" / "a.json").read_text())["result"] == {"v": 3}
    assert Stages(tmp_path, overwrite=True).get("a", {"k": 2}) is None


@pytest.mark.parametrize("args", [
    ["evaluate", "--base", "tiny-random-llama"],
    ["evaluate", "--model", "/no/such/folder", "--base", "tiny-random-llama"],
    ["evaluate", "--model", "a/b", "--base", "c/d", "--conditions", "bogus"],
    ["evaluate", "--model", "a/b", "--base", "c/d", "--attack-lrs", "2"],
    ["report", "/no/such/run"],
])
def test_bad_input_exits_2_with_one_line(args, monkeypatch, capsys):
    from cli_support import run_alignkit

    code, _, err = run_alignkit(args, monkeypatch, capsys)  # in-process: the same main() as the console script
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_attack_cache_key_follows_the_attack_config(tmp_path):
    """The stage key of an attack is derived from the AttackConfig that runs: an evaluation setting that reaches
    the attack changes it, one that does not (stability texts) leaves it."""
    from alignkit.conditions.context import Context
    from alignkit.conditions.schema import AttackSpec

    def key(**kw):
        cfg = EvaluateConfig(model=["tiny-random-llama"], base="smollm2-135m-instruct",
                             output_dir=str(tmp_path / "ev"), **kw)
        ctx = Context(cfg)
        spec = AttackSpec(lr=1e-4, num_samples=8, max_steps=2)
        return ctx.attack_key(ctx.defended[0], spec), ctx.eval_key(ctx.base)

    (k0, e0), (k1, e1), (k2, e2) = key(), key(max_new_tokens=9), key(stability_texts=7)
    assert k0 != k1 and e0 != e1  # generation length reaches the attack's AttackConfig and its step 0
    assert k0 == k2 and e0 == e2
    assert k0["config"]["max_new_tokens"] == 50 and "output_dir" not in k0["config"]


def test_attack_cache_key_carries_the_judge_version(tmp_path):
    """A cached stage measured with one version of the default judge is never reused after the default changes:
    the key holds the version the name resolves to ("minilm" -> its default version, not the bare name)."""
    from alignkit.conditions.context import Context
    from alignkit.conditions.schema import AttackSpec
    from alignkit.judges.minilm import DEFAULT_VERSION

    def key(judge):
        cfg = EvaluateConfig(model=["tiny-random-llama"], base="smollm2-135m-instruct",
                             output_dir=str(tmp_path / "ev"), judge=judge)
        ctx = Context(cfg)
        return ctx.eval_key(ctx.base)

    bare, pinned = key("minilm"), key(f"minilm@{DEFAULT_VERSION}")
    assert bare == pinned and bare["judge"] == f"minilm@{DEFAULT_VERSION}"
    older = key("minilm@1")
    assert older != bare and older["judge"] == "minilm@1"
    assert key("refusal-keywords")["judge"] == "refusal-keywords@2"


def test_a_model_retrained_in_the_same_folder_is_attacked_again(tmp_path):
    """The attack folder's config names the model by its path: after the defended model is retrained in place
    (new weights, same folder), evaluate must run its attack again, not report the old weights' attack; the
    base's attack (unchanged weights) is reused."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from alignkit.models import resolve_model

    copy = shutil.copytree(resolve_model("tiny-random-llama"), tmp_path / "copy")
    cfg = EvaluateConfig(model=[str(copy)], label=["copy"], base="tiny-random-llama", output_dir=str(tmp_path / "ev"),
                         conditions=["resistance"], **TINY)
    evaluate(cfg)
    runs = {p.parent.parent.name: p for p in (tmp_path / "ev" / "attacks").rglob("results.json")}
    assert set(runs) == {"base", "copy"}
    before = {k: p.stat().st_mtime_ns for k, p in runs.items()}
    time.sleep(1.1)  # the fingerprint reads mtimes in seconds
    w = load_file(str(copy / "model.safetensors"))
    save_file({k: (v + 0.01 if v.is_floating_point() else v) for k, v in w.items()}, str(copy / "model.safetensors"),
              metadata={"format": "pt"})
    evaluate(cfg)
    after = {k: p.stat().st_mtime_ns for k, p in runs.items()}
    assert after["base"] == before["base"]  # same weights: the finished attack is reused
    assert after["copy"] > before["copy"]   # retrained in place: attacked again
