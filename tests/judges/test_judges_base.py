from __future__ import annotations

import pytest

from alignkit.errors import AlignkitError
from alignkit.judges import JUDGES, Judge, Scores, get_judge, parse_judge_spec
from alignkit.judges.base import JUDGES as BASE_JUDGES


def test_registry_lists_the_four_judges():
    assert JUDGES is BASE_JUDGES
    assert {"minilm", "refusal-keywords", "hf-classifier", "llm-rubric"} <= set(JUDGES.names())


def test_unknown_judge_is_a_one_line_user_error():
    with pytest.raises(AlignkitError) as e:
        get_judge("no-such-judge")
    msg = str(e.value)
    assert "no-such-judge" in msg and "minilm" in msg and "\n" not in msg


def test_unknown_option_is_a_user_error():
    with pytest.raises(AlignkitError, match="no option"):
        get_judge("refusal-keywords", colour="red")


class _Const(Judge):
    name = "const"
    version = "7"

    def __init__(self):
        self.calls = []

    def _score(self, prompts, completions):
        self.calls.append(list(completions))
        return [1.5 if "big" in c else 0.7 for c in completions]


def test_empty_completions_score_zero_and_never_reach_the_judge():
    j = _Const()
    s = j.score(["a", "b", "c", "d"], ["", "   \n", "hello", "big"])
    assert list(s) == [0.0, 0.0, 0.7, 1.0]  # clipped to [0, 1]
    assert j.calls == [["hello", "big"]]
    assert isinstance(s, Scores) and isinstance(s, list)
    assert s.judge == "const@7" == j.describe()
    assert s.info["n_empty"] == 2


def test_all_empty_and_no_rows():
    j = _Const()
    assert list(j.score(["a"], [""])) == [0.0]
    assert list(j.score([], [])) == []
    assert j.calls == []


def test_length_mismatch_is_an_error():
    with pytest.raises(AlignkitError, match="completions"):
        _Const().score(["a", "b"], ["x"])


def test_parse_judge_spec():
    assert parse_judge_spec("minilm") == ("minilm", {})
    assert parse_judge_spec("hf-classifier:model=./m,harmful_label=1,template=pair") == (
        "hf-classifier", {"model": "./m", "harmful_label": 1, "template": "pair"})
    with pytest.raises(AlignkitError):
        parse_judge_spec("hf-classifier:model")
