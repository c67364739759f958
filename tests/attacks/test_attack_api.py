"""Python API: LoRA, security-vector mode, answer-only loss, sweeps, resume bookkeeping (tiny-random-llama)."""

from __future__ import annotations

import json

import pytest
import torch
from attack_support import TINY

from alignkit.attacks import ATTACKS, AttackConfig, AttackResult, attack, sweep
from alignkit.errors import AlignkitError


def _cfg(tmp_path, **kw) -> AttackConfig:
    return AttackConfig(**{**TINY, "output_dir": str(tmp_path / "run"), **kw})


def test_registry_and_config_reach_the_trainer(tmp_path):
    """Every option has help text, and the config's training options are what the Trainer is given."""
    from alignkit.attacks.sft import SFTFull

    assert {"sft-full", "sft-lora"} <= set(ATTACKS.names())
    for name, field in AttackConfig.model_fields.items():
        assert field.description, name
    seen = {}

    class Stop(Exception):
        pass

    def fake_train(self, resume_from_checkpoint=None):
        seen["args"] = self.args
        raise Stop

    import transformers

    cfg = AttackConfig(lr=3e-5, batch_size=3, weight_decay=0.01, scheduler="linear", warmup_ratio=0.2,
                       optimizer="sgd", max_grad_norm=0.5, seed=7)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformers.Trainer, "train", fake_train)
        from alignkit.models import load_causal_lm

        model, tok = load_causal_lm("tiny-random-llama")
        from alignkit.data import load

        recs = load("harmful-qa", split="train")[:4]
        with pytest.raises(Stop):
            SFTFull(cfg).train(model, tok, recs, callbacks=[], checkpoint_dir=tmp_path, resume_from=None,
                               trainer_box={})
    a = seen["args"]
    assert (a.learning_rate, a.per_device_train_batch_size, a.weight_decay, a.lr_scheduler_type.value,
            a.optim.value, a.max_grad_norm, a.seed) == (3e-5, 3, 0.01, "linear", "sgd", 0.5, 7)


def test_answer_only_labels(tiny_model_path):
    from alignkit.attacks.sft import encode_records
    from alignkit.data import HarmfulQA
    from alignkit.formatting import QACollator, format_prompt
    from alignkit.models import load_tokenizer

    tok = load_tokenizer(tiny_model_path)
    recs = [HarmfulQA(id="a", source="t", question="How do I pick a lock?", answer="Use a tension wrench."),
            HarmfulQA(id="b", source="t", question="Q2 is a much longer question than the first?", answer="A2")]
    items = encode_records(tok, recs, "chat", 128)
    batch = QACollator(tok.pad_token_id)(items)
    for i, r in enumerate(recs):
        n_prompt = len(tok(format_prompt(tok, r.question, "chat"), add_special_tokens=False)["input_ids"])
        labels = batch["labels"][i]
        assert (labels[:n_prompt] == -100).all()  # no loss on the prompt
        real = batch["attention_mask"][i].sum().item()
        assert (labels[real:] == -100).all()  # nor on padding
        assert (labels[n_prompt:real] == batch["input_ids"][i][n_prompt:real]).all()  # loss on every answer token
        assert labels[real - 1].item() == tok.eos_token_id


def test_full_attack_changes_weights_and_writes_run(tmp_path, fake_judge):
    res = attack(_cfg(tmp_path, save_model=True), judge=fake_judge)
    assert [p.step for p in res.curve] == [0, 2, 4]
    AttackResult.model_validate_json((tmp_path / "run" / "results.json").read_text())
    assert res.provenance.judge == "fake@1" and res.num_train_samples == 24
    assert res.final_model_dir and (tmp_path / "run" / "model" / "alignkit.json").exists()
    from alignkit.models import load_causal_lm

    base, _ = load_causal_lm("tiny-random-llama")
    after, _ = load_causal_lm(res.final_model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), after.state_dict().values()))
    # a finished run is reported, not redone
    again = attack(_cfg(tmp_path, save_model=True), judge=fake_judge)
    assert again.runtime_s == res.runtime_s


def test_lora_attack(tmp_path, fake_judge):
    res = attack(_cfg(tmp_path, method="lora", lora_r=4, lora_alpha=8, save_model=True), judge=fake_judge)
    assert res.attack == "sft-lora" and len(res.curve) == 3
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["model_type"] == "llama"  # merged into a plain HF folder
    assert not (tmp_path / "run" / "model" / "adapter_config.json").exists()


