"""Bad input to ``alignkit defend``: never delete a user's folder, reject non-finite numbers up front, and never
save a model whose weights became NaN / inf (one-line AlignkitError; the CLI exits 2)."""

from __future__ import annotations

import json

import pytest
from bad_input_support import forbid_model_load, make_training_diverge, one_line_error


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)




@pytest.mark.parametrize("overwrite", [True, False])
def test_defend_never_deletes_a_user_folder(tmp_path, pairs_file, monkeypatch, overwrite):
    """Problem 28: --overwrite on a folder alignkit did not write is refused; the user's file survives."""
    forbid_model_load(monkeypatch)
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "important.txt").write_text("keep me")
    r = _cli(["defend", "--model", "tiny-random-llama", "--dataset", str(pairs_file), "--max-steps", "1",
              "--num-samples", "4", "--batch-size", "2", "--output-dir", str(user)]
             + (["--overwrite"] if overwrite else []), tmp_path, monkeypatch)
    msg = one_line_error(r, "not an alignkit defence folder")
    if overwrite:
        assert "--overwrite only replaces alignkit defence folders" in msg
    assert "pass --overwrite" not in msg  # it would be refused again
    assert (user / "important.txt").read_text() == "keep me"
    assert sorted(p.name for p in user.iterdir() if not p.name.startswith(".")) == ["important.txt"]


def test_is_defence_folder(tmp_path):
    from alignkit.defences.base import is_defence_folder

    d = tmp_path / "d"
    d.mkdir()
    (d / "alignkit.json").write_text(json.dumps({"attack": "sft-full"}))  # an attacked model, not a defence
    assert not is_defence_folder(d)
    (d / "alignkit.json").write_text(json.dumps({"defence": "repnoise", "config": {}}))
    assert is_defence_folder(d)
    e = tmp_path / "e"
    (e / "_run").mkdir(parents=True)
    assert not is_defence_folder(e)
    (e / "_run" / "config.json").write_text("{")
    assert is_defence_folder(e)


@pytest.mark.parametrize("args, flag", [
    (["--defence", "vaccine", "--rho", "inf"], "--rho"),
    (["--defence", "adversarial-loss", "--adv-lambda", "inf"], "--adv-lambda"),
    (["--defence", "repnoise", "--alpha", "nan"], "--alpha"),
    (["--defence", "tar", "--lambda-tr", "-inf"], "--lambda-tr"),
    (["--defence", "gradient-ascent", "--harmless-weight", "nan"], "--harmless-weight"),
    (["--defence", "safety-sft", "--lr", "nan"], "--lr"),
    (["--defence", "repnoise", "--epochs", "inf"], "--epochs"),
    (["--defence", "repnoise", "--weight-decay", "inf"], "--weight-decay"),
    (["--defence", "repnoise", "--max-grad-norm", "inf"], "--max-grad-norm"),
])
def test_defend_rejects_non_finite_numbers(tmp_path, pairs_file, monkeypatch, args, flag):
    """Problem 29: every float option of every defence must be finite, checked before anything loads."""
    forbid_model_load(monkeypatch)
    out = tmp_path / "out"
    r = _cli(["defend", "--model", "tiny-random-llama", "--dataset", str(pairs_file), "--max-steps", "1",
              "--output-dir", str(out), *args], tmp_path, monkeypatch)
    msg = one_line_error(r, flag)
    assert "finite number" in msg
    assert not out.exists() or not any(out.rglob("*.safetensors"))


def test_every_defence_config_rejects_non_finite_floats():
    """The check is central (TrainingOptions' model config), so a new defence's float options get it too."""
    import typing

    from pydantic import ValidationError

    from alignkit.defences import DEFENCES

    for name in DEFENCES.names():
        cls = DEFENCES.get(name).config_class
        for fname, f in cls.model_fields.items():
            ann = f.annotation
            if ann is float or float in typing.get_args(ann):
                with pytest.raises(ValidationError, match="finite number"):
                    cls(**{fname: float("nan")})


def test_diverged_defence_saves_no_model(tmp_path, pairs_file, monkeypatch):
    """Problem 29: weights that became NaN in training are never saved as the defended model."""
    from alignkit.defences import defend
    from alignkit.defences.safety_sft import SafetySFTConfig
    from alignkit.errors import AlignkitError

    make_training_diverge(monkeypatch, float("nan"))
    out = tmp_path / "d"
    cfg = SafetySFTConfig(model="tiny-random-llama", dataset=str(pairs_file), max_steps=1, batch_size=2,
                          max_length=32, save_every=0, output_dir=str(out))
    with pytest.raises(AlignkitError, match=r"training diverged \(non-finite weights") as exc:
        defend(cfg)
    assert "\n" not in str(exc.value) and "--lr" in str(exc.value)
    assert not (out / "alignkit.json").exists() and not list(out.glob("*.safetensors"))


def test_check_finite_weights():
    import torch

    from alignkit.errors import AlignkitError
    from alignkit.training import check_finite_weights, nonfinite_parameter

    m = torch.nn.Linear(2, 2)
    assert nonfinite_parameter(m) is None
    check_finite_weights(m)
    with torch.no_grad():
        m.bias[0] = float("inf")
    assert nonfinite_parameter(m) == "bias"
    with pytest.raises(AlignkitError, match="training diverged"):
        check_finite_weights(m)


@pytest.mark.parametrize("text", ["{", "[1]"])
def test_unreadable_unfinished_run(tmp_path, pairs_file, monkeypatch, text):
    """An unfinished defence run whose _run/config.json is unreadable: one line naming it and --overwrite, which
    then clears it (the folder is alignkit's)."""
    import alignkit.models
    from alignkit.defences import defend
    from alignkit.defences.safety_sft import SafetySFTConfig
    from alignkit.errors import AlignkitError

    out = tmp_path / "d"
    (out / "_run").mkdir(parents=True)
    (out / "_run" / "config.json").write_text(text)
    cfg = SafetySFTConfig(model="tiny-random-llama", dataset=str(pairs_file), max_steps=1, batch_size=2,
                          max_length=32, save_every=0, output_dir=str(out))
    forbid_model_load(monkeypatch)
    with pytest.raises(AlignkitError, match="config.json in .* is unreadable; pass --overwrite"):
        defend(cfg)
    assert (out / "_run" / "config.json").read_text() == text

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop

    monkeypatch.setattr(alignkit.models, "load_causal_lm", stop)
    with pytest.raises(Stop):  # got past the folder checks to loading the model
        defend(cfg.model_copy(update={"overwrite": True}))
