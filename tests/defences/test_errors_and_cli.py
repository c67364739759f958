"""Bad input -> AlignkitError (one line; the CLI exits 2), and ``alignkit defend --defence repnoise`` works."""

from __future__ import annotations

import json

import pytest


def _fake_lm(with_layers: bool):
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 4)

    class Fake(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "fake-arch"})()
            self.model = nn.Module()
            if with_layers:
                self.model.layers = nn.ModuleList([Block()])
            self.head = nn.Linear(4, 10)

        def get_output_embeddings(self):
            return self.head

    return Fake()


@pytest.mark.parametrize("with_layers, needle", [(False, "not a supported decoder-only layout"),
                                                 (True, "no MLP block")])
def test_unsupported_architecture_is_a_clear_error(with_layers, needle):
    from alignkit.defences.arch import find_parts
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match=needle) as exc:
        find_parts(_fake_lm(with_layers))
    assert "fake-arch" in str(exc.value)


@pytest.mark.parametrize("spec, needle", [("0-99", "out of range"), ("a-b", "bad"), ("5", "out of range")])
def test_bad_layer_specs(spec, needle):
    from alignkit.defences.arch import parse_layers
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match=needle):
        parse_layers(spec, 2)
    assert parse_layers("0,-1", 3) == [0, 2] and parse_layers("all", 2) == [0, 1]


def test_bad_config_and_data(tmp_path):
    from alignkit.defences import DefenceConfig, defend
    from alignkit.defences.base import load_pairs
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="unknown defence"):
        defend(DefenceConfig(defence="nope"))
    with pytest.raises(AlignkitError, match="does not exist"):
        load_pairs(DefenceConfig(dataset=str(tmp_path / "missing.jsonl")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "harmful": "h"}) + "\n")
    with pytest.raises(AlignkitError, match="harmless"):
        load_pairs(DefenceConfig(dataset=str(bad)))
    with pytest.raises(AlignkitError, match="unknown dataset"):
        load_pairs(DefenceConfig(dataset="no-such-dataset"))
    with pytest.raises(AlignkitError, match="--alpha"):
        from alignkit.defences import config_for

        config_for(DefenceConfig(defence="repnoise").model_copy(update={"defence": "repnoise"}))  # fine
        from alignkit.defences.cli import _union_config, run_defend

        run_defend(_union_config()(defence="repnoise", alpha=-1.0))


def test_freeze_everything_is_an_error():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from alignkit.defences.repnoise import RepNoiseConfig, freeze
    from alignkit.errors import AlignkitError

    model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                         num_attention_heads=2, intermediate_size=32,
                                                         tie_word_embeddings=True))
    model.model.norm.weight.requires_grad_(False)
    with pytest.raises(AlignkitError, match="nothing left"):
        freeze(model, RepNoiseConfig(freeze_layers="0-1", freeze_embeddings=True))


def _cli(args, tmp_path, monkeypatch):
    """Run the real typer app in-process (the subprocess path is covered by the accelerate tests)."""
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


def test_cli_defend_repnoise_and_errors(tmp_path, pairs_file, monkeypatch):
    from alignkit.errors import AlignkitError

    out = tmp_path / "rn"
    r = _cli(["defend", "--defence", "repnoise", "--model", "tiny-random-llama", "--dataset", str(pairs_file),
              "--max-steps", "1", "--batch-size", "2", "--max-length", "40", "--beta", "0.01",
              "--noise-layers", "0", "--no-logit-lens", "--output-dir", str(out)], tmp_path, monkeypatch)
    assert r.exit_code == 0, (r.output[-2000:], r.exception)
    assert r.stdout.strip().splitlines() == [str(out)]  # the result alone on stdout, progress on stderr
    card = json.loads((out / "alignkit.json").read_text())
    assert card["defence"] == "repnoise" and card["config"]["beta"] == 0.01 and card["config"]["noise_layers"] == "0"
    assert card["config"]["logit_lens"] is False
    # an option of another defence, an unknown defence, a bad value: AlignkitError (main() prints it, exit 2)
    for args, needle in ((["--defence", "repnoise", "--rho", "1"], "--rho"),
                         (["--defence", "nope"], "unknown defence"),
                         (["--defence", "vaccine", "--lr", "-3"], "--lr")):
        r = _cli(["defend", "--model", "tiny-random-llama", "--dataset", str(pairs_file), *args], tmp_path,
                 monkeypatch)
        assert isinstance(r.exception, AlignkitError), (args, r.output[-500:], r.exception)
        assert needle in str(r.exception) and "\n" not in str(r.exception)


def test_card_after_resume_reports_the_whole_runs_loss(tmp_path, pairs_file, monkeypatch):
    """Killed after the last checkpoint, before saving: the resumed run trains no step, yet its card reports the
    loss of the whole run (the Trainer's own train_loss would be 0.0), and names the base by its alias."""
    from alignkit.defences import defend
    from alignkit.defences.base import Defence
    from alignkit.defences.safety_sft import SafetySFTConfig

    cfg = SafetySFTConfig(model="tiny-random-llama", dataset=str(pairs_file), max_steps=3, batch_size=2,
                          max_length=40, save_every=1, output_dir=str(tmp_path / "d"))
    seen = {}
    real_save = Defence.save

    def killed(self, config, trainer, model, tok, out, card):
        seen["card"] = card
        raise KeyboardInterrupt

    monkeypatch.setattr(Defence, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        defend(cfg)
    assert (tmp_path / "d" / "_run" / "checkpoints" / "checkpoint-3").is_dir()
    monkeypatch.setattr(Defence, "save", real_save)
    out = defend(cfg)
    card = json.loads((out / "alignkit.json").read_text())
    assert card["resumed_from_step"] == 3 and card["steps"] == 3
    assert card["train_loss"] == pytest.approx(seen["card"]["train_loss"]) and card["train_loss"] > 0.1
    assert card["base_model"] == "tiny-random-llama"
    import torch
    from transformers import AutoModelForCausalLM

    from alignkit.models import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama")).state_dict()
    trained = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert any(not torch.equal(base[k], trained[k]) for k in base)  # the three steps changed the weights
    assert 'base_model: "tiny-random-llama"' in (out / "README.md").read_text().split("---")[1]


def test_whole_run_loss_weights_by_steps():
    from alignkit.defences.base import whole_run_loss

    assert whole_run_loss([]) is None
    assert whole_run_loss([{"step": 10, "loss": 1.0}, {"step": 20, "loss": 3.0}]) == pytest.approx(2.0)
    assert whole_run_loss([{"step": 2, "loss": 1.0}, {"step": 10, "loss": 3.0}]) == pytest.approx((2 + 24) / 10)
