"""Training runs: hooks registered once and removed, pairing survives shuffling, every defence trains a step
and saves a plain, reloadable HF folder with a model card; resume after a crash."""

from __future__ import annotations

import json

import pytest

FAST = dict(model="tiny-random-llama", max_steps=1, batch_size=2, max_length=40, save_every=100)


def test_hooks_registered_once_and_removed(tiny_model_path, records, tmp_path, monkeypatch):
    from alignkit.defences import repnoise
    from alignkit.defences.base import PairDataset
    from alignkit.defences.repnoise import RepNoiseConfig, make_repnoise_trainer
    from alignkit.models import load_causal_lm
    from alignkit.training import training_arguments

    model, tok = load_causal_lm(tiny_model_path)
    cfg = RepNoiseConfig(**FAST)
    args = training_arguments(tmp_path / "ck", lr=1e-4, batch_size=2, max_steps=2, save_every=None)
    trainer = make_repnoise_trainer(cfg, model, tok, records[:6], args)
    seen = []
    orig = repnoise.repnoise_loss

    def spy(model_, batch, hooks, config, seed):
        seen.append((id(hooks), hooks.registrations, hooks.num_hooks,
                     sum(len(m._forward_hooks) for m in model.modules())))
        return orig(model_, batch, hooks, config, seed)

    monkeypatch.setattr(repnoise, "repnoise_loss", spy)
    trainer.train()
    assert len(seen) == 2
    assert len({s[0] for s in seen}) == 1 and all(s[1] == 1 for s in seen)  # one registration for the run
    n_layers = model.config.num_hidden_layers
    # MLP hooks (L) + layer-0 pre-hook + layer hooks (L-1) + norm + LM head; never more between steps
    assert seen[0][2] == n_layers + 1 + (n_layers - 1) + 2
    assert len({s[3] for s in seen}) == 1
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0  # removed
    assert isinstance(PairDataset(tok, records[:2], "chat", 40)[0]["harmful_input_ids"], list)


def test_pairing_survives_shuffling(tiny, records, tmp_path):
    """The Trainer's shuffled batches keep each harmful sequence next to the harmless one of the same question."""
    from alignkit.defences.repnoise import RepNoiseConfig, make_repnoise_trainer
    from alignkit.training import training_arguments

    from alignkit.data import PairedQA

    model, tok = tiny
    recs = [PairedQA(id=f"p{i}", source="test", question=f"Question {i}: how would someone do bad thing {i}?",
                     harmful=f"Harmful answer {i}: step one, step two.", harmless=f"Refusal {i}: I won't help.",
                     category="test") for i in range(8)]
    args = training_arguments(tmp_path / "ck", lr=1e-4, batch_size=3, max_steps=1, seed=3)
    trainer = make_repnoise_trainer(RepNoiseConfig(**FAST), model, tok, recs, args)
    order = []
    for b in trainer.get_train_dataloader():
        for i in range(b["harmful_input_ids"].size(0)):
            h_lab, s_lab = b["harmful_labels"][i], b["harmless_labels"][i]
            h_start = int((h_lab != -100).nonzero()[0])
            s_start = int((s_lab != -100).nonzero()[0])
            assert h_start == s_start
            assert b["harmful_input_ids"][i, :h_start].tolist() == b["harmless_input_ids"][i, :s_start].tolist()
            prompt = tok.decode(b["harmful_input_ids"][i, :h_start])
            h_text = tok.decode(b["harmful_input_ids"][i][h_lab != -100]).strip()
            s_text = tok.decode(b["harmless_input_ids"][i][s_lab != -100]).strip()
            i_h, i_s = h_text.split(":")[0].split()[-1], s_text.split(":")[0].split()[-1]
            assert i_h == i_s and f"Question {i_h}:" in prompt  # harmful and harmless of the same question
            r = recs[int(i_h)]
            # the difference mask starts at the first answer token and covers no shared prefix
            assert int(b["diff_mask"][i, :h_start].sum()) == 0
            order.append(r.id)
    assert sorted(order) == sorted(r.id for r in recs)
    assert order != [r.id for r in recs]  # really shuffled


@pytest.mark.parametrize("name", ["repnoise", "adversarial-loss", "gradient-ascent", "safety-sft",
                                  "security-vectors", "vaccine"])
