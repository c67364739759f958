"""Attack suites (alignkit.attacks.suite): built from the registry, quick budgets, redundancy, bad names."""

from __future__ import annotations

import pytest


def test_suites_come_from_the_registry():
    from alignkit.attacks.base import ATTACKS, Attack
    from alignkit.attacks.suite import suite_names

    full = suite_names("full")
    assert sorted(full) == ATTACKS.names()
    quick = suite_names("quick")
    assert "sft-lora" not in quick and "sft-full" in quick  # redundant beside sft-full, nothing else cut
    assert set(full) - set(quick) == {"sft-lora"}
    assert suite_names("sft") == [n for n in full if issubclass(ATTACKS.get(n), Attack)]
    assert {"sft-full", "sft-lora"} <= set(suite_names("sft")) and "prefill" not in suite_names("sft")
    assert suite_names(" prefill , sft-lora ") == ["prefill", "sft-lora"]


def test_a_new_family_joins_the_suites(monkeypatch):
    from alignkit.attacks.base import ATTACKS
    from alignkit.attacks.prefill import PrefillAttack
    from alignkit.attacks.suite import resolve_suite, suite_names

    from typing import Literal

    from pydantic import Field

    from alignkit.attacks.prefill import PrefillConfig

    class OtherConfig(PrefillConfig):
        attack: Literal["other-prefill"] = Field("other-prefill", description="attack family (other-prefill)")

    class Other(PrefillAttack):
        config_class = OtherConfig
        suite_budgets = {"quick": {"prefill_tokens": [0, 3]}}

    monkeypatch.setitem(ATTACKS._items, "other-prefill", Other)
    assert "other-prefill" in suite_names("full") and "other-prefill" in suite_names("quick")
    (e,) = resolve_suite("other-prefill", "tiny-random-llama", budget="quick")
    assert e.config.prefill_tokens == [0, 3]  # the class's own quick budget wins over the fallback table


def test_budgets_and_options():
    from alignkit.attacks.config import AttackConfig
    from alignkit.attacks.prefill import PrefillConfig
    from alignkit.attacks.suite import QUICK_BUDGETS, resolve_suite

    base = {"eval_prompts": 5, "max_new_tokens": 24, "judge": "refusal-keywords", "lr": 3e-5}
    quick = {e.name: e for e in resolve_suite("quick", "tiny-random-llama", base)}
    assert all(e.budget == "quick" for e in quick.values())
    sft = quick["sft-full"].config
    assert isinstance(sft, AttackConfig) and sft.family() == "sft-full"
    assert sft.max_steps == QUICK_BUDGETS["sft-full"]["max_steps"] and sft.lr == 3e-5 and sft.eval_prompts == 5
    pre = quick["prefill"].config
    assert isinstance(pre, PrefillConfig) and pre.prefill_tokens == [0, 8, 16] and pre.max_new_tokens == 24
    assert not hasattr(pre, "lr")  # a shared option a family does not have is skipped
    assert all(e.config.model == "tiny-random-llama" for e in quick.values())
    # an explicit list is at the paper defaults, unless the quick budget is asked for
    (d,) = resolve_suite("prefill", "tiny-random-llama")
    assert d.budget == "default" and d.config.prefill_tokens == PrefillConfig().prefill_tokens
    (q,) = resolve_suite("prefill", "tiny-random-llama", budget="quick", overrides={"prefill": {"source": "opener"}})
    assert q.config.prefill_tokens == [0, 8, 16] and q.config.source == "opener"


@pytest.mark.parametrize("spec, kw, expect", [
    ("prefill,nope", {}, "unknown attack 'nope' in --attacks; give a suite (quick, full, sft) or registered attack "
                         "families: sft-full, sft-lora, prefill"),
    ("", {}, "--attacks is empty"),
    ("prefill,prefill", {}, "appears twice"),
    ("prefill", {"overrides": {"sft-full": {"lr": 1e-4}}}, "options given for attack 'sft-full', which is not in"),
    ("prefill", {"overrides": {"prefill": {"lr": 1e-4}}}, "attack prefill: invalid option --lr"),
    ("quick", {"base_options": {"max_new_tokens": 8}}, "attack prefill: invalid option"),  # 16-token prefill
    ("prefill", {"budget": "huge"}, "unknown suite budget"),
])
def test_bad_suites_are_one_line(spec, kw, expect):
    from alignkit.attacks.suite import resolve_suite
    from alignkit.errors import AlignkitError

    base = kw.pop("base_options", None)
    with pytest.raises(AlignkitError) as exc:
        resolve_suite(spec, "tiny-random-llama", base, **kw)
    assert expect in str(exc.value) and "\n" not in str(exc.value)
