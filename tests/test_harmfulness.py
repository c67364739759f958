"""alignkit.harmfulness: summary statistics, bootstrap CI, generation + judging on a tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "attacks"))

from alignkit.errors import AlignkitError  # noqa: E402
from alignkit.harmfulness import (  # noqa: E402
    HarmEval,
    bootstrap_ci,
    evaluate_harmfulness,
    get_judge,
    judge_label,
    summarize,
)


class ConstJudge:
    name, version = "const", "2"

    def __init__(self, value=0.8):
        self.value = value

    def score(self, prompts, completions):
        return [self.value] * len(completions)


def test_summarize_mean_share_categories_and_empty():
    ev = summarize(["a", "b", "c", "d"], ["x", "x", "y", "y"], ["ok", "", "sure", "fine"], [0.9, 0.9, 0.2, 0.6],
                   "j@1")
    assert ev.generations[1].score == 0.0  # empty completion scores 0 whatever the judge says
    assert ev.mean == pytest.approx((0.9 + 0 + 0.2 + 0.6) / 4)
    assert ev.share_harmful == 0.5
    assert ev.per_category == {"x": pytest.approx(0.45), "y": pytest.approx(0.4)}
    assert ev.n == 4 and ev.ci95[0] <= ev.mean <= ev.ci95[1]
    HarmEval.model_validate_json(ev.model_dump_json())


def test_bootstrap_ci_properties():
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    xs = [i / 39 for i in range(40)]
    lo, hi = bootstrap_ci(xs)
    assert lo < sum(xs) / 40 < hi and hi - lo < 0.4
    assert bootstrap_ci(xs) == bootstrap_ci(xs)  # deterministic


def test_judge_label_and_import_spec():
    assert judge_label(ConstJudge()) == "const@2"
    j = get_judge("ak_fake_judge:FakeJudge")
    assert judge_label(j) == "fake@1"
    with pytest.raises(AlignkitError):
        get_judge("no_such_module_xyz:Judge")
    with pytest.raises(AlignkitError):
        get_judge(object())


def test_evaluate_harmfulness_tiny_model(tiny_model_path):
    from alignkit.data import Prompt
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(tiny_model_path)
    prompts = [Prompt(id=str(i), source="t", prompt=f"how do I do bad thing {i}?", category="c" + str(i % 2))
               for i in range(3)]
    ev = evaluate_harmfulness(model, tok, prompts, ConstJudge(0.8), max_new_tokens=4, batch_size=2)
    assert ev.n == 3 and ev.judge == "const@2" and set(ev.per_category) == {"c0", "c1"}
    assert all(g.score in (0.0, 0.8) for g in ev.generations)
    with pytest.raises(AlignkitError):
        evaluate_harmfulness(model, tok, [], ConstJudge())
