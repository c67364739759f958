"""Bad input to ``alignkit attack``: non-finite numbers, unreadable run folders, --overwrite on a user's folder,
diverged training (one-line AlignkitError before any model loads where possible; never a corrupt model)."""

from __future__ import annotations

import json

import pytest
from bad_input_support import forbid_model_load, make_training_diverge, one_line_error
from attack_support import TINY


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


@pytest.fixture
def no_model_load(monkeypatch):
    forbid_model_load(monkeypatch)


@pytest.mark.parametrize("flag", ["--epochs", "--weight-decay", "--lr", "--warmup-ratio", "--max-grad-norm",
                                  "--lora-dropout", "--threshold"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_numbers_are_rejected_up_front(tmp_path, monkeypatch, no_model_load, flag, value):
    """Problems 23, 24, 27: --epochs inf (was an OverflowError), --weight-decay inf (was a NaN model), --lr nan
    (was 'Input should be less than 1')."""
    out = tmp_path / "run"
    r = _cli(["attack", "--model", "tiny-random-llama", "--num-samples", "4", "--save-model",
              "--output-dir", str(out), flag, value], tmp_path, monkeypatch)
    msg = one_line_error(r, flag)
    assert "finite number" in msg
    assert not out.exists()


def test_sweep_grid_rejects_non_finite(tmp_path, monkeypatch, no_model_load):
    r = _cli(["attack", "--model", "tiny-random-llama", "--sweep", "--sweep-lrs", "3e-5,nan"], tmp_path,
             monkeypatch)
    assert "finite number" in one_line_error(r, "--sweep-lrs")


@pytest.mark.parametrize("overwrite", [True, False])
def test_user_folder_message_matches_overwrite(tmp_path, monkeypatch, no_model_load, overwrite):
    """Problem 26: with --overwrite, the refusal must not tell the user to pass --overwrite."""
    user = tmp_path / "userdir2"
    user.mkdir()
    (user / "important.txt").write_text("keep")
    r = _cli(["attack", "--model", "tiny-random-llama", "--max-steps", "1", "--output-dir", str(user)]
             + (["--overwrite"] if overwrite else []), tmp_path, monkeypatch)
    msg = one_line_error(r, "not an alignkit attack run folder")
    assert "pass --overwrite" not in msg and "choose an empty or new --output-dir" in msg
    if overwrite:
        assert "--overwrite only replaces alignkit attack run folders" in msg
    assert (user / "important.txt").read_text() == "keep"
    assert sorted(p.name for p in user.iterdir() if not p.name.startswith(".")) == ["important.txt"]


def test_overwrite_keeps_a_foreign_config_json(tmp_path, monkeypatch, no_model_load):
    """A folder whose config.json alignkit did not write (e.g. a Hugging Face model) is not a run folder."""
    user = tmp_path / "hf"
    user.mkdir()
    (user / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (user / "model.safetensors").write_bytes(b"x")
    r = _cli(["attack", "--model", "tiny-random-llama", "--output-dir", str(user), "--overwrite"], tmp_path,
             monkeypatch)
    one_line_error(r, "--overwrite only replaces alignkit attack run folders")
    assert (user / "model.safetensors").exists() and (user / "config.json").exists()


def _run_folder(tmp_path, config_text=None, metrics=None):
    """A run folder as a finished run leaves it (config.json, metrics.jsonl), without results.json."""
    from alignkit.attacks import AttackConfig

    out = tmp_path / "run"
    out.mkdir()
    cfg = AttackConfig(**TINY, output_dir=str(out))
    (out / "config.json").write_text(config_text if config_text is not None
                                     else json.dumps(cfg.model_dump(mode="json")))
    if isinstance(metrics, bytes):
        (out / "metrics.jsonl").write_bytes(metrics)
    else:
        (out / "metrics.jsonl").write_text(metrics if metrics is not None else json.dumps(
            {"type": "eval", "step": 0, "harmfulness_mean": 0.1, "share_harmful": 0.0}) + "\n")
    (out / "generations").mkdir()
    return cfg, out


@pytest.mark.parametrize("config_text", ["[1]", "{", "\"text\"", "null"])
def test_unreadable_config_json_on_resume(tmp_path, no_model_load, config_text):
    """Problem 25: config.json [1] (was AttributeError), { (was 'holds a different attack run')."""
    from alignkit.attacks import attack
    from alignkit.errors import AlignkitError

    cfg, out = _run_folder(tmp_path, config_text=config_text)
    with pytest.raises(AlignkitError) as exc:
        attack(cfg)
    msg = str(exc.value)
    assert f"config.json in {str(out)!r} is unreadable; pass --overwrite" in msg and "\n" not in msg
    assert "different" not in msg
    assert (out / "metrics.jsonl").exists()  # nothing deleted


@pytest.mark.parametrize("metrics", [b"\xff\xfe", b"[1]\n", b'{"type": "eval"}\n', b'{"step": "x"}\n'])
def test_unreadable_metrics_on_resume(tmp_path, no_model_load, metrics):
    """Problem 25: metrics.jsonl of bytes \\xff\\xfe with results.json removed (was UnicodeDecodeError)."""
    from alignkit.attacks import attack
    from alignkit.errors import AlignkitError

    cfg, out = _run_folder(tmp_path, metrics=metrics)
    with pytest.raises(AlignkitError) as exc:
        attack(cfg)
    msg = str(exc.value)
    assert f"metrics.jsonl in {str(out)!r} is unreadable; pass --overwrite" in msg and "\n" not in msg
    assert (out / "metrics.jsonl").read_bytes() == metrics  # left as it was


def test_overwrite_replaces_an_unreadable_run(tmp_path, monkeypatch):
    """The fix the message names works: --overwrite clears the broken run folder (it is alignkit's)."""
    from alignkit.attacks import AttackConfig
    from alignkit.training import RunFolder

    cfg, out = _run_folder(tmp_path, config_text="[1]")
    folder = RunFolder(out)
    assert folder.is_alignkit_run()
    new = AttackConfig(**TINY, output_dir=str(out), overwrite=True).model_dump(mode="json")
    assert folder.prepare(new, overwrite=True, kind="attack run") == "overwrite"
    assert json.loads((out / "config.json").read_text())["model"] == "tiny-random-llama"
    assert not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize("save_model", [True, False])
def test_diverged_attack_saves_no_model(tmp_path, monkeypatch, fake_judge, capfd, save_model):
    """Problem 24: weights that became NaN / inf are never saved (--save-model); without --save-model the run
    says so on stderr."""
    from alignkit.attacks import AttackConfig, attack
    from alignkit.errors import AlignkitError

    make_training_diverge(monkeypatch, float("inf"))
    out = tmp_path / "run"
    cfg = AttackConfig(**{**TINY, "max_steps": 1, "eval_every": 1, "eval_prompts": 2, "max_new_tokens": 2,
                          "num_samples": 4}, save_model=save_model, save_checkpoints=False, output_dir=str(out))
    if save_model:
        with pytest.raises(AlignkitError, match=r"training diverged \(non-finite weights") as exc:
            attack(cfg, judge=fake_judge)
        assert "\n" not in str(exc.value)
        assert not (out / "model").exists() and not list(out.rglob("*.safetensors"))
        assert not (out / "results.json").exists()
    else:
        attack(cfg, judge=fake_judge)
        assert "warning: training diverged" in capfd.readouterr().err


def test_dataset_help_matches_supported_files():
    """Problem 27: --help listed parquet, which the data loader refuses."""
    from alignkit.attacks import AttackConfig

    assert "parquet" not in (AttackConfig.model_fields["dataset"].description or "")


def test_bf16_on_cpu_says_so(tmp_path, capfd, monkeypatch):
    """Problem 27: --bf16 on a CPU-only machine is accepted (CPU autocast) with a note on stderr."""
    from alignkit import training

    monkeypatch.setattr(training, "use_cpu", lambda: True)
    try:
        training.training_arguments(tmp_path, lr=1e-4, batch_size=1, max_steps=1, bf16=True)
    except ValueError as exc:  # a transformers build that refuses bf16 on this CPU: a clear error then
        pytest.skip(f"bf16 refused by transformers here: {exc}")
    assert "--bf16 on a CPU-only machine" in capfd.readouterr().err


# ------------------------------------------------------------------------------------------------ attack families
FAMILY_ROWS = [
    ("unknown-attack", ["--attack", "sftt"], ["unknown attack 'sftt'; choose one of:", "prefill", "sft-lora"]),
    ("option-of-another-family", ["--attack", "prefill", "--lr", "1e-4"],
     ["--lr belongs to", "sft-full/sft-lora", "not prefill"]),
    ("prefill-option-on-sft", ["--prefill-tokens", "0,5"], ["--prefill-tokens belongs to prefill, not sft"]),
    ("sweep-on-prefill", ["--attack", "prefill", "--sweep"], ["--sweep belongs to", "not prefill"]),
    ("sft-spelling-contradiction", ["--attack", "sft-lora", "--method", "full"], ["contradicts --method full"]),
    ("prefill-longer-than-generation", ["--attack", "prefill", "--max-new-tokens", "10", "--prefill-tokens", "0,10"],
     ["--prefill-tokens 10 does not fit --max-new-tokens 10"]),
    ("prefill-negative", ["--attack", "prefill", "--prefill-tokens", "-1,4"], ["--prefill-tokens must be >= 0"]),
]


@pytest.mark.parametrize("args,needles", [r[1:] for r in FAMILY_ROWS], ids=[r[0] for r in FAMILY_ROWS])
def test_attack_family_bad_input(tmp_path, monkeypatch, no_model_load, args, needles):
    """One line, exit 2, before any model loads, nothing written."""
    out = tmp_path / "run"
    r = _cli(["attack", "--model", "tiny-random-llama", *args, "--output-dir", str(out)], tmp_path, monkeypatch)
    one_line_error(r, *needles)
    assert not out.exists() and not (tmp_path / "runs").exists()
