from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignkit.judges.cli import app

runner = CliRunner()


def test_list():
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0, r.output
    for n in ("minilm", "refusal-keywords", "hf-classifier", "llm-rubric"):
        assert n in r.output


def test_score_one_pair():
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--prompt", "q",
                            "--completion", "I'm sorry, I cannot do that."])
    assert r.exit_code == 0, r.output
    assert "0.0000" in r.output and "refusal-keywords@2" in r.output


def test_score_jsonl(fixtures_dir, tmp_path):
    out = tmp_path / "scored.jsonl"
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--input",
                            str(fixtures_dir / "score_rows.jsonl"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["score"] for x in rows] == [0.0, 1.0, 0.0]
    assert all(x["judge"] == "refusal-keywords@2" for x in rows)


def test_unknown_judge_via_cli_is_alignkit_error():
    from alignkit.errors import AlignkitError

    r = runner.invoke(app, ["score", "--judge", "nope", "--completion", "x"])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)


def test_root_cli_prints_one_line_error(capsys):
    """Mounted as 'alignkit judge', user errors become 'error: ...' and exit 2."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "alignkit.judges.cli", "score", "--judge", "nope",
                        "--completion", "x"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: unknown judge 'nope'") and len(p.stderr.strip().splitlines()) == 1


def test_eval_quick_with_keywords(tmp_path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--judge", "refusal-keywords", "--split", "test", "--limit", "60",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["split"] == "test" and m["judge"] == "refusal-keywords@2"
    assert {"accuracy", "f1", "auroc"} <= set(m["clear"]) and m["all"]["n"] == 60


@pytest.mark.slow
def test_eval_minilm_on_held_out_test_split(tmp_path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--judge", "minilm@3", "--split", "test", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert "AUROC" in r.output and "clear" in r.output
    m = json.loads(out.read_text())
    assert m["judge"] == "minilm@3" and m["split"] == "test"
    assert m["all"]["auroc"] > 0.8


def test_ood_table_prints_the_ceiling_and_real_generation_rows(capsys):
    from alignkit.judges.cli import print_ood

    b = {"n": 10, "accuracy": 0.5, "auroc": 0.6}
    t = {"judge": "minilm@3 recipe (re-fitted per protocol)", "loco": {"x": {"all": b, "clear": b}},
         "loco_mean": {"all": b, "clear": b}, "harm_to_refusal": b, "refusal_to_harm": {"all": b, "clear": b},
         "mean_ood": {"all": b, "clear": b}, "probe": {},
         "human_ceiling": {"rows": 7, "by_category": {"violence": {"n": 21, "accuracy": 0.777, "auroc": 0.888,
                                                                   "rows": 7}},
                           "overall": {"n": 21, "accuracy": 0.777, "auroc": 0.888}},
         "real_generations": {"judge": "minilm@3", "n": 143, "accuracy": 0.8671, "auroc": 0.8829}}
    print_ood(t)
    out = capsys.readouterr().out
    assert "human annotator vs others" in out and "0.777" in out and "0.888" in out
    assert "real generations" in out and "0.867" in out and "0.883" in out and "minilm@3" in out


def test_ood_table_scores_the_judge_on_every_hand_labelled_set(monkeypatch):
    from alignkit.judges import cli
    from alignkit.judges.validation import real_generations as rg

    seen = []
    monkeypatch.setattr(rg, "evaluate", lambda judge, rows: seen.append((judge, len(rows))) or {"n": len(rows)})
    t = {"config": {}}
    cli._real_generations(t, "minilm@5", print)
    assert len(t) == 6 and {n for _, n in seen} == {143, 168, 58, 70, 93}
    assert {j for j, _ in seen} == {"minilm@5"}


BAD_INPUT = [
    (["eval", "--version", "1"], "judge minilm@1 (fine-tuned cross-encoder) was retired; use minilm@5 (default), "
                                 "minilm@3, or restore it from commit dee4c2c"),
    (["eval", "--version", "9"], "unknown minilm judge version '9'; available: minilm@5 (default), minilm@3"),
    (["eval", "--split", "test", "--version", "3"], "--lm-layer apply to the OOD table"),
    (["train", "--version", "9"], "available: minilm@5 (default), minilm@3"),
    (["train", "--version", "2"], "minilm@2 (MiniLM features only) was retired"),
    (["train", "--ship", "--lm", "x"], "--ship re-creates the shipped weights"),
    (["train", "--lm", " "], "--lm is empty"),
    (["eval", "--lm-layer", "0"], "--lm-layer must be >= 1"),
    (["eval", "--split", "test", "--lm", "x"], "apply to the OOD table"),
    # checked before any features are computed / any training starts
    (["train", "--threads", "0"], "--threads must be >= 1"),
    (["train", "--threads", "-3"], "--threads must be >= 1"),
    (["train", "--c-harm", "-1"], "--c-harm must be a finite number > 0"),
    (["train", "--c-harm", "nan"], "--c-harm must be a finite number > 0"),
    (["train", "--version", "3", "--c-refusal", "0"], "--c-refusal must be a finite"),
    (["train", "--c-stack", "inf"], "--c-stack must be a finite"),
    (["train", "--lm-layer", "999"],
     "layer 999 (--lm-layer) is past the last decoder layer of "
     "'smollm2-135m-instruct', which has 30; give --lm-layer 1..30"),
    (["train", "--version", "3", "--lm", "tiny-random-llama"],
     "past the last decoder layer of 'tiny-random-llama', which has 2"),
    (["eval", "--lm-layer", "999"], "give --lm-layer 1..30"),
    (["eval", "--probe-judges", "nope,refusal-keywords"],
     "--probe-judges 'nope': unknown judge 'nope'; choose one of: hf-classifier, "
     "judgezoo, llm-rubric, minilm, refusal-keywords"),
    (["eval", "--probe-judges", "minilm@9"], "unknown minilm judge version '9'"),
    (["eval", "--probe-judges", "minilm@7"], "minilm@7 (minilm@5 with a substance-aware calibration) was retired"),
    (["eval", "--probe-judges", "minilm:batch_size=0"], "batch_size must be >= 1"),
    (["eval", "--split", "test", "--judge", "refusal-keywords", "--dataset",
      "harmful-qa"], "dataset 'harmful-qa' has no judge-label rows (prompt, "
                     "response, label); use judge-labels"),
    (["eval", "--split", "test", "--judge", "refusal-keywords", "--dataset",
      "advbench"], "dataset 'advbench' has no judge-label rows"),
    # issue 28: --judge without --split is honoured (checked at once), never ignored
    (["eval", "--judge", "nope"], "unknown judge 'nope'"),
    (["eval", "--judge", "minilm@2"], "minilm@2 (MiniLM features only) was retired"),
    (["eval", "--judge", "minilm@3", "--version", "5"], "--judge minilm@3 and --version 5 disagree"),
    (["eval", "--judge", "refusal-keywords", "--version", "5"], "--version apply to a minilm recipe's OOD table"),
    (["eval", "--judge", "refusal-keywords", "--probe-judges", "minilm"], "--probe-judges apply to a minilm"),
    (["eval", "--judge", "judgezoo"], "judge judgezoo needs name=NAME"),
    (["eval", "--judge", "judgezoo:name=nope"], "unknown judgezoo judge 'nope'; names: strong_reject, harmbench"),
    # issue 28: an --output that cannot be written is one line before any work, not a traceback at the end
    (["eval", "--output", "/proc/x.json"], "--output '/proc/x.json' cannot be written"),
    (["eval", "--split", "test", "--judge", "refusal-keywords", "--output", "/proc/x.json"],
     "--output '/proc/x.json' cannot be written"),
    (["train", "--output", "/proc/x.safetensors"], "--output '/proc/x.safetensors' cannot be written"),
]


@pytest.mark.parametrize("args, match", BAD_INPUT)
def test_judge_version_options_bad_input(args, match, monkeypatch):
    from alignkit.errors import AlignkitError
    from alignkit.judges import minilm3, minilm5
    from alignkit.judges.validation import fixed, labels

    # none of these may reach the long work: training, a validation table, or scoring
    for mod, fn in ((minilm3, "train"), (minilm5, "train"), (minilm3, "ood_table"), (minilm5, "ood_table"),
                    (fixed, "fixed_judge_table"), (labels, "evaluate_judge")):
        monkeypatch.setattr(mod, fn, lambda *a, **k: pytest.fail("started the long work"))
    r = runner.invoke(app, args)
    assert r.exit_code != 0
    assert isinstance(r.exception, AlignkitError), r.exception
    assert match in str(r.exception) and "\n" not in str(r.exception)


def test_train_epochs_is_refused_not_ignored():
    """issue 28: `judge train --epochs 0` used to be ignored (it belonged to the retired minilm@1); the option is gone,
    so the command refuses it (a usage error, exit 2) instead of training without it."""
    r = runner.invoke(app, ["train", "--epochs", "0"])
    assert r.exit_code == 2 and "--epochs" in r.output


def test_eval_honours_judge_without_split(monkeypatch, tmp_path):
    """issue 28: `judge eval --judge X` without --split validates X (the fixed-judge table), not the default recipe."""
    from alignkit.judges import minilm5
    from alignkit.judges.validation import fixed

    seen = {}
    monkeypatch.setattr(minilm5, "ood_table", lambda *a, **k: pytest.fail("ran the default recipe's table"))
    monkeypatch.setattr(fixed, "fixed_judge_table", lambda j, **k: seen.setdefault("t", {"judge": j.describe()}))
    monkeypatch.setattr(fixed, "print_fixed", lambda t: None)
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["eval", "--judge", "refusal-keywords", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == {"judge": "refusal-keywords@2"}


def test_fixed_judge_table_on_refusal_keywords():
    """The fixed-judge table measures a judge it never fits: probe set, refusal-scorer false positives, held-out
    labels and the hand-labelled sets (refusal-keywords has no 'refused' output: refusal detection not measured)."""
    from alignkit.judges import get_judge
    from alignkit.judges.validation.fixed import fixed_judge_table

    t = fixed_judge_table(get_judge("refusal-keywords"), log=lambda s: None)
    assert t["judge"] == "refusal-keywords@2" and t["refusal_scorer"]["refused"] is None
    fp = t["refusal_scorer"]["score_above_half"]
    assert fp["refusals"]["n"] > 50 and 0 <= fp["refusals"]["share"] < fp["complying_harmless"]["share"] <= 1
    p = t["probe"]["refusal-keywords@2"]
    assert p["refusal"]["above_0.5"] == 0 and p["harmful"]["above_0.5"] == 12  # a keyword judge: non-refusal
    assert t["labels_test"]["split"] == "test" and t["real_generations"]["n"] == 143


def test_ood_table_on_another_lm_passes_lm_and_layer_to_the_recipe(monkeypatch, capsys):
    """`judge eval --lm X --lm-layer K` re-fits the recipe on X's layer K, names it in the table's title, and does
    not score the shipped judge (which reads SmolLM2) on the real generations."""
    from alignkit.judges import cli, minilm5

    seen = {}

    def fake_table(cfg, log, reference_judges):
        seen["cfg"] = cfg
        return {"judge": "minilm@5 recipe (re-fitted per protocol)", "probe": {"minilm@5": 1, "minilm@3": 2}}

    monkeypatch.setattr(minilm5, "ood_table", fake_table)
    monkeypatch.setattr(cli, "_real_generations", lambda *a: pytest.fail("scored the shipped judge"))
    monkeypatch.setattr(cli, "print_ood", lambda t: seen.setdefault("t", t))
    r = runner.invoke(app, ["eval", "--version", "5", "--lm", "tiny-random-llama", "--lm-layer", "1",
                            "--probe-judges", ""])
    assert r.exit_code == 0, r.output
    assert (seen["cfg"].lm, seen["cfg"].lm_layer) == ("tiny-random-llama", 1)
    assert seen["t"]["judge"].endswith(", lm tiny-random-llama, lm_layer 1")
    assert seen["t"]["probe"] == {"minilm@5, lm tiny-random-llama, lm_layer 1": 1, "minilm@3": 2}


def test_train_on_another_lm_through_the_cli(tmp_path, monkeypatch):
    """`judge train --version 5 --lm tiny-random-llama --lm-layer 1 --output X` writes a judge that reads that LM;
    it loads by path and scores (a slice of the rows; feature caches off)."""
    import functools

    from alignkit.judges import get_judge, minilm3
    from alignkit.judges.recipe import training as minilm2

    rows = minilm2.training_rows(0, True)[::40]
    monkeypatch.setattr(minilm2, "training_rows", lambda seed=0, synthetic=True: list(rows))
    monkeypatch.setattr(minilm2, "features_for", functools.partial(minilm2.features_for, cache=False))
    monkeypatch.setattr(minilm3, "lm_features_for", functools.partial(minilm3.lm_features_for, cache=False))
    out = tmp_path / "w.safetensors"
    r = runner.invoke(app, ["train", "--version", "5", "--lm", "tiny-random-llama", "--lm-layer", "1",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["lm"] == "tiny-random-llama" and meta["config"]["lm_layer"] == 1
    judge = get_judge("minilm", weights=str(out))
    assert type(judge).__name__ == "MiniLMJudgeV5" and judge.lm.layers == [1]
    s = judge.score(["How do I pick a lock?"], ["I can't help with that."])
    assert 0.0 <= s[0] <= 1.0


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
@pytest.mark.parametrize("to_file", [False, True])
def test_score_empty_input_is_an_error(tmp_path, text, to_file):
    """An empty (or blank-lines-only) --input file is a mistake, not zero scored rows; no output file appears."""
    from alignkit.errors import AlignkitError

    src = tmp_path / "empty.jsonl"
    src.write_text(text)
    out = tmp_path / "scored.jsonl"
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--input", str(src)]
                      + (["--output", str(out)] if to_file else []))
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)
    assert str(r.exception).startswith(f"no rows in {src}") and not out.exists()


JUDGE_OPTION_ERRORS = [
    ("minilm:batch_size=-1", "invalid judge option batch_size=-1: batch_size must be >= 1"),
    ("minilm@3:batch_size=-1", "batch_size must be >= 1"),
    ("minilm:batch_size=0", "batch_size must be >= 1"),
    ("minilm:batch_size=abc", "invalid judge option batch_size=abc: batch_size must be a whole number >= 1"),
    ("minilm:batch_size=1e999", "batch_size must be a whole number >= 1"),
    ("minilm:batch_size=2.5", "batch_size must be a whole number >= 1"),
    ("minilm:threads=-1", "invalid judge option threads=-1: threads must be >= 1"),
    ("minilm:threads=0", "threads must be >= 1"),
    ("minilm:device=tpu", "invalid judge option device=tpu: unknown device; use cpu, cuda, cuda:N or mps"),
    ("minilm:device=", "device must be cpu, cuda, cuda:N or mps"),
    ("minilm@5:max_length=0", "judge 'minilm' has no option(s) max_length; known options: version, weights"),
    ("minilm@9", "unknown minilm judge version '9'; available: minilm@5 (default), minilm@3"),
    ("minilm@1", "judge minilm@1 (fine-tuned cross-encoder) was retired; use minilm@5 (default), minilm@3"),
    ("minilm@6:batch_size=4", "minilm@6 (minilm@5 trained with non-answers) was retired"),
    ("judgezoo", "judge judgezoo needs name=NAME (e.g. judgezoo:name=strong_reject)"),
    ("judgezoo:name=harmbench,batch_size=0", "batch_size must be >= 1"),
    ("judgezoo:name=strong_reject,color=red", "judge 'judgezoo' has no option(s) color"),
    ("llm-rubric:max_new_tokens=-1", "invalid judge option max_new_tokens=-1: max_new_tokens must be >= 1"),
    ("llm-rubric:max_new_tokens=abc", "max_new_tokens must be a whole number >= 1"),
    ("llm-rubric:batch_size=0", "batch_size must be >= 1"),
    ("llm-rubric:batch_size=-1", "batch_size must be >= 1"),
    ("llm-rubric:max_input_tokens=-1", "max_input_tokens must be >= 1"),
    ("llm-rubric:max_input_tokens=0", "max_input_tokens must be >= 1"),
    ("llm-rubric:fallback_value=abc", "invalid judge option fallback_value=abc: fallback_value must be a number in"),
    ("llm-rubric:fallback_value=nan", "fallback_value must be a number in [0, 1]"),
    ("llm-rubric:fallback_value=2", "fallback_value must be a number in [0, 1]"),
    ("hf-classifier:model=org/x,batch_size=0", "batch_size must be >= 1"),
]


@pytest.mark.parametrize("spec, match", JUDGE_OPTION_ERRORS)
def test_score_bad_judge_option_values(spec, match, monkeypatch):
    """Option values are checked centrally (get_judge) before any model loads: one line, never a traceback."""
    from alignkit import models
    from alignkit.errors import AlignkitError

    monkeypatch.setattr(models, "load_causal_lm", lambda *a, **k: pytest.fail("loaded a model"))
    r = runner.invoke(app, ["score", "--judge", spec, "--completion", "x"])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError), r.exception
    assert match in str(r.exception) and "\n" not in str(r.exception)


@pytest.mark.parametrize("spec", ["minilm:device=cuda", "minilm@3:device=cuda:0", "llm-rubric:device=cuda",
                                  "judgezoo:name=strong_reject,device=cuda"])
def test_cuda_device_without_cuda_is_an_error(spec, monkeypatch):
    import torch

    from alignkit.errors import AlignkitError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = runner.invoke(app, ["score", "--judge", spec, "--completion", "x"])
    assert isinstance(r.exception, AlignkitError), r.exception
    assert "CUDA is not available here" in str(r.exception) and "device=cpu" in str(r.exception)


@pytest.mark.parametrize("version", ["", "@3", "@5"])
@pytest.mark.parametrize("content", [b"garbage\n", b"{}\n", b"\x00" * 3])
def test_weights_file_that_is_not_safetensors(tmp_path, version, content):
    from alignkit.errors import AlignkitError

    w = tmp_path / "bad.safetensors"
    w.write_bytes(content)
    r = runner.invoke(app, ["score", "--judge", f"minilm{version}:weights={w}", "--completion", "x"])
    assert isinstance(r.exception, AlignkitError), r.exception
    assert str(r.exception).startswith(f"weights file {str(w)!r} is not a valid safetensors file")
    assert "\n" not in str(r.exception)


def test_weights_with_a_bad_metadata_file(tmp_path):
    import shutil

    from alignkit.errors import AlignkitError
    from alignkit.judges import minilm3

    w = tmp_path / "w.safetensors"
    shutil.copy(minilm3.SHIPPED_WEIGHTS, w)
    w.with_suffix(".json").write_text("{not json")
    r = runner.invoke(app, ["score", "--judge", "minilm@3", "--weights", str(w), "--completion", "x"])
    assert isinstance(r.exception, AlignkitError) and "is not valid JSON" in str(r.exception)
    w.with_suffix(".json").write_text(json.dumps({"config": {"c_harm": -1}}))
    r = runner.invoke(app, ["score", "--judge", "minilm@3", "--weights", str(w), "--completion", "x"])
    assert isinstance(r.exception, AlignkitError) and "has a bad config (c_harm must be" in str(r.exception)


@pytest.mark.parametrize("args, match", [
    (["score", "--judge", "minilm:batch_size=-1", "--completion", "x"], "error: invalid judge option batch_size=-1"),
    (["train", "--threads", "0"], "error: --threads must be >= 1"),
])
def test_root_cli_bad_values_exit_2(args, match):
    """Through the real entry point: one 'error: ...' line on stderr, exit 2, nothing on stdout."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "alignkit.judges.cli", *args], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().startswith(match) and len(p.stderr.strip().splitlines()) == 1
