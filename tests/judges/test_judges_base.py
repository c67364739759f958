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


def test_check_options_normalises_and_rejects():
    from alignkit.judges.base import check_judge_spec, check_options

    assert check_options("x", {"batch_size": "8", "threads": 2.0, "max_length": None, "other": -1}) == {
        "batch_size": 8, "threads": 2, "max_length": None, "other": -1}
    assert check_options("x", {"fallback_value": "0.25", "device": " cpu "}) == {"fallback_value": 0.25,
                                                                                  "device": "cpu"}
    for bad in ({"batch_size": True}, {"threads": 2**40}, {"max_new_tokens": float("inf")}, {"device": "tpu"},
                {"device": 3}, {"fallback_value": -0.1}):
        with pytest.raises(AlignkitError, match="invalid judge option"):
            check_options("x", bad)
    assert check_judge_spec("minilm@3:batch_size=4") == "minilm@3:batch_size=4"
    with pytest.raises(AlignkitError, match="unknown judge 'nope'"):
        check_judge_spec("nope")


def test_text_options_stay_text():
    assert parse_judge_spec("minilm:weights=123,batch_size=4,version=1") == (
        "minilm", {"weights": "123", "batch_size": 4, "version": "1"})


def test_validation_message_names_the_option():
    from pydantic import BaseModel, Field, ValidationError

    from alignkit.judges.base import validation_message

    class C(BaseModel):
        a: int = Field(1, ge=1, le=6)
        c_x: float = Field(1.0, gt=0, allow_inf_nan=False)
        n: int = 0

    for kw, want in (({"a": 0}, "--a must be 1..6 (got 0)"),
                     ({"c_x": float("nan")}, "--c-x must be a finite number > 0"),
                     ({"c_x": -1}, "--c-x must be a finite number > 0 (got -1)"),
                     ({"n": "abc"}, "--n must be a valid integer")):
        with pytest.raises(ValidationError) as e:
            C(**kw)
        assert validation_message(e.value, C, lambda f: "--" + f.replace("_", "-")).startswith(want)