def test_each_defence_trains_and_saves_loadable_model(name, tmp_path, records, tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM

    from alignkit import __version__
    from alignkit.defences import DefenceConfig, defend

    # warmup 0: with the default 10% warmup a 1-step run trains at lr 0 and changes nothing
    extra = {"harmless_weight": 0.5, "warmup_ratio": 0.0} if name == "gradient-ascent" else {"warmup_ratio": 0.0}
    from alignkit.defences import DEFENCES

    cfg = DEFENCES.get(name).config_class(defence=name, output_dir=str(tmp_path / name), **FAST, **extra)
    out = defend(cfg, records=records[:4])
    assert out == tmp_path / name
    assert (out / "model.safetensors").exists() and not (out / "_run").exists()
    card = json.loads((out / "alignkit.json").read_text())
    assert card["defence"] == name and card["alignkit_version"] == __version__
    assert card["config"]["defence"] == name and card["data"]["num_pairs"] == 4 and card["steps"] == 1
    assert name in (out / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(out)  # plain HF folder: no custom code
    assert not any("lora" in n for n, _ in model.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    if name == "security-vectors":  # the base stays frozen; the trained adapter is checked below
        assert changed == []
    else:  # one training step moved the saved weights away from the undefended model's
        assert changed, f"{name}: saved weights equal the undefended model's"
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()
    if name == "security-vectors":
        from alignkit.defences.security_vectors import attach_security_vector, detach_security_vector, \
            security_vector_path

        sv = security_vector_path(out)
        assert sv is not None and (sv / "adapter_config.json").exists()
        pm = attach_security_vector(model, sv)
        lora = [p for n, p in pm.named_parameters() if "lora_" in n]
        assert lora and not any(p.requires_grad for p in lora)
        assert any(p.requires_grad for n, p in pm.named_parameters() if "lora_" not in n)
        assert any(p.abs().sum() > 0 for n, p in pm.named_parameters() if "lora_B" in n)  # trained (B starts at 0)
        base = detach_security_vector(pm)
        assert not any("lora" in n for n, _ in base.named_parameters())
    # re-running the finished config returns the folder without training
    assert defend(cfg, records=records[:4]) == out


def test_generic_defence_config_dispatches(tmp_path, records):
    from alignkit.defences import DefenceConfig, RepNoiseConfig, config_for

    c = config_for(DefenceConfig(defence="repnoise", model="tiny-random-llama", lr=1e-3))
    assert isinstance(c, RepNoiseConfig) and c.lr == 1e-3 and c.alpha == 1.0 and c.beta == 0.001
    from alignkit.defences import SecurityVectorsConfig

    assert SecurityVectorsConfig().lr == 1e-4


def test_resume_after_crash(tmp_path, records, monkeypatch, capsys):
    """A run killed after its last checkpoint resumes from it instead of starting over."""
    from alignkit.defences import defend
    from alignkit.defences.base import Defence
    from alignkit.defences.adversarial_loss import AdversarialLossConfig

    cfg = AdversarialLossConfig(output_dir=str(tmp_path / "adv"), **{**FAST, "max_steps": 2, "save_every": 1})

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Defence, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        defend(cfg, records=records[:4])
    assert (tmp_path / "adv" / "_run" / "checkpoints" / "checkpoint-2").exists()
    monkeypatch.undo()
    capsys.readouterr()
    out = defend(cfg, records=records[:4])
    assert "resuming from step 2" in capsys.readouterr().err
    assert json.loads((out / "alignkit.json").read_text())["steps"] == 2


def test_safety_sft_harmless_mix_and_no_checkpoints(tiny_model_path, tmp_path):
    """harmless_mix adds harmless (instruction, answer) rows beside the refusals; save_every=0 saves no
    Trainer checkpoint."""
    from alignkit.data import PairedQA
    from alignkit.defences import SafetySFTConfig, defend
    from alignkit.defences.safety_sft import mix_harmless

    pairs = [(f"harmful question {i}?", f"I can't help with that ({i}).") for i in range(10)]
    none = mix_harmless(SafetySFTConfig(), pairs)
    assert none == pairs
    mixed = mix_harmless(SafetySFTConfig(harmless_mix=1.0), pairs)
    assert len(mixed) == 20 and set(pairs) <= set(mixed)
    extra = [p for p in mixed if p not in pairs]
    assert all(p[0] and p[1] and "can't help" not in p[1] for p in extra)
    assert mixed == mix_harmless(SafetySFTConfig(harmless_mix=1.0), pairs)  # deterministic
    recs = [PairedQA(id=f"p{i}", source="t", question=q, harmful="x", harmless=a, category="t")
            for i, (q, a) in enumerate(pairs)]
    out = defend(SafetySFTConfig(**{**FAST, "save_every": 0, "max_steps": 2}, harmless_mix=0.5,
                                 output_dir=str(tmp_path / "m")), records=recs)
    assert (out / "config.json").exists() and not list((tmp_path / "m").rglob("checkpoint-*"))