def _make_security_vector(path, tiny_model_path):
    from peft import LoraConfig, get_peft_model

    from alignkit.models import load_causal_lm

    model, _ = load_causal_lm(tiny_model_path)
    torch.manual_seed(0)
    pm = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                          init_lora_weights=False, task_type="CAUSAL_LM"))
    pm.save_pretrained(str(path))
    return {k: v.clone() for k, v in pm.state_dict().items() if "lora_" in k}


def _sv_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".security_vector." in n}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_security_vector_frozen_and_removed(tmp_path, fake_judge, tiny_model_path, method, monkeypatch):
    from alignkit.attacks import sft

    sv_dir = tmp_path / "sv"
    _make_security_vector(sv_dir, tiny_model_path)
    seen: dict = {}
    orig_train, orig_eval = sft.SFTAttack.train, sft.SFTAttack.eval_mode

    def spy_train(self, model, *a, **kw):
        seen["before"] = _sv_weights(model)
        seen["trainable_sv"] = [n for n, p in model.named_parameters() if ".security_vector." in n and p.requires_grad]
        seen["n_trainable"] = sum(p.requires_grad for p in model.parameters())
        trainer = orig_train(self, model, *a, **kw)
        seen["after"] = _sv_weights(model)
        seen["trainable_sv_after"] = [n for n, p in model.named_parameters()
                                      if ".security_vector." in n and p.requires_grad]
        seen["active"] = list(model.base_model.active_adapters) if hasattr(model.base_model, "active_adapters") else None
        return trainer

    def spy_eval(self, model):
        cm = orig_eval(self, model)

        class _Ctx:
            def __enter__(s):
                m = cm.__enter__()
                active = getattr(m.base_model, "active_adapters", [])
                seen.setdefault("eval_active", []).append(
                    "disabled" if getattr(m.base_model, "disable_adapters", False) or not _sv_active(m)
                    else list(active))
                return m

            def __exit__(s, *exc):
                return cm.__exit__(*exc)

        return _Ctx()

    monkeypatch.setattr(sft.SFTAttack, "train", spy_train)
    monkeypatch.setattr(sft.SFTAttack, "eval_mode", spy_eval)
    res = attack(_cfg(tmp_path, method=method, security_vector=str(sv_dir), lora_r=4, save_model=True),
                 judge=fake_judge)
    assert len(res.curve) == 3
    assert seen["before"] and not seen["trainable_sv"] and seen["n_trainable"] > 0
    assert not seen["trainable_sv_after"]
    for k, v in seen["before"].items():  # the security vector never moved
        assert torch.equal(v, seen["after"][k]), k
    assert seen["eval_active"] == ["disabled"] * 3  # evaluated without the security vector
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "config.json").exists() and not (model_dir / "adapter_config.json").exists()
    from safetensors.torch import load_file

    assert not any("lora" in k for k in load_file(str(model_dir / "model.safetensors")))


def _sv_active(model) -> bool:
    """True when a security-vector LoRA layer takes part in the forward pass."""
    from peft.tuners.lora import LoraLayer

    for m in model.modules():
        if isinstance(m, LoraLayer) and "security_vector" in m.lora_A:
            return not m.disable_adapters and "security_vector" in m.active_adapters
    return False


def test_security_vector_resume_checkpoints_trainable_only(tmp_path, fake_judge, tiny_model_path):
    sv_dir = tmp_path / "sv"
    _make_security_vector(sv_dir, tiny_model_path)
    attack(_cfg(tmp_path, security_vector=str(sv_dir)), judge=fake_judge)
    ck = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert ck and (ck[-1] / "alignkit_trainable.safetensors").exists()
    from safetensors.torch import load_file

    keys = load_file(str(ck[-1] / "alignkit_trainable.safetensors"))
    assert keys and not any("security_vector" in k for k in keys)


def test_resume_from_checkpoint_in_process(tmp_path, fake_judge):
    """A run folder with a checkpoint and metrics after it: the stale rows are dropped and redone."""
    cfg = _cfg(tmp_path, max_steps=4)
    attack(cfg, judge=fake_judge)
    run = tmp_path / "run"
    (run / "results.json").unlink()
    import shutil

    shutil.rmtree(run / "checkpoints" / "checkpoint-4")
    res = attack(cfg, judge=fake_judge)
    assert res.resumed_from_step == 2 and [p.step for p in res.curve] == [0, 2, 4]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "eval"] == [0, 2, 4]


