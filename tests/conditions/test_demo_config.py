"""The demo's presets are valid configs of the modules they drive (no run needed)."""

import pytest

from alignkit.conditions.demo import HELDOUT, PRESETS, DemoConfig
from alignkit.conditions.evaluate import EvaluateConfig


@pytest.mark.parametrize("name", ["full", "fast"])
def test_presets_build_valid_configs(name):
    P = PRESETS[name]
    cfg = EvaluateConfig(model=["a/b"], base="c/d", eval_prompts=P["eval_prompts"],
                         max_new_tokens=P["max_new_tokens"], heldout_categories=HELDOUT, **P["evaluate"])
    assert len(cfg.attack_lrs) >= 2  # base and defended are attacked at two or more learning rates
    from alignkit.defences import DefenceConfig, RepNoiseConfig

    rn = RepNoiseConfig(model="x", **P["repnoise"])
    assert (rn.lr, rn.alpha, rn.beta) == (1e-3, 1.0, 0.25)  # the documented small-model setting
    DefenceConfig(defence="safety-sft", model="x", **P["align"])


def test_demo_config_defaults():
    c = DemoConfig()
    assert c.output_dir == "runs/demo" and not c.fast and c.model == "smollm2-135m-instruct"
