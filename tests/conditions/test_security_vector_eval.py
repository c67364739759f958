"""`alignkit evaluate` attacks a security-vectors model the way the defence is meant to be attacked: with its
adapter (``<folder>/security_vector``) active and frozen during the attack (the defender controls the
fine-tuning API), and its cache key follows the adapter's weights."""

import shutil

from alignkit.conditions import EvaluateConfig


def _folders(tmp_path):
    from alignkit.models import resolve_model

    tiny = resolve_model("tiny-random-llama")
    sv_model = shutil.copytree(tiny, tmp_path / "sv")
    adapter = sv_model / "security_vector"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"x" * 10)
    plain = shutil.copytree(tiny, tmp_path / "plain")
    return sv_model, adapter, plain


def test_security_vector_model_is_attacked_with_its_adapter(tmp_path):
    from alignkit.conditions.context import Context
    from alignkit.conditions.schema import AttackSpec

    sv_model, adapter, plain = _folders(tmp_path)
    cfg = EvaluateConfig(model=[str(sv_model), str(plain)], label=["sv", "plain"], base="smollm2-135m-instruct",
                         output_dir=str(tmp_path / "ev"), judge="refusal-keywords")
    ctx = Context(cfg)
    spec = AttackSpec(lr=1e-4, num_samples=8, max_steps=2)
    sv_entry, plain_entry = ctx.defended
    assert ctx.attack_config(sv_entry, spec, "resistance").security_vector == str(adapter)
    assert ctx.attack_config(plain_entry, spec, "resistance").security_vector is None
    assert ctx.attack_config(ctx.base, spec, "resistance").security_vector is None

    key = ctx.attack_key(sv_entry, spec, group="resistance")
    assert key["config"]["security_vector"] and str(adapter) not in str(key)  # weights, not the folder name
    assert ctx.attack_key(plain_entry, spec, group="resistance")["config"]["security_vector"] is None
    # a retrained adapter (other weights) is a different attack: the cached result is not reused
    (adapter / "adapter_model.safetensors").write_bytes(b"y" * 20)
    assert Context(cfg).attack_key(sv_entry, spec, group="resistance") != key
