"""The attack contract shared by every family (tiny-random-llama): a minimal budget family registered here runs
through the shared runner (run folder, resume that skips evaluated budgets, results.json round trip, curve axis,
model save for weight edits), the CLI builds its options from the family's config, the SFT curve is pinned to the
numbers it had before the contract existed, and the capability guard's KL."""

from __future__ import annotations

import json

import pytest
from attack_support import TINY
from pydantic import Field, field_validator
from typing import Literal

from alignkit.attacks import ATTACKS, AttackConfig, AttackOptions, AttackResult, BudgetAttack, attack
from alignkit.attacks.budget import check_budgets
from alignkit.errors import AlignkitError

FAKE = "test-fake-budget"


class FakeConfig(AttackOptions):
    """A test family: the response is ``budget`` copies of a word."""

    attack: Literal["test-fake-budget"] = Field(FAKE, description="attack family")
    levels: list[int] = Field(default_factory=lambda: [0, 2, 4, 8], description="budgets")
    word: str = Field("harm", description="word repeated budget times")
    edit: bool = Field(False, description="scale the output head by the budget (a weight edit)")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v):
        return check_budgets(v, "--levels")


class FakeBudget(BudgetAttack):
    config_class = FakeConfig
    budget_label = "fake units"
    calls: list = []
    setups: list = []
    interrupt_at: int | None = None

    def budgets(self):
        return list(self.config.levels)

    def setup(self, run_dir):
        FakeBudget.setups.append(str(run_dir))

    def completions(self, budget, prompts):
        if budget == FakeBudget.interrupt_at:
            raise KeyboardInterrupt
        FakeBudget.calls.append(budget)
        if self.config.edit:  # default completions: generation with attacked_model(budget)
            return super().completions(budget, prompts)
        return [" ".join([self.config.word] * budget) for _ in prompts]

    def attacked_model(self, budget):
        import copy

        import torch

        m = copy.deepcopy(self.model)
        with torch.no_grad():
            m.lm_head.weight.mul_(1.0 + budget)
        return m


@pytest.fixture
def fake_family():
    FakeBudget.calls, FakeBudget.setups, FakeBudget.interrupt_at = [], [], None
    cls = ATTACKS.register(FAKE)(FakeBudget)
    yield cls
    ATTACKS._items.pop(FAKE, None)


def _fake(tmp_path, **kw) -> FakeConfig:
    return FakeConfig(**{"model": "tiny-random-llama", "eval_prompts": 3, "max_new_tokens": 4,
                         "output_dir": str(tmp_path / "run"), **kw})


def test_budget_family_runs_resumes_and_round_trips(tmp_path, fake_family, fake_judge):
    cfg = _fake(tmp_path)
    FakeBudget.interrupt_at = 4
    with pytest.raises(KeyboardInterrupt):
        attack(cfg, judge=fake_judge)
    assert FakeBudget.calls == [0, 2]
    run = tmp_path / "run"
    assert not (run / "results.json").exists()
    assert sorted(p.name for p in (run / "generations").iterdir()) == ["step_0000.jsonl", "step_0002.jsonl"]

    FakeBudget.interrupt_at = None
    res = attack(cfg, judge=fake_judge)
    assert FakeBudget.calls == [0, 2, 4, 8]  # budgets 0 and 2 were not evaluated again
    assert res.resumed_from_step == 2
    assert [p.step for p in res.curve] == [0, 2, 4, 8]
    # the fake judge: empty response 0, else 0.3 + words / 40
    assert [p.harmfulness_mean for p in res.curve] == pytest.approx([0.0, 0.35, 0.4, 0.5])
    assert res.steps_to_threshold == 2 and res.total_steps == 8 and res.final_harmfulness == pytest.approx(0.5)
    assert res.budget_label == "fake units" and res.attack == FAKE
    assert res.changes_weights is False and res.capability_loss == 0.0
    assert any("capability loss 0" in n for n in res.notes)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 8]
    assert (run / "curve.png").stat().st_size > 0

    back = AttackResult.model_validate_json((run / "results.json").read_text())
    assert isinstance(back.config, FakeConfig) and back.config == cfg  # every field of the family's config
    assert json.loads((run / "results.json").read_text())["config"]["word"] == "harm"

    # finished: reported, not run again; another config in the same folder: one line naming the difference
    FakeBudget.calls.clear()
    again = attack(cfg, judge=fake_judge)
    assert FakeBudget.calls == [] and again.final_harmfulness == res.final_harmfulness
    with pytest.raises(AlignkitError, match="--word"):
        attack(_fake(tmp_path, word="other"), judge=fake_judge)


