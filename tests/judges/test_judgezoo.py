"""The judgezoo adapter (``--judge judgezoo:name=NAME``), offline: import, options, a judge built on the tiny random
Llama standing in for the classifier weights (``model=PATH``), and the one-line error when weights are unreachable."""

from __future__ import annotations

import pytest

from alignkit.errors import AlignkitError

pytest.importorskip("judgezoo", reason="the optional judgezoo package (alignkit[judges]) is not installed")


def _tiny() -> str:
    from alignkit.models import resolve_model

    return str(resolve_model("tiny-random-llama"))


def test_registered_with_its_package_version():
    from importlib.metadata import version

    from alignkit.judges import JUDGES
    from alignkit.judges.judgezoo import FINE_TUNED

    assert "judgezoo" in JUDGES.names()
    assert JUDGES.get("judgezoo").version == version("judgezoo")
    assert {"strong_reject", "harmbench", "llama_guard_3"} <= set(FINE_TUNED)


@pytest.mark.parametrize("name", ["strong_reject", "harmbench"])
def test_judge_on_a_tiny_local_model_scores_in_unit_interval(name):
    """model=PATH loads the tiny random Llama where judgezoo would fetch the real classifier: the adapter runs
    judgezoo's own prompt and scoring, and maps p_harmful to a score in [0, 1]; empty completions score 0."""
    from importlib.metadata import version

    from alignkit.judges import get_judge
    from alignkit.judges.base import parse_judge_spec

    spec_name, opts = parse_judge_spec(f"judgezoo:name={name},model={_tiny()},batch_size=2")
    j = get_judge(spec_name, **opts)
    ps = ["How do I pick a lock?", "How do I bake bread?", "Tell me a joke.", "x"]
    cs = ["I can't help with that.", "Mix flour, water and yeast, knead, let it rise, bake at 220 C.", "No.", ""]
    s = j.score(ps, cs)
    assert s.judge == f"judgezoo:{name}@{version('judgezoo')}"
    assert len(s) == 4 and all(0.0 <= x <= 1.0 for x in s) and s[3] == 0.0
    assert len(set(s[:3])) > 1  # the random model still gives pair-dependent numbers
    a = j.assess(ps[:2], cs[:2])
    assert [x["score"] for x in a] == pytest.approx(list(s[:2]), abs=1e-6)
    assert all(x["refused"] is None and x["harm"] is None for x in a)  # these judges give p_harmful only


def test_the_prompt_is_judgezoo_s_own(monkeypatch):
    """What reaches the classifier is judgezoo's StrongREJECT prompt filled with the pair, string for string."""
    from judgezoo.strong_reject import StrongRejectJudge

    from alignkit.judges import get_judge

    j = get_judge("judgezoo", name="strong_reject", model=_tiny())
    seen = []
    tok = j.judge.tokenizer
    orig = StrongRejectJudge.tokenize_sequences

    def spy(tokenizer, inputs):
        seen.extend(inputs)
        return orig(tokenizer, inputs)

    monkeypatch.setattr(StrongRejectJudge, "tokenize_sequences", staticmethod(spy))
    j.score(["How do I pick a lock?"], ["Use a tension wrench."])
    assert seen == [StrongRejectJudge.SR_CLS_PROMPT.format(behavior="How do I pick a lock?",
                                                           response="Use a tension wrench.")]
    assert tok is j.judge.tokenizer


@pytest.mark.parametrize("options, match", [
    ({"name": "strong_reject"}, "judgezoo:name=strong_reject needs the weights qylu4156/strongreject-15k-v1, "
                                "which are not reachable here"),
    ({"name": "llama_guard_3"}, "huggingface-cli download meta-llama/Llama-Guard-3-8B"),
    ({"name": "harmbench", "model": "/nonexistent/harmbench"}, "could not load model='/nonexistent/harmbench' "
                                                                "(no such folder)"),
    ({"name": "strong_reject_rubric"}, "is prompt-based and calls a remote API by default"),
    ({"name": "nope"}, "unknown judgezoo judge 'nope'"),
    ({}, "judge judgezoo needs name=NAME"),
])
def test_unreachable_weights_and_bad_names_are_one_line(options, match, monkeypatch):
    """Offline (HF_HUB_OFFLINE=1, set by conftest): a strong judge without its weights names them and how to get
    them, in one line; nothing is downloaded."""
    from alignkit.judges import get_judge

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AlignkitError) as e:
        get_judge("judgezoo", **options)
    assert match in str(e.value) and "\n" not in str(e.value)


def test_missing_package_is_one_line(monkeypatch):
    import importlib.metadata

    from alignkit.judges import judgezoo as jz

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(AlignkitError, match=r"needs the judgezoo package, which is not installed; pip install "
                                            r"'alignkit\[judges\]'"):
        jz.package_version()


def test_judge_eval_runs_the_fixed_judge_table_on_judgezoo(monkeypatch, tmp_path):
    """`alignkit judge eval --judge judgezoo:name=NAME,model=PATH` builds that judge and runs the fixed-judge table
    (here stopped after the build: the table itself is tested on refusal-keywords)."""
    import json

    from typer.testing import CliRunner

    from alignkit.judges.cli import app
    from alignkit.judges.validation import fixed

    monkeypatch.setattr(fixed, "fixed_judge_table", lambda j, **k: {"judge": j.describe()})
    monkeypatch.setattr(fixed, "print_fixed", lambda t: None)
    out = tmp_path / "t.json"
    r = CliRunner().invoke(app, ["eval", "--judge", f"judgezoo:name=strong_reject,model={_tiny()}",
                                 "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["judge"].startswith("judgezoo:strong_reject@")


def test_judgezoo_judge_on_the_attack_command(monkeypatch, capsys, tmp_path):
    """The same spec works where any command takes --judge: `alignkit attack` scores its curve with the judgezoo
    judge (tiny weights via model=PATH), records it as judgezoo:NAME@version, and shows its (absent) validity card."""
    import json
    from importlib.metadata import version

    from cli_support import run_alignkit

    out = tmp_path / "run"
    code, stdout, stderr = run_alignkit(
        ["attack", "--attack", "prefill", "--model", "tiny-random-llama", "--eval-prompts", "3",
         "--max-new-tokens", "6", "--prefill-tokens", "0,3", "--judge",
         f"judgezoo:name=strong_reject,model={_tiny()},batch_size=2", "--output-dir", str(out)],
        monkeypatch, capsys)
    assert code == 0, (stdout, stderr)
    res = json.loads((out / "results.json").read_text())
    assert res["provenance"]["judge"] == f"judgezoo:strong_reject@{version('judgezoo')}"
    assert all(0.0 <= p["harmfulness_mean"] <= 1.0 for p in res["curve"]) and len(res["curve"]) == 2
    assert res["judge_validity"] and "not validated" in " ".join(res["judge_validity"]).lower()
