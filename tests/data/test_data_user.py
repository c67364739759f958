"""load_user: JSONL/CSV files, column mappings, the BeaverTails schema, and one-line errors on bad input."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignkit.data import HarmfulQA, load_user
from alignkit.errors import AlignkitError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "beavertails_sample.jsonl"


def _write(tmp: Path, name: str, content) -> Path:
    p = tmp / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_beavertails_fixture():
    rows = load_user(FIXTURE, schema="beavertails")
    raw = [json.loads(ln) for ln in FIXTURE.read_text(encoding="utf-8").splitlines()]
    assert len(raw) == 20 and sum(not r["is_safe"] for r in raw) == 15
    assert len(rows) == 14  # 15 unsafe rows, one a case/space duplicate
    assert all(isinstance(r, HarmfulQA) and r.harm_score == 1.0 for r in rows)
    assert rows[0].category == "financial_crime_property_crime_theft"
    assert {"privacy_violation", "self_harm", "animal_abuse"} <= {r.category for r in rows}
    everything = load_user(FIXTURE, schema="beavertails", harmful_only=False)
    assert len(everything) == 19 and sum(r.harm_score == 0.0 for r in everything) == 5
    assert everything[-1].category == "unspecified"  # a safe row with no true category


def test_beavertails_string_category_and_string_is_safe(tmp_path):
    p = _write(tmp_path, "bt.jsonl", _jsonl([
        {"prompt": "q1", "response": "a1", "category": "Privacy Violation", "is_safe": "false"},
        {"prompt": "q2", "response": "a2", "category": "violence", "is_safe": "true"}]))
    rows = load_user(p, schema="beavertails")
    assert [(r.question, r.category) for r in rows] == [("q1", "privacy_violation")]


def test_jsonl_default_columns_and_mapping(tmp_path):
    p = _write(tmp_path, "x.jsonl", _jsonl([{"question": "Q?", "answer": "A.", "category": "Hate"},
                                            {"question": "Q2?", "answer": "A2.", "category": "violence"}]))
    rows = load_user(p)
    assert [(r.question, r.answer, r.category) for r in rows] == [("Q?", "A.", "hate_speech"),
                                                                  ("Q2?", "A2.", "violence")]
    p2 = _write(tmp_path, "y.jsonl", _jsonl([{"q": "Q?", "a": "A.", "s": 0.5}]))
    rows = load_user(p2, columns={"question": "q", "answer": "a", "harm_score": "s"})
    assert rows[0].harm_score == 0.5 and rows[0].category == "unspecified"


def test_csv(tmp_path):
    p = _write(tmp_path, "x.csv", 'prompt,response,topic\n"How, exactly?",Like this.,privacy\nq2,a2,violence\n')
    rows = load_user(p, columns={"category": "topic"})
    assert [(r.question, r.category) for r in rows] == [("How, exactly?", "privacy"), ("q2", "violence")]


# ------------------------------------------------------------------------------------------ errors

def test_missing_file(tmp_path):
    with pytest.raises(AlignkitError, match=r"^file not found: .*nope\.jsonl$"):
        load_user(tmp_path / "nope.jsonl")


def test_unsupported_extension(tmp_path):
    p = _write(tmp_path, "x.txt", "hello")
    with pytest.raises(AlignkitError, match=r"unsupported file type '\.txt'"):
        load_user(p)


def test_missing_columns(tmp_path):
    p = _write(tmp_path, "x.jsonl", _jsonl([{"question": "q", "reply": "a"}]))
    with pytest.raises(AlignkitError, match=r"no column for 'answer' \(columns: question, reply\)"):
        load_user(p)
    with pytest.raises(AlignkitError, match=r"missing column\(s\) 'response' \(for answer\)"):
        load_user(p, columns={"answer": "response"})
    with pytest.raises(AlignkitError, match="missing column"):
        load_user(p, schema="beavertails")


def test_empty_text(tmp_path):
    p = _write(tmp_path, "x.jsonl", _jsonl([{"question": "q", "answer": "a"}, {"question": "  ", "answer": "b"}]))
    with pytest.raises(AlignkitError, match=r"row 2 has an empty or non-text 'question' \(column 'question'\)"):
        load_user(p)
    p = _write(tmp_path, "x.csv", "question,answer\nq,\n")
    with pytest.raises(AlignkitError, match="row 1 has an empty or non-text 'answer'"):
        load_user(p)


def test_non_utf8(tmp_path):
    p = _write(tmp_path, "x.jsonl", b'{"question": "caf\xe9", "answer": "a"}\n')
    with pytest.raises(AlignkitError, match=r"not valid UTF-8 \(byte 17\)"):
        load_user(p)


def test_empty_and_unparsable_file(tmp_path):
    with pytest.raises(AlignkitError, match="the file is empty"):
        load_user(_write(tmp_path, "e.jsonl", "\n"))
    with pytest.raises(AlignkitError, match="b.jsonl' line 2: not valid JSON"):
        load_user(_write(tmp_path, "b.jsonl", '{"question": "q", "answer": "a"}\n{not json\n'))
    with pytest.raises(AlignkitError, match="c.jsonl' line 1: not a JSON object"):
        load_user(_write(tmp_path, "c.jsonl", '[1, 2]\n'))


def test_unknown_schema_and_field(tmp_path):
    p = _write(tmp_path, "x.jsonl", _jsonl([{"question": "q", "answer": "a"}]))
    with pytest.raises(AlignkitError, match="unknown schema 'nope'"):
        load_user(p, schema="nope")
    with pytest.raises(AlignkitError, match="unknown field"):
        load_user(p, columns={"prompt": "question"})


def test_all_safe_rows(tmp_path):
    p = _write(tmp_path, "x.jsonl", _jsonl([{"prompt": "q", "response": "a", "category": "x", "is_safe": True}]))
    with pytest.raises(AlignkitError, match="every row has is_safe true"):
        load_user(p, schema="beavertails")


def test_hub_id_offline_is_one_line_error(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(AlignkitError) as e:
        load_user("no-such-owner/no-such-dataset", schema="beavertails")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("could not load hub dataset 'no-such-owner/no-such-dataset'")


# ------------------------------------------------------------------------------- malformed (hypothesis)

def _must_be_clean(path: Path, **kw):
    try:
        rows = load_user(path, **kw)
    except AlignkitError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert all(isinstance(r, HarmfulQA) for r in rows)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv", ".json"]))
def test_random_bytes_give_alignkit_error_or_records(content, suffix):
    with tempfile.TemporaryDirectory() as d:
        _must_be_clean(_write(Path(d), "f" + suffix, content))


_cols = st.sampled_from(["question", "answer", "prompt", "response", "category", "is_safe", "harm_score", "x"])
_vals = st.one_of(st.text(max_size=20), st.integers(-5, 5), st.floats(allow_nan=False, width=32), st.booleans(),
                  st.none(), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.sampled_from(["a", "b"]), st.booleans(), max_size=2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.dictionaries(_cols, _vals, min_size=1, max_size=5), min_size=1, max_size=5),
       schema=st.sampled_from([None, "beavertails"]), as_csv=st.booleans())
def test_random_columns_give_alignkit_error_or_records(rows, schema, as_csv):
    with tempfile.TemporaryDirectory() as d:
        if as_csv:
            import csv
            import io

            buf = io.StringIO()
            cols = sorted({k for r in rows for k in r})
            w = csv.DictWriter(buf, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in cols})
            path = _write(Path(d), "f.csv", buf.getvalue())
        else:
            path = _write(Path(d), "f.jsonl", _jsonl(rows))
        _must_be_clean(path, schema=schema)
