"""Every known bad input, as one table: (command line, expected exit status, fragment of the one-line message).

Each case runs the real entry point (``alignkit.cli.main``) in-process and must print exactly one line
``error: ...`` on stderr (no traceback) and exit with the given status. A new option or a new mistake is one
more row. Paths in the table are placeholders filled per test: {tmp} (a fresh folder), {file} (a plain file),
{bad_utf8}, {not_object}, {pairs_not_object}, {no_answer}, {torn_model} (a model folder with truncated safetensors),
{pickle_sv} (a peft adapter folder with only adapter_model.bin).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

T = ["--model", "tiny-random-llama"]  # the tiny model every command case uses
ATTACK = ["attack", *T, "--judge", "refusal-keywords", "--max-steps", "1", "--eval-prompts", "2",
          "--max-new-tokens", "2", "--num-samples", "4", "--max-length", "32"]
DEFEND = ["defend", "--defence", "safety-sft", *T, "--max-steps", "1"]
EVALUATE = ["evaluate", *T, "--base", "smollm2-135m-instruct", "--judge", "refusal-keywords"]

CASES = [
    # output folders: a file, a folder below a file, a folder that cannot be created
    ("attack-out-file", [*ATTACK, "--output-dir", "{file}"], 2, "is a file"),
    ("attack-out-below-file", [*ATTACK, "--output-dir", "{file}/run"], 2, "is a file"),
    ("attack-out-uncreatable", [*ATTACK, "--output-dir", "/proc/alignkit-no/run"], 2, "cannot create output dir"),
    ("defend-out-file", [*DEFEND, "--output-dir", "{file}"], 2, "is a file"),
    ("evaluate-out-file", [*EVALUATE, "--output-dir", "{file}"], 2, "is a file"),
    # data files
    ("attack-data-not-utf8", [*ATTACK, "--dataset", "{bad_utf8}", "--output-dir", "{tmp}/a"], 2,
     "line 2: not valid UTF-8"),
    ("attack-data-not-object", [*ATTACK, "--dataset", "{not_object}", "--output-dir", "{tmp}/a"], 2,
     "line 2: not a JSON object"),
    ("attack-data-no-answer-column", [*ATTACK, "--dataset", "{no_answer}", "--output-dir", "{tmp}/a"], 2,
     "name it with --answer-column COLUMN"),  # hints name CLI flags
    ("attack-data-folder", [*ATTACK, "--dataset", "{tmp}", "--output-dir", "{tmp}/a"], 2, "is a directory"),
    ("defend-data-not-object", [*DEFEND, "--dataset", "{pairs_not_object}", "--output-dir", "{tmp}/d"], 2,
     "line 2: not a JSON object"),
    ("defend-data-not-utf8", [*DEFEND, "--dataset", "{bad_utf8}", "--output-dir", "{tmp}/d"], 2, "not valid UTF-8"),
    ("defend-data-folder", [*DEFEND, "--dataset", "{tmp}", "--output-dir", "{tmp}/d"], 2, "is a folder"),
    # training options: unknown names list the choices, counts and seeds are checked
    ("attack-optimizer", [*ATTACK, "--optimizer", "adamm"], 2, "unknown optimizer 'adamm'; choose from adamw_torch"),
    ("attack-scheduler", [*ATTACK, "--scheduler", "cosin"], 2, "unknown scheduler 'cosin'; choose from linear"),
    ("defend-optimizer", [*DEFEND, "--optimizer", "adamm"], 2, "unknown optimizer"),
    ("attack-negative-seed", [*ATTACK, "--seed", "-1"], 2, "--seed: Input should be greater than or equal to 0"),
    ("attack-negative-data-seed", [*ATTACK, "--data-seed", "-3"], 2, "--data-seed"),
    ("defend-negative-seed", [*DEFEND, "--seed", "-1"], 2, "--seed"),
    ("evaluate-negative-seed", [*EVALUATE, "--seed", "-1"], 2, "--seed"),
    ("attack-zero-samples", [*ATTACK, "--num-samples", "0"], 2, "--num-samples"),
    ("attack-zero-eval-prompts", [*ATTACK, "--eval-prompts", "0"], 2, "--eval-prompts"),
    ("attack-zero-steps", [*ATTACK, "--max-steps", "0"], 2, "--max-steps"),
    ("sweep-zero-samples", [*ATTACK, "--sweep", "--sweep-samples", "0"], 2, "--sweep-samples"),
    ("sweep-fractional-samples", [*ATTACK, "--sweep", "--sweep-samples", "2.5"], 2,
     "--sweep-samples: Input should be a valid integer"),
    ("sweep-bad-lr", [*ATTACK, "--sweep", "--sweep-lrs", "3e-5,x"], 2, "--sweep-lrs"),
    ("sweep-bad-method", [*ATTACK, "--sweep", "--sweep-methods", "ful"], 2, "--sweep-methods"),
    ("sweep-grid-without-sweep", [*ATTACK, "--sweep-lrs", "3e-5"], 2, "need --sweep"),
    ("evaluate-zero-attack-samples", [*EVALUATE, "--attack-samples", "0"], 2, "--attack-samples"),
    ("evaluate-bad-attack-method", [*EVALUATE, "--attack-methods", "full,lorra"], 2, "--attack-methods"),
    ("evaluate-fractional-attack-samples", [*EVALUATE, "--attack-samples", "2.5"], 2, "valid integer"),
    # choices
    ("attack-method-choice", [*ATTACK, "--method", "qlora"], 2, "'qlora' is not one of 'full', 'lora'"),
    ("attack-template-choice", [*ATTACK, "--template", "alpaca"], 2, "--template"),
    ("unknown-option", [*ATTACK, "--learning-rate", "1e-4"], 2, "No such option: --learning-rate"),
    ("unknown-command", ["atack"], 2, "No such command"),
    # models and weights
    ("attack-torn-weights", ["attack", "--model", "{torn_model}", "--judge", "refusal-keywords",
                             "--output-dir", "{tmp}/a"], 2, "truncated or corrupt"),
    ("attack-max-new-tokens-beyond-context", [*ATTACK, "--max-new-tokens", "100000", "--output-dir", "{tmp}/a"], 2,
     "does not fit the model's context of 512"),
    ("evaluate-max-new-tokens-beyond-context", [*EVALUATE, "--max-new-tokens", "100000", "--output-dir", "{tmp}/e"],
     2, "does not fit the context"),
    ("evaluate-model-is-base", ["evaluate", *T, "--base", "tiny-random-llama", "--output-dir", "{tmp}/e"], 2,
     "is the --base model itself"),
    ("evaluate-misspelt-heldout", [*EVALUATE, "--heldout-categories", "violense", "--output-dir", "{tmp}/e"], 2,
     "--heldout-categories: unknown category 'violense'; choose from"),
    ("evaluate-no-conditions", [*EVALUATE, "--conditions", "", "--output-dir", "{tmp}/e"], 2,
     "give at least one condition (resistance, stability, generalization, trainability, depth)"),
    ("evaluate-only-commas-conditions", [*EVALUATE, "--conditions", ",", "--output-dir", "{tmp}/e"], 2,
     "give at least one condition"),
    # names checked before any stage runs (they used to fail only when their stage began)
    ("evaluate-unknown-judge", [*EVALUATE[:-2], "--judge", "nope", "--output-dir", "{tmp}/e"], 2,
     "--judge: unknown judge 'nope'; choose one of:"),
    ("evaluate-unknown-judge-version", [*EVALUATE[:-2], "--judge", "minilm@99", "--output-dir", "{tmp}/e"], 2,
     "unknown minilm judge version"),
    ("evaluate-unknown-eval-dataset", [*EVALUATE, "--eval-dataset", "nope", "--output-dir", "{tmp}/e"], 2,
     "--eval-dataset: unknown evaluation dataset 'nope'"),
    ("evaluate-missing-cross-domain-file", [*EVALUATE, "--cross-domain-data", "{tmp}/nonexist.jsonl",
                                            "--output-dir", "{tmp}/e"], 2, "--cross-domain-data: dataset file"),
    ("evaluate-unknown-cross-domain-name", [*EVALUATE, "--cross-domain-data", "nosuch", "--output-dir", "{tmp}/e"],
     2, "--cross-domain-data: unknown dataset 'nosuch'"),
    # assets
    ("assets-list-unknown", ["assets", "list", "--name", "nope"], 2,
     "unknown asset 'nope'; choose one of: smollm2-135m-instruct"),
    ("assets-list-empty-name", ["assets", "list", "--name", ""], 2, "unknown asset ''; choose one of:"),
    ("assets-prepare-unknown", ["assets", "prepare", "--name", "tiny-random-llama", "--name", "nope"], 2,
     "unknown asset 'nope'"),
    # code execution only when asked for
    ("attack-judge-import", [*ATTACK, "--judge", "os:getcwd", "--output-dir", "{tmp}/a"], 2,
     "would import and run Python module 'os'"),
    ("evaluate-judge-import", ["evaluate", *T, "--base", "smollm2-135m-instruct", "--judge", "os:getcwd",
                               "--output-dir", "{tmp}/e"], 2, "--allow-judge-import"),
    # CTE commands (their other bad inputs are table-driven in tests/cte/test_cli.py)
    ("cte-generate-out-file", ["cte", "generate", "--method", "random", "-n", "2", "--out", "{file}"], 2,
     "is a file, not a folder; pick another --out"),
    ("cte-pipeline-out-below-file", ["cte", "pipeline", "--out", "{file}/x"], 2, "pick another --out"),
    ("cte-explain-out-file", ["cte", "explain", "{trajectory}", "--out", "{file}"], 2, "--out"),
    ("cte-explain-not-json", ["cte", "explain", "{file}", "--out", "{tmp}/x"], 2, "is not JSON"),
    # judge commands
    ("judge-eval-limit-zero", ["judge", "eval", "--split", "test", "--limit", "0"], 2, "--limit"),
    ("judge-eval-limit-negative", ["judge", "eval", "--split", "test", "--limit", "-3"], 2, "--limit"),
    ("judge-eval-output-below-file", ["judge", "eval", "--split", "test", "--output", "{file}/m.json"], 2,
     "--output"),
    ("judge-eval-output-folder", ["judge", "eval", "--split", "test", "--output", "{tmp}"], 2, "is a folder"),
    ("judge-score-output-below-file", ["judge", "score", "--judge", "refusal-keywords", "--prompt", "p",
                                       "--completion", "c", "--output", "{file}/s.jsonl"], 2, "--output"),
    ("judge-train-output-below-file", ["judge", "train", "--output", "{file}/w.safetensors"], 2, "--output"),
    ("judge-unknown-refusal-version", ["judge", "score", "--judge", "refusal-keywords@7", "--prompt", "p",
                                       "--completion", "c"], 2, "refusal-keywords@1, refusal-keywords@2"),
    ("judge-unknown-precision", ["judge", "score", "--judge", "minilm:precision=float8", "--prompt", "p",
                                 "--completion", "c"], 2, "unknown precision"),
    ("search-reference-model-missing", ["search", "attack", *T, "--output-dir", "{tmp}/s", "--n-trials", "1",
                                        "--reference-model", "{tmp}/no-such-model"], 2, "does not exist"),
    ("attack-pickle-adapter", [*ATTACK, "--security-vector", "{pickle_sv}", "--output-dir", "{tmp}/a"], 2,
     "pickle weights (adapter_model.bin)"),
    # search: a model that does not exist fails before a study is created (it used to fail inside trial 0, with
    # optuna's traceback on stderr and a study.db left behind)
    ("search-attack-model-missing", ["search", "attack", "--model", "{tmp}/no-such-model", "--output-dir", "{tmp}/s",
                                     "--n-trials", "1"], 2, "does not exist"),
    ("search-attack-model-unknown", ["search", "attack", "--model", "nope", "--output-dir", "{tmp}/s",
                                     "--n-trials", "1"], 2, "unknown model 'nope'"),
    ("search-defence-model-unknown", ["search", "defence", "--defence", "repnoise", "--model", "nope",
                                      "--output-dir", "{tmp}/s", "--n-trials", "1"], 2, "unknown model 'nope'"),
    # search: an unknown capability measure (a choice)
    ("search-capability-data-unknown", ["search", "attack", *T, "--output-dir", "{tmp}/s", "--capability-data",
                                        "wikipedia"], 2, "capability"),
    # issue 28: values that disable a check or contradict each other, empty paths, duplicate config keys
    ("search-grace-below-heartbeat", ["search", "attack", *T, "--heartbeat-interval", "300", "--grace-period", "10",
                                      "--output-dir", "{tmp}/s"], 2,
     "--grace-period 10 must be at least twice --heartbeat-interval 300"),
    ("search-defence-grace-below-heartbeat", ["search", "defence", "--defence", "repnoise", *T, "--heartbeat-interval",
                                              "60", "--grace-period", "60", "--output-dir", "{tmp}/s"], 2,
     "--grace-period 60 must be at least twice"),
    ("attack-out-empty", [*ATTACK, "--output-dir", ""], 2, "--output-dir is empty; give a path"),
    ("defend-out-empty", [*DEFEND, "--output-dir", " "], 2, "--output-dir is empty"),
    ("evaluate-out-empty", [*EVALUATE, "--output-dir", ""], 2, "--output-dir is empty"),
    ("search-out-empty", ["search", "attack", *T, "--output-dir", ""], 2, "--output-dir is empty"),
    ("search-storage-empty", ["search", "attack", *T, "--storage", "", "--output-dir", "{tmp}/s"], 2,
     "--storage is empty"),
    ("search-space-empty", ["search", "attack", *T, "--space", "", "--output-dir", "{tmp}/s"], 2,
     "--space is empty"),
    ("config-out-empty", [*DEFEND, "--config", "{empty_out_yaml}"], 2, "--output-dir in config file"),
    ("config-duplicate-yaml-key", [*DEFEND, "--config", "{dup_yaml}", "--output-dir", "{tmp}/d"], 2,
     "key 'lr' appears twice (line 3)"),
    ("config-duplicate-json-key", [*DEFEND, "--config", "{dup_json}", "--output-dir", "{tmp}/d"], 2,
     "key 'seed' appears twice (line 3)"),
    ("data-show-negative-seed", ["data", "show", "harmful-qa", "--seed", "-1"], 2, "--seed must be 0 or more"),
    ("search-space-missing-dataset-file", ["search", "attack", *T, "--space", "{space_missing_data}",
                                           "--output-dir", "{tmp}/s"], 2,
     "in the search space does not exist"),
    ("search-storage-password-refused", ["search", "attack", *T, "--storage",
                                         "postgresql://bob:s3cretpw@127.0.0.1:9/db", "--output-dir", "{tmp}/s"], 2,
     "cannot open storage 'postgresql://bob:***@127.0.0.1:9/db'"),
    ("search-storage-driver-missing", ["search", "attack", *T, "--storage", "mysql://bob:s3cretpw@127.0.0.1/db",
                                       "--output-dir", "{tmp}/s"], 2, "driver is not installed; install"),
    # a defence that changed nothing is not saved as defended (every step's gradient norm is infinite)
    ("defend-tar-infinite-gradients", ["defend", "--defence", "tar", *T, "--max-steps", "2", "--num-samples", "4",
                                       "--batch-size", "2", "--lambda-tr", "1e30", "--output-dir", "{tmp}/d"], 2,
     "training changed nothing, so the defended model was not saved: the gradient norm was inf"),
    # alignkit matrix (more in tests/matrix/test_matrix.py)
    ("matrix-out-file", ["matrix", *T, "--output-dir", "{file}"], 2, "is a file"),
    ("matrix-out-uncreatable", ["matrix", *T, "--output-dir", "/proc/alignkit-no/run"], 2, "cannot create output dir"),
    ("matrix-unknown-defence", ["matrix", *T, "--defences", "repnoise,nope", "--output-dir", "{tmp}/m"], 2,
     "unknown defence 'nope' in --defences; choose from: adversarial-loss"),
]


@pytest.fixture
def placeholders(tmp_path, tiny_model_path):
    f = tmp_path / "plain.txt"
    f.write_text("not a folder\n")
    good = json.dumps({"question": "q", "answer": "a"})
    bad_utf8 = tmp_path / "bad.jsonl"
    bad_utf8.write_bytes(good.encode() + b"\n" + b'{"question": "\xff\xfe", "answer": "a"}\n')
    not_object = tmp_path / "list.jsonl"
    not_object.write_text(good + "\n[1, 2]\n")
    no_answer = tmp_path / "no_answer.jsonl"
    no_answer.write_text(json.dumps({"question": "q", "reply": "a"}) + "\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"question": "q", "harmful": "h", "harmless": "n"}) + "\n\"just a string\"\n")
    torn = tmp_path / "torn-model"
    shutil.copytree(tiny_model_path, torn)
    w = torn / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    sv = tmp_path / "sv"
    sv.mkdir()
    (sv / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}))
    (sv / "adapter_model.bin").write_bytes(b"not even a pickle")
    trajectory = tmp_path / "trajectory.json"
    trajectory.write_text(json.dumps({"layout_seed": 0, "actions": [1, 3]}))
    dup_yaml = tmp_path / "dup.yaml"
    dup_yaml.write_text("lr: 1.0e-5\nseed: 1\nlr: 2.0e-5\n")
    dup_json = tmp_path / "dup.json"
    dup_json.write_text('{"seed": 1,\n "lr": 1e-5,\n "seed": 2}\n')
    empty_out_yaml = tmp_path / "empty-out.yaml"
    empty_out_yaml.write_text("output_dir: ''\n")
    space_missing_data = tmp_path / "space-missing-data.yaml"
    space_missing_data.write_text("params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-3}\nfixed:\n"
                                  f"  dataset: {tmp_path / 'no-such-data.jsonl'}\n")
    names = {"dup_yaml": str(dup_yaml), "dup_json": str(dup_json), "empty_out_yaml": str(empty_out_yaml),
            "space_missing_data": str(space_missing_data),
            "tmp": str(tmp_path), "file": str(f), "trajectory": str(trajectory), "bad_utf8": str(bad_utf8), "not_object": str(not_object),
            "pairs_not_object": str(pairs), "no_answer": str(no_answer), "torn_model": str(torn), "pickle_sv": str(sv)}
    return {**names, "_before": _tree(tmp_path)}


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """``alignkit ARGS`` in-process: (exit status, stdout, stderr)."""
    from alignkit.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, args, status, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, args, status, fragment, placeholders, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    argv = [a.format(**placeholders) for a in args]
    code, out, err = run_main(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert code == status, (name, code, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert len(errors) == 1, (name, lines[-5:])
    assert fragment in errors[0], (name, errors[0])
    assert "s3cretpw" not in out + err  # a credential on the command line is never printed
    if name in NOTHING_WRITTEN:
        after = _tree(tmp_path)
        assert after == placeholders["_before"], (name, sorted(after - placeholders["_before"]))


#: rows checked to leave nothing behind (no output folder, no config.json, no empty .alignkit.lock)
NOTHING_WRITTEN = {c[0] for c in CASES[CASES.index(next(c for c in CASES if c[0] == "search-grace-below-heartbeat")):]}


def _tree(root) -> set:
    from pathlib import Path

    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def test_failed_run_does_not_block_the_corrected_command(tmp_path, capsys, monkeypatch):
    """A run refused before it measured anything leaves no config.json behind: the corrected command runs."""
    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "run"
    code, _, err = run_main([*ATTACK, "--dataset", str(tmp_path / "missing.jsonl"), "--output-dir", str(out)], capsys)
    assert code == 2 and "does not exist" in err
    assert not (out / "config.json").exists()
    code, stdout, err = run_main([*ATTACK, "--output-dir", str(out)], capsys)
    assert code == 0, err[-2000:]
    assert json.loads((out / "config.json").read_text())["dataset"] == "harmful-qa"
    assert "results:" in stdout

    d = tmp_path / "def"
    code, _, err = run_main([*DEFEND, "--dataset", str(tmp_path / "missing.jsonl"), "--output-dir", str(d)], capsys)
    assert code == 2 and "does not exist" in err
    assert not (d / "_run").exists()


def test_help_shows_defaults_and_choices(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_main(["attack", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "[default: 8e-05]" in flat  # --lr (rich markup used to swallow it)
    assert "full|lora" in flat and "chat|qa" in flat  # --method and --template are choices
    code, out, _ = run_main(["evaluate", "--help"], capsys)
    flat = " ".join(out.split())
    assert "[default: 3e-05,6e-05,8e-05]" in flat  # a list default, written the way it is typed
    code, out, _ = run_main(["defend", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and "--optimizer" in out  # the shared training options reach every defence
    assert "peak learning rate [default: 2e-05" in flat  # the defences' own default, not the None of "unset"


def test_version_alone(capsys):
    from alignkit import __version__

    code, out, err = run_main(["--version"], capsys)
    assert code == 0 and out.strip() == __version__ and not err


def test_interrupt_says_how_to_resume(capsys, monkeypatch):
    import alignkit.attacks.cli as attack_cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(attack_cli, "_run", interrupted)
    # the command object captured _run at registration: rebuild the app so it picks the patched function
    import typer

    from alignkit import cli

    app = typer.Typer()
    attack_cli.register(app)
    monkeypatch.setattr(cli, "app", app)
    code, _, err = run_main(["--model", "tiny-random-llama"], capsys)
    assert code == 130 and "run the same command again to resume" in err and "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unwritable_output_dir(tmp_path, capsys, monkeypatch):
    """A folder the user may not write to (checked with os.access, so it holds for root too)."""
    import alignkit.io as aio

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(aio.os, "access", lambda p, m: False if str(p) == str(ro / "run") else real(p, m))
    code, _, err = run_main([*ATTACK, "--output-dir", str(ro / "run")], capsys)
    assert code == 2 and "is not writable" in err and "Traceback" not in err