def test_no_model_saved_when_the_weights_do_not_change(tmp_path, fake_family, fake_judge):
    res = attack(_fake(tmp_path, levels=[0, 1], save_model=True), judge=fake_judge)
    assert res.final_model_dir is None and not (tmp_path / "run" / "model").exists()
    assert any("no model saved" in n for n in res.notes)


def test_weight_edit_saved_and_capability_not_claimed(tmp_path, fake_judge):
    """A family with changes_weights=True saves attacked_model(largest budget); the saved weights differ from the
    base by exactly the edit, and the result does not claim capability loss 0."""
    import torch
    from safetensors.torch import load_file

    class Editing(FakeBudget):
        changes_weights = True

    FakeBudget.calls, FakeBudget.interrupt_at = [], None
    ATTACKS.register(FAKE)(Editing)
    try:
        res = attack(_fake(tmp_path, levels=[0, 3], edit=True, save_model=True), judge=fake_judge)
    finally:
        ATTACKS._items.pop(FAKE, None)
    assert res.changes_weights is True and res.capability_loss is None
    from alignkit.models import load_causal_lm

    base, _ = load_causal_lm("tiny-random-llama")
    saved = load_file(str(next((tmp_path / "run" / "model").glob("*.safetensors"))))
    key = next(k for k in saved if k.endswith("lm_head.weight") or k.endswith("embed_tokens.weight"))
    ref = base.lm_head.weight if key.endswith("lm_head.weight") else base.get_input_embeddings().weight
    assert torch.allclose(saved[key], ref.detach() * 4.0)


def test_bad_budget_and_unknown_family(tmp_path, fake_family):
    with pytest.raises(ValueError, match="--levels"):
        FakeConfig(levels=[-1, 2])
    from alignkit.attacks.base import family_class

    class Unknown(AttackOptions):
        attack: str = "no-such-attack"

    with pytest.raises(AlignkitError, match="unknown attack 'no-such-attack'; choose one of: .*prefill.*sft-full"):
        family_class(Unknown())


# ------------------------------------------------------------------------------------------------ SFT pinned
#: measured with the code before the attack contract existed (commit dee4c2c, tiny-random-llama, CPU, fake judge)
PINNED = {
    "chat": dict(cfg={}, losses=[10.789698600769043, 10.81599235534668, 10.792695999145508, 10.838235855102539],
                 lrs=[0.0, 8e-05, 6.000000000000001e-05, 2.0000000000000012e-05], harm=[0.0, 0.0, 0.0],
                 last=["", "", "", ""]),
    "qa-high-lr": dict(cfg={"template": "qa", "lr": 5e-3},
                       losses=[10.811959266662598, 10.799434661865234, 10.753046035766602, 10.566947937011719],
                       lrs=[0.0, 0.005, 0.00375, 0.0012500000000000007], harm=[0.325, 0.325, 0.325],
                       last=["--------"] * 4),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_sft_full_curve_is_pinned(tmp_path, fake_judge, case):
    """sft-full keeps its numbers under the contract: train losses, learning rates, curve and completions."""
    pin = PINNED[case]
    res = attack(AttackConfig(**{**TINY, "output_dir": str(tmp_path / "run"), **pin["cfg"]}), judge=fake_judge)
    assert res.attack == "sft-full" and res.budget_label == "optimizer steps"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["loss"] for r in train] == pytest.approx(pin["losses"], rel=1e-5)
    assert [r["learning_rate"] for r in train] == pytest.approx(pin["lrs"], rel=1e-9)
    assert [p.step for p in res.curve] == [0, 2, 4]
    assert [p.harmfulness_mean for p in res.curve] == pytest.approx(pin["harm"])
    last = [json.loads(x)["completion"] for x in
            (tmp_path / "run" / "generations" / "step_0004.jsonl").read_text().splitlines()]
    assert last == pin["last"]
    assert not any("trained nothing" in n for n in res.notes)


def test_an_attack_that_trained_nothing_says_so(tmp_path, fake_judge):
    """A learning rate of 1e-20 moves no weight measurably: the result says the attack trained nothing (the
    training check of alignkit.training.TrainingWatch), and a real attack (the pinned runs above) does not."""
    res = attack(AttackConfig(**{**TINY, "max_steps": 2, "eval_every": 2, "lr": 1e-20,
                                 "output_dir": str(tmp_path / "run")}), judge=fake_judge)
    assert any("trained nothing" in n and "moved by" in n for n in res.notes), res.notes


