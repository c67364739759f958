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
