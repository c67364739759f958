"""The hand-labelled real-generations set: well-formed, and evaluate() computes its metrics correctly."""

from __future__ import annotations

import json

import pytest

from alignkit.errors import AlignkitError
from alignkit.judges import Judge
from alignkit.judges.validation import real_generations as rg

HARMFUL_SOURCES = {"harmbench", "strongreject", "donotanswer", "harmful-eval:test"}


def test_rows_well_formed():
    rows = rg.load_rows()
    assert len(rows) >= 100
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({(r["prompt"], r["completion"], r["model"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["harmful"] in (0, 1) and r["refused"] in (0, 1), r["id"]
        assert r["reason"].strip() and r["prompt"].strip() and r["decoding"].startswith("greedy"), r["id"]
        assert r["prompt_source"] in HARMFUL_SOURCES | {"alignkit-written-harmless"}, r["id"]
        assert not (r["harmful"] and r["refused"]), r["id"]  # a refusal is never labelled harmful
    harmless = [r for r in rows if r["prompt_source"] == "alignkit-written-harmless"]
    assert len(harmless) >= 15 and not any(r["harmful"] for r in harmless)
    labels = [r["harmful"] for r in rows]
    assert 10 <= sum(labels) <= len(rows) - 10  # both classes well present
    assert sum(r["refused"] for r in rows) >= 10
    assert len({r["model"] for r in rows}) >= 4  # several models, not one distribution
    prov = json.loads((rg.DATA / "provenance.json").read_text())
    assert "blind to judge scores" in prov["labelled_by"] and prov["rows"] == len(rows)
    assert prov["used_for_training"] is False


class _Oracle(Judge):
    """Scores from the hand labels (flipped when ``invert``): the metric code must give 1.0 (or 0.0)."""

    name, version = "oracle", "0"

    def __init__(self, rows, invert=False, with_refusal=False):
        self.lab = {(r["prompt"], r["completion"]): r for r in rows}
        self.invert = invert
        if with_refusal:
            self._assess = self._assess_impl

    def _score(self, prompts, completions):
        s = [float(self.lab[(p, c)]["harmful"]) for p, c in zip(prompts, completions)]
        return [1 - x for x in s] if self.invert else s

    def _assess_impl(self, prompts, completions):
        return [{"score": s, "refused": float(self.lab[(p, c)]["refused"]), "harm": s, "incoherent": False}
                for s, p, c in zip(self._score(prompts, completions), prompts, completions)]


def test_evaluate_metrics_on_known_judges():
    rows = [r for r in rg.load_rows() if r["completion"].strip()]  # empty completions score 0 by construction
    res = rg.evaluate(_Oracle(rows), rows)
    assert res["accuracy"] == 1.0 and res["auroc"] == 1.0 and res["f1"] == 1.0
    assert res["mean_score"]["harmful"] == 1.0 and res["mean_score"]["harmless"] == 0.0
    assert res["refusal_auroc"] is None  # this judge reports no refusal
    bad = rg.evaluate(_Oracle(rows, invert=True), rows)
    assert bad["accuracy"] == 0.0 and bad["auroc"] == 0.0
    ref = rg.evaluate(_Oracle(rows, with_refusal=True), rows)
    assert ref["refusal_auroc"] == 1.0 and ref["n"] == len(rows) == res["n"]


def test_evaluate_with_refusal_keywords():
    rows = rg.load_rows()
    res = rg.evaluate("refusal-keywords")
    assert res["judge"].startswith("refusal-keywords@") and res["n"] == len(rows)
    assert res["n_harmful"] == sum(r["harmful"] for r in rows)
    assert 0.0 <= res["accuracy"] <= 1.0 and 0.0 <= res["auroc"] <= 1.0
    # it flags non-refusal: the rows labelled refused score lower than the harmful ones
    assert res["mean_score"]["refused"] < res["mean_score"]["harmful"]


def test_bad_file(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"id": "x", "prompt": "p", "completion": "c"}) + "\n")
    with pytest.raises(AlignkitError, match="lacks"):
        rg.load_rows(f)
    with pytest.raises(AlignkitError, match="no labelled"):
        rg.load_rows(tmp_path / "missing.jsonl")
    with pytest.raises(AlignkitError, match="unknown real-generations set 'nope'"):
        rg.load_rows(set_name="nope")


def test_attacked_set_well_formed():
    rows = rg.load_rows(set_name="attacked")
    original = {(r["prompt"], r["completion"]) for r in rg.load_rows()}
    assert len(rows) == 226 and len({r["id"] for r in rows}) == len(rows)
    assert not {(r["prompt"], r["completion"]) for r in rows} & original  # no row of the first set again
    assert len({(r["prompt"], r["completion"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["harmful"] in (0, 1) and r["refused"] in (0, 1) and r["reason"].strip(), r["id"]
        assert not (r["harmful"] and r["refused"]), r["id"]
        assert r["split"] in ("dev", "test") and r["decoding"].startswith("greedy"), r["id"]
    dev = [r for r in rows if r["split"] == "dev"]
    test = [r for r in rows if r["split"] == "test"]
    assert (len(dev), len(test)) == (168, 58)
    assert sum(r["harmful"] for r in dev) >= 10 and sum(r["harmful"] for r in test) >= 10
    assert len({r["model"] for r in rows}) >= 9  # every model of the defence table
    prov = json.loads((rg.DATA / "provenance_attacked.json").read_text())
    assert prov["rows"] == len(rows) and prov["harmful"] == sum(r["harmful"] for r in rows)
    assert "blind to judge scores" in prov["labelled_by"] and prov["used_for_training"] is False



def test_main_set_and_split(capsys):
    rg.main(["--set", "attacked", "--split", "test", "refusal-keywords"])
    res = json.loads(capsys.readouterr().out)
    assert (res["set"], res["split"], res["n"]) == ("attacked", "test", 58)
    with pytest.raises(SystemExit) as e:
        rg.main(["--set", "attacked", "--split", "nope", "refusal-keywords"])
    assert e.value.code == 2 and "no split 'nope'" in capsys.readouterr().err



@pytest.mark.parametrize("name, n, harmful, source, earlier", [
    ("raw_attack", 70, 21, None, ("original", "attacked")),
    ("harmbench_attack", 93, 27, "harmbench", ("original", "attacked", "raw_attack")),
    ("strongreject_attack", 90, 24, "strongreject", ("original", "attacked", "raw_attack", "harmbench_attack")),
])
def test_held_out_set_well_formed_new_and_never_trained_on(name, n, harmful, source, earlier):
    from alignkit.io import sha256_file

    rows = rg.load_rows(set_name=name)
    seen = {(r["prompt"], r["completion"]) for s in earlier for r in rg.load_rows(set_name=s)}
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    assert not {(r["prompt"], r["completion"]) for r in rows} & seen      # held out: no row of an earlier set
    assert len({(r["prompt"], r["completion"]) for r in rows}) == n          # each distinct completion once
    if source:
        assert {r["prompt_source"] for r in rows} == {source}
    for r in rows:
        assert r["harmful"] in (0, 1) and r["refused"] in (0, 1) and r["reason"].strip(), r["id"]
        assert not (r["harmful"] and r["refused"]) and r["split"] == "test", r["id"]
    prov = json.loads((rg.DATA / f"provenance_{name}.json").read_text())
    assert (prov["rows"], prov["harmful"]) == (n, sum(r["harmful"] for r in rows)) == (n, harmful)
    assert prov["sha256"] == sha256_file(rg.DATA / rg.SETS[name]) and prov["used_for_training"] is False
    assert name in rg.HELD_OUT
