"""The demo's presets are valid configs of the modules they drive (no run needed)."""

import pytest

from alignkit.conditions.demo import HELDOUT, PRESETS, DemoConfig
from alignkit.conditions.evaluate import EvaluateConfig


@pytest.mark.parametrize("name", ["full", "fast"])
def test_presets_build_valid_configs(name):
    P = PRESETS[name]
    cfg = EvaluateConfig(model=["a/b"], base="c/d", eval_prompts=P["eval_prompts"],
                         max_new_tokens=P["max_new_tokens"], heldout_categories=HELDOUT, **P["evaluate"])
    # the full preset attacks at two learning rates; --fast keeps the harsher one
    assert len(cfg.attack_lrs) >= (2 if name == "full" else 1) and max(cfg.attack_lrs) == 8e-5
    from alignkit.defences import RepNoiseConfig, SafetySFTConfig

    rn = RepNoiseConfig(model="x", **P["repnoise"])
    # the search's point that is weakly resistant, stable and trainable (docs/results.md, "RepNoise's stable point")
    assert (rn.lr, rn.alpha, rn.beta, rn.retain_mix) == (1.2e-4, 1.47, 0.075, 1.0)
    align = SafetySFTConfig(model="x", **P["align"])
    assert align.harmless_mix > 0  # refusals alone teach the 135M model to refuse harmless questions too


def test_demo_config_options_are_documented_and_checked():
    for name, field in DemoConfig.model_fields.items():
        assert field.description and not field.is_required(), name
    with pytest.raises(ValueError, match="align_threshold"):
        DemoConfig(align_threshold=1.5)


def test_demo_raw_measurement_context_accepts_the_base_itself(tmp_path):
    """The demo measures the raw model through a base-only Context; evaluate itself rejects --model == --base."""
    from alignkit.conditions.context import Context
    from alignkit.conditions.evaluate import EvaluateConfig
    from alignkit.errors import AlignkitError

    cfg = EvaluateConfig(model=["tiny-random-llama"], base="tiny-random-llama", output_dir=str(tmp_path / "e"))
    with pytest.raises(AlignkitError, match="is the --base model itself"):
        Context(cfg)
    ctx = Context(cfg, base_only=True)
    assert ctx.base.role == "base"


def test_each_preset_has_its_own_default_folder():
    """make demo then make demo-fast: the fast preset must not reuse the full preset's folder (other base)."""
    from alignkit.conditions.demo import DemoConfig

    assert DemoConfig().output_dir == "runs/demo" and DemoConfig(fast=True).output_dir == "runs/demo-fast"
    assert DemoConfig(fast=True, output_dir="x").output_dir == "x"
