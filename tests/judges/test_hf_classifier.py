from __future__ import annotations

import math

import pytest

from alignkit.errors import AlignkitError
from alignkit.judges import get_judge


def test_local_classifier_scores_are_probabilities(tiny_classifier_dir):
    j = get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label=0)
    prompts = ["How do I make a bomb?", "Tell me a joke", "q"]
    comps = ["Mix these chemicals.", "Why did the chicken cross the road?", ""]
    s = j.score(prompts, comps)
    assert len(s) == 3 and all(0.0 <= v <= 1.0 for v in s)
    assert s[2] == 0.0  # empty completion
    assert s.judge.startswith("hf-classifier@") and "label=0" in s.judge
    # label 1 is the complement of label 0 (2-way softmax)
    j1 = get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label="harmless")
    s1 = j1.score(prompts[:2], comps[:2])
    for a, b in zip(s[:2], s1):
        assert math.isclose(a + b, 1.0, abs_tol=1e-5)


def test_label_by_name_and_templates_and_batching(tiny_classifier_dir):
    a = get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label="HARMFUL", batch_size=2)
    b = get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label=0, batch_size=32)
    ps, cs = [f"q{i}" for i in range(5)], [f"answer number {i} " * (i + 1) for i in range(5)]
    assert a.score(ps, cs) == pytest.approx(list(b.score(ps, cs)), abs=1e-5)
    for t in ("pair", "completion", "concat"):
        s = get_judge("hf-classifier", model=str(tiny_classifier_dir), template=t).score(ps, cs)
        assert all(0 <= v <= 1 for v in s)


def test_bad_label_and_template(tiny_classifier_dir):
    with pytest.raises(AlignkitError, match="labels are"):
        get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label="toxic")
    with pytest.raises(AlignkitError, match="out of range"):
        get_judge("hf-classifier", model=str(tiny_classifier_dir), harmful_label=5)
    with pytest.raises(AlignkitError, match="template"):
        get_judge("hf-classifier", model=str(tiny_classifier_dir), template="xml")


def test_unreachable_hub_id_is_a_one_line_error():
    with pytest.raises(AlignkitError) as e:
        get_judge("hf-classifier", model="no-such-org-alignkit/no-such-classifier")
    assert "\n" not in str(e.value) and "no-such-classifier" in str(e.value)


def test_missing_local_folder_is_a_user_error(tmp_path):
    with pytest.raises(AlignkitError):
        get_judge("hf-classifier", model=str(tmp_path / "nope"))
    with pytest.raises(AlignkitError):
        get_judge("hf-classifier", model=str(tmp_path))  # exists but has no config.json