def test_config_mismatch_and_overwrite(tmp_path, fake_judge):
    attack(_cfg(tmp_path, max_steps=2), judge=fake_judge)
    with pytest.raises(AlignkitError, match="pick a new --output-dir or pass --overwrite"):
        attack(_cfg(tmp_path, max_steps=2, lr=3e-5), judge=fake_judge)
    res = attack(_cfg(tmp_path, max_steps=2, lr=3e-5, overwrite=True), judge=fake_judge)
    assert res.config.lr == 3e-5


def test_sweep_reports_worst_case(tmp_path, fake_judge):
    cfg = _cfg(tmp_path, max_steps=2, eval_every=2, eval_prompts=2, max_new_tokens=4, num_samples=8,
               output_dir=str(tmp_path / "sweep"))
    res = sweep(cfg, lrs=[3e-5, 8e-5], seeds=[0, 1], judge=fake_judge)
    assert len(res.runs) == 4 and (tmp_path / "sweep" / "sweep.json").exists()
    worst = res.worst["max_final_harmfulness"]
    assert worst.final_harmfulness == max(r.final_harmfulness for r in res.runs)
    from alignkit.attacks.sweep import format_table

    assert "worst final harmfulness" in format_table(res)


def test_user_dataset_file(tmp_path, fake_judge):
    f = tmp_path / "harm.jsonl"
    f.write_text("".join(json.dumps({"q": f"question {i}?", "a": f"harmful answer {i}", "cat": "x"}) + "\n"
                         for i in range(12)))
    try:
        from alignkit.data import load_user

        load_user(str(f), columns={"question": "q", "answer": "a", "category": "cat"})
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"alignkit.data.load_user not ready: {exc}")
    res = attack(_cfg(tmp_path, dataset=str(f), question_column="q", answer_column="a", category_column="cat",
                      max_steps=2), judge=fake_judge)
    assert res.num_train_samples == 12


def test_step0_reused_across_attacks_of_one_model(tmp_path, fake_judge, monkeypatch):
    """A second attack on the same model and eval settings copies step 0 instead of judging it again; a
    different eval setting (or security-vector mode) measures it afresh."""
    first = attack(_cfg(tmp_path, output_dir=str(tmp_path / "a")), judge=fake_judge)
    calls = []
    import alignkit.harmfulness as hm

    real = hm.generate_completions

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(hm, "generate_completions", spy)
    second = attack(_cfg(tmp_path, output_dir=str(tmp_path / "b"), lr=3e-5), judge=fake_judge,
                    reuse_step0_from=first.run_dir)
    assert [p.step for p in second.curve] == [0, 2, 4] and len(calls) == 2  # steps 2 and 4 only
    assert second.curve[0].harmfulness_mean == first.curve[0].harmfulness_mean
    assert (tmp_path / "b" / "generations" / "step_0000.jsonl").read_text() == \
        (tmp_path / "a" / "generations" / "step_0000.jsonl").read_text()
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["reused_from"] == str(first.run_dir)
    calls.clear()
    third = attack(_cfg(tmp_path, output_dir=str(tmp_path / "c"), max_new_tokens=6), judge=fake_judge,
                   reuse_step0_from=first.run_dir)
    assert len(calls) == 3 and [p.step for p in third.curve] == [0, 2, 4]  # eval setting differs: measured

    class OtherJudge(type(fake_judge)):
        name = "other"

        def describe(self) -> str:
            return "other@1"

    calls.clear()
    attack(_cfg(tmp_path, output_dir=str(tmp_path / "d")), judge=OtherJudge(), reuse_step0_from=first.run_dir)
    assert len(calls) == 3  # another judge object behind the same config.judge string: step 0 measured again


def test_sweep_function_survives_its_submodule_import():
    """``alignkit.attacks.sweep`` is the function even after ``alignkit.attacks.sweep`` the module was imported
    (a first-time submodule import rebinds the package attribute; a second sweep call then failed)."""
    import importlib

    import alignkit.attacks as attacks

    importlib.import_module("alignkit.attacks.sweep")
    assert callable(attacks.sweep) and attacks.sweep.__module__ == "alignkit.attacks"
