"""``alignkit evaluate`` mistakes found before any stage runs: nothing measured, no config.json, no stage file."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alignkit.conditions.evaluate import EvaluateConfig, evaluate
from alignkit.errors import AlignkitError


@pytest.mark.parametrize("conditions", [[], [""], [" ", ""]])
def test_no_condition_is_refused(conditions):
    with pytest.raises(ValidationError, match=r"give at least one condition \(resistance, stability, "
                                              r"generalization, trainability, depth\)"):
        EvaluateConfig(model=["m"], base="b", conditions=conditions)


@pytest.mark.parametrize("option, fragment", [
    ({"judge": "nope"}, "--judge: unknown judge 'nope'"),
    ({"eval_dataset": "nope"}, "--eval-dataset: unknown evaluation dataset 'nope'"),
    ({"cross_domain_data": "/nonexist"}, "--cross-domain-data: dataset file '/nonexist' does not exist"),
    ({"cross_domain_data": "nosuch"}, "--cross-domain-data: unknown dataset 'nosuch'"),
])
def test_names_checked_before_any_stage(option, fragment, tmp_path, tiny_model_path, monkeypatch):
    from alignkit.conditions import registry

    ran = []
    for name in registry.ORDER:  # any stage that starts would be recorded here
        monkeypatch.setitem(registry.CONDITIONS._items, name, lambda ctx, name=name: ran.append(name))
    out = tmp_path / "e"
    cfg = EvaluateConfig(model=[tiny_model_path], base="smollm2-135m-instruct", output_dir=str(out), **option)
    with pytest.raises(AlignkitError) as exc:
        evaluate(cfg)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)
    assert not ran
    assert not (out / "config.json").exists() and not list(out.rglob("*.json"))


# ------------------------------------------------------------------ options that do not apply (issue 28, point 3)
def _cli(args, capsys):
    from alignkit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    return code, *capsys.readouterr()


EV = ["evaluate", "--model", "tiny-random-llama", "--base", "smollm2-135m-instruct", "--judge", "refusal-keywords"]


@pytest.mark.parametrize("args, fragments", [
    (["--lm-eval-limit", "5"], ["--lm-eval-limit applies only with --lm-eval-tasks"]),
    (["--lm-eval-tasks", "arc_easy", "--conditions", "resistance"],
     ["--lm-eval-tasks applies only to the stability condition", "add stability"]),
    (["--trainability-attack", "--conditions", "resistance,stability"],
     ["--trainability-attack applies only to the trainability condition", "--conditions resistance,stability"]),
    (["--cross-domain-data", "none", "--conditions", "resistance"],
     ["--cross-domain-data applies only to the generalization condition"]),
    (["--heldout-categories", "violence", "--conditions", "trainability"],
     ["--heldout-categories applies only to the generalization condition"]),
    (["--no-generalization-base", "--conditions", "depth"],
     ["--generalization-base applies only to the generalization condition"]),
    (["--model", "tiny-random-llama"], ["model 'tiny-random-llama' is given twice"]),
    (["--model", "x", "--label", "a", "--label", "a"], ["label 'a' is given twice"]),
    (["--max-ppl-ratio", "inf"], ["--max-ppl-ratio", "finite number"]),
    (["--max-ppl-ratio", "nan"], ["--max-ppl-ratio", "finite number"]),
    (["--ppl-tolerance", "inf"], ["--ppl-tolerance", "finite number"]),
    (["--max-repetition", "1"], ["--max-repetition", "less than 1"]),
    (["--attacks", "prefill,nope"], ["unknown attack 'nope' in --attacks", "registered attack families: sft-full, "
                                     "sft-lora, prefill"]),
    (["--attacks", "prefill", "--attack-lrs", "1e-4", "--conditions", "resistance"],
     ["--attack-lrs sets the SFT sweep, which --attacks replaces in resistance", "drop --attack-lrs"]),
    (["--attacks", "sft-full", "--attack-steps", "5", "--conditions", "resistance,stability"],
     ["--attack-steps sets the SFT sweep"]),
    (["--attack-budget", "quick"], ["--attack-budget applies only with --attacks"]),
    (["--attacks", "quick", "--conditions", "stability"], ["--attacks applies only to the resistance condition"]),
    (["--attacks", "prefill", "--max-new-tokens", "8"], ["--attacks: attack prefill:", "--prefill-tokens 40 does "
                                                         "not fit --max-new-tokens 8"]),
], ids=["lm-eval-limit-without-tasks", "lm-eval-tasks-without-stability", "trainability-attack-without-condition",
        "cross-domain-without-generalization", "heldout-without-generalization", "generalization-base-without",
        "same-model-twice", "same-label-twice", "max-ppl-ratio-inf", "max-ppl-ratio-nan", "ppl-tolerance-inf",
        "max-repetition-1-disables-the-flag", "attacks-unknown-family", "attacks-with-sweep-lrs",
        "attacks-with-sweep-steps", "attack-budget-without-attacks", "attacks-without-resistance",
        "attacks-budget-refused-by-a-family"])
def test_options_that_do_not_apply_are_refused(args, fragments, tmp_path, capsys):
    """One line naming the option and what it needs, exit 2, nothing written (not even the run folder)."""
    out = tmp_path / "e"
    code, _, err = _cli([*EV, *args, "--output-dir", out], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert all(f in lines[0] for f in fragments), lines[0]
    assert not out.exists()


def test_the_same_model_under_two_spellings_is_refused(tmp_path, tiny_model_path):
    """Two --model values that resolve to one folder (an alias and its folder): refused before any stage."""
    from alignkit.conditions.context import Context

    cfg = EvaluateConfig(model=["tiny-random-llama", tiny_model_path + "/"], base="smollm2-135m-instruct",
                         output_dir=str(tmp_path / "e"), judge="refusal-keywords")
    with pytest.raises(AlignkitError, match=r"--model .* and --model 'tiny-random-llama' are the same model"):
        Context(cfg)
    assert not list((tmp_path / "e").rglob("*.json"))


def test_defaults_and_full_configs_stay_accepted():
    """The checks read values, not which fields were given: a saved config with every field at its default (or the
    demo's preset bundle) for fewer conditions is accepted."""
    full = EvaluateConfig(model=["a"], base="b").model_dump()
    again = EvaluateConfig(**{**full, "conditions": ["resistance"]})
    assert again.conditions == ["resistance"] and again.cross_domain_data == "auto"
    EvaluateConfig(model=["a"], base="b", conditions=["resistance"], train_steps=2, stability_texts=8,
                   depth_pairs=6, generalization_samples=8)  # budget options: not refused
    # with --attacks, the sweep's options still shape the generalization attacks (the demo's preset bundle)
    EvaluateConfig(model=["a"], base="b", attacks=["quick"], attack_lrs=[8e-5], attack_steps=12, eval_every=12)
