"""Built-in datasets: types, sizes, deterministic and disjoint splits, de-duplication, documented templates."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignkit import data
from alignkit.data import DataToText, HarmfulQA, Instruction, JudgeExample, PairedQA, Prompt
from alignkit.data.base import normalize_text
from alignkit.errors import AlignkitError

EXPECTED = {  # name: (record type, splits, total rows at seed 0)
    "harmful-qa": (HarmfulQA, ("train", "eval", "test"), 338),
    "paired-refusals": (PairedQA, ("train", "eval", "test"), 338),
    "judge-labels": (JudgeExample, ("train", "eval", "test"), 1533),
    "advbench": (Prompt, ("test",), 520),
    "harmbench": (Prompt, ("test",), 200),
    "strongreject": (Prompt, ("test",), 313),
    "donotanswer": (Prompt, ("test",), 938),
    "harmful-eval": (Prompt, ("eval", "test"), 120),
    "harmless-instructions": (Instruction, ("train", "test"), 3000),
    "data2text": (DataToText, ("train", "test"), 2000),
}
PYRIT_CATEGORIES = {"exploits", "hate_speech", "info_integrity", "privacy", "representational", "self_harm",
                    "sexual", "violence"}


def _key(rec) -> str:
    """The text that must not repeat across splits (question-level for pyrit-derived sets)."""
    for attr in ("question", "group", "prompt", "instruction", "mr"):
        if hasattr(rec, attr):
            return normalize_text(getattr(rec, attr))
    raise AssertionError(rec)


def test_names_registered():
    assert set(EXPECTED) <= set(data.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_types_sizes_and_disjoint_splits(name):
    rtype, splits, total = EXPECTED[name]
    built = data.build(name, seed=0)
    assert tuple(built) == splits
    assert sum(len(v) for v in built.values()) == total
    info = data.info(name)
    assert info.rows == total and info.record_type == rtype.__name__ and info.license and info.source
    seen: dict[str, str] = {}
    ids = set()
    for split, rows in built.items():
        assert rows, (name, split)
        for r in rows:
            assert isinstance(r, rtype) and r.id and r.source
            ids.add(r.id)
            k = _key(r)
            assert seen.setdefault(k, split) == split, f"{name}: {k[:60]!r} in {seen[k]} and {split}"
    assert len(ids) == total  # ids unique
    assert data.load(name, "all") == [r for s in splits for r in built[s]]


def test_load_returns_fresh_list_and_is_deterministic():
    a = data.load("harmful-qa", "train", seed=0)
    a.clear()
    assert data.load("harmful-qa", "train", seed=0) == data.load("harmful-qa", "train", seed=0) != []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_pyrit_splits_are_by_question_and_aligned_for_any_seed(seed):
    qa = data.build("harmful-qa", seed)
    pairs = data.build("paired-refusals", seed)
    judge = data.build("judge-labels", seed)
    ev = data.build("harmful-eval", seed)
    qsplit = {}
    for split, rows in qa.items():
        for r in rows:
            assert qsplit.setdefault(normalize_text(r.question), split) == split
    assert {s: [p.question for p in rows] for s, rows in pairs.items()} == \
        {s: [r.question for r in rows] for s, rows in qa.items()}
    for split, rows in judge.items():  # judge splits agree with the harmful-qa question table
        for r in rows:
            assert qsplit.get(r.group, split) == split
    test_q = {normalize_text(r.question) for r in qa["test"]}
    assert test_q <= {normalize_text(p.prompt) for p in ev["test"]}
    train_groups = {r.group for r in judge["train"]}
    assert not train_groups & {normalize_text(p.prompt) for p in ev["test"]}
    # about 70/10/20 of the questions
    nq = Counter(qsplit.values())
    assert nq["train"] > nq["test"] > nq["eval"] > 0


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_generated_splits_deterministic_and_disjoint(seed):
    for name in ("harmless-instructions", "data2text"):
        a = data.build(name, seed)
        assert a == data.build(name, seed)
        keys = [set(map(_key, rows)) for rows in a.values()]
        assert not keys[0] & keys[1]
        assert sum(map(len, keys)) == sum(len(v) for v in a.values())  # no duplicates within splits


def test_different_seeds_give_different_splits():
    assert [r.id for r in data.load("harmful-qa", "test", 0)] != [r.id for r in data.load("harmful-qa", "test", 1)]


def test_harmful_qa_rows():
    rows = data.load("harmful-qa", "all")
    assert {r.category for r in rows} == PYRIT_CATEGORIES
    assert all(r.harm_score >= 0.75 for r in rows)
    keys = [(normalize_text(r.question), normalize_text(r.answer)) for r in rows]
    assert len(keys) == len(set(keys))  # de-duplicated
    lower = data.load("harmful-qa", "all", min_score=0.5)
    assert len(lower) > len(rows) and min(r.harm_score for r in lower) >= 0.5
    # multi-score files are averaged: some means are not multiples of 0.25
    assert any(abs(r.harm_score * 4 - round(r.harm_score * 4)) > 1e-6 for r in lower)


def test_paired_refusals_are_templated_refusals():
    from alignkit.data.refusals import TEMPLATES, TOPICS, refusal_for

    pairs = data.load("paired-refusals", "all")
    assert len({p.harmless for p in pairs}) >= 8  # varied
    for p in pairs:
        assert p.harmless != p.harmful
        assert p.harmless == refusal_for(p.question, p.category)
        assert TOPICS[p.category] in p.harmless
    used = Counter(next(i for i, t in enumerate(TEMPLATES) if p.harmless.startswith(t.split("{")[0]))
                   for p in pairs)
    assert len(used) == len(TEMPLATES)
    # the same question always gets the same refusal; the template seed changes it for some questions
    q = pairs[0].question
    assert refusal_for(q, "violence") == refusal_for(q + "  ", "violence")
    assert any(refusal_for(p.question, p.category, 1) != p.harmless for p in pairs)


def test_judge_labels():
    rows = data.load("judge-labels", "all")
    assert all(0.0 <= r.label <= 1.0 for r in rows)
    src = Counter(r.source.split(":")[0] for r in rows)
    assert src["alignkit refusal templates (label 0)"] == 390
    labels = Counter(r.label for r in rows)
    assert labels[1.0] > 50 and labels[0.0] > 300 and len(labels) > 5
    keys = [(r.group, normalize_text(r.response)) for r in rows]
    assert len(keys) == len(set(keys))
    refusal_rows = [r for r in rows if "refusal_scorer" in r.source]
    assert 100 < len(refusal_rows) < 169 and all(r.label == 0.0 for r in refusal_rows)
    assert not any(r.prompt.startswith("Design a phishing email") for r in refusal_rows)


def test_eval_prompt_sets():
    adv = data.load("advbench", "test")
    assert len({p.category for p in adv}) > 3
    assert {p.category for p in data.load("strongreject", "test")} >= {"violence", "sexual"}
    assert len({p.category for p in data.load("donotanswer", "test")}) == 5
    ev = data.load("harmful-eval", "test")
    qa_test = {r.question for r in data.load("harmful-qa", "test")}
    assert len(ev) == len(qa_test) + 40
    assert not {p.prompt for p in ev} & {p.prompt for p in data.load("harmful-eval", "eval")}
    assert len(data.load("harmful-eval", "test", advbench_test=10)) == len(qa_test) + 10


def test_harmless_instructions_have_exact_answers():
    rows = data.load("harmless-instructions", "all")
    assert len({r.task for r in rows}) >= 8
    assert all(r.answer and r.is_correct(r.response) for r in rows)
    capital = next(r for r in rows if r.task == "capital" and "France" in r.instruction)
    assert capital.answer == "Paris" and capital.is_correct("It is Paris.")
    assert not capital.is_correct("It is Lyon.")
    arith = next(r for r in rows if r.task == "arithmetic")
    assert not arith.is_correct(arith.answer + "0")


def test_data2text_mentions_every_value():
    import re

    for r in data.load("data2text", "all")[:300]:
        values = re.findall(r"\[([^\]]+)\]", r.mr)
        assert r.mr.startswith("name[")
        for v in values:
            if v == "city centre":
                assert "city centre" in r.text or "centre of the city" in r.text
            elif v not in ("yes", "no"):
                assert v.lower() in r.text.lower(), (r.mr, r.text)


def test_unknown_names_and_splits():
    with pytest.raises(AlignkitError, match="unknown dataset 'nope'"):
        data.load("nope")
    with pytest.raises(AlignkitError, match="no split 'train'"):
        data.load("advbench", "train")
    with pytest.raises(AlignkitError, match="seed must be an integer"):
        data.load("harmful-qa", seed="1")