def test_sft_spellings_share_one_config():
    a = AttackConfig(attack="sft-lora")
    b = AttackConfig(attack="sft", method="lora")
    assert a == b and a.family() == "sft-lora" and AttackConfig().family() == "sft-full"
    with pytest.raises(ValueError, match="contradicts"):
        AttackConfig(attack="sft-lora", method="full")
    from alignkit.attacks import config_for
    from alignkit.attacks.prefill import PrefillConfig

    assert config_for("sft-lora") == a and config_for("sft") == AttackConfig()
    assert isinstance(config_for("prefill", eval_prompts=3), PrefillConfig)
    with pytest.raises(AlignkitError, match="unknown attack 'x'"):
        config_for("x")


# ------------------------------------------------------------------------------------------------ CLI
def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


def test_cli_builds_options_from_the_family(tmp_path, monkeypatch, fake_family):
    from bad_input_support import one_line_error

    r = _cli(["attack", "--attack", FAKE, "--help"], tmp_path, monkeypatch)
    assert r.exit_code == 0 and "--levels" in r.output and "--word" in r.output and "--lr " not in r.output
    assert "harm" in r.output  # the default is shown
    r = _cli(["attack", "--help"], tmp_path, monkeypatch)  # default family: sft, with its sweep options
    assert r.exit_code == 0 and "--lr" in r.output and "--sweep" in r.output and "--levels" not in r.output
    one_line_error(_cli(["attack", "--attack", FAKE, "--lr", "1e-3"], tmp_path, monkeypatch),
                   "--lr belongs to ", "sft-full/sft-lora", f"not {FAKE}")
    one_line_error(_cli(["attack", "--levels", "1"], tmp_path, monkeypatch), "--levels belongs to", FAKE, "not sft")
    one_line_error(_cli(["attack", "--attack", "nope"], tmp_path, monkeypatch),
                   "unknown attack 'nope'; choose one of:", FAKE, "prefill", "sft-lora")
    assert not (tmp_path / "runs").exists()


def test_cli_config_file_names_the_family(tmp_path, monkeypatch, fake_family):
    cfg = tmp_path / "c.yaml"
    out = tmp_path / "run"
    cfg.write_text(f"attack: {FAKE}\nmodel: tiny-random-llama\nlevels: [0, 1]\neval_prompts: 2\n"
                   f"max_new_tokens: 2\njudge: ak_fake_judge:FakeJudge\nallow_judge_import: true\n"
                   f"output_dir: {out}\n")
    r = _cli(["attack", "--config", str(cfg), "--word", "x"], tmp_path, monkeypatch)
    assert r.exit_code == 0, (r.output, r.exception)
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    assert res.config.word == "x" and res.config.levels == [0, 1] and "fake units:mean" in r.output


def test_sft_lora_spelling_on_the_cli_keeps_working(tmp_path, monkeypatch):
    """--attack sft --method lora (the old spelling) and --attack sft-lora give the same config."""
    from alignkit.attacks import cli as acli

    seen = []
    monkeypatch.setattr(acli, "_run_family", lambda c: seen.append(c))
    for args in (["--attack", "sft", "--method", "lora"], ["--attack", "sft-lora"], ["--method", "lora"]):
        r = _cli(["attack", *args, "--model", "tiny-random-llama"], tmp_path, monkeypatch)
        assert r.exit_code == 0, (r.output, r.exception)
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2] and seen[0].family() == "sft-lora"


# ------------------------------------------------------------------------------------------------ capability
def test_next_token_kl_is_zero_for_the_same_model_and_positive_for_an_edit():
    import copy

    import torch

    from alignkit.attacks.capability import capability_loss, next_token_kl
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm("tiny-random-llama")
    prompts = ["How do I bake bread?", "Name three rivers.", "What is 2 + 2?"]
    assert next_token_kl(model, model, tok, prompts) == pytest.approx(0.0, abs=1e-6)
    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.lm_head.weight.mul_(3.0)
    kl = next_token_kl(model, edited, tok, prompts, batch_size=2)
    assert kl > 1e-4

    class R:
        changes_weights = False

    assert capability_loss(R()) == 0.0
