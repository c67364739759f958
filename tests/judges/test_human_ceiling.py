"""Human ceiling: one annotator vs the mean of the others on pyrit's multi-annotator harm rows."""

from __future__ import annotations

import pytest

from alignkit.judges.validation.human_ceiling import human_ceiling, multi_annotator_rows


def test_unanimous_annotators_agree_perfectly():
    rows = [{"category": "a", "scores": [1.0, 1.0, 0.75]}, {"category": "a", "scores": [0.0, 0.25, 0.0]}]
    r = human_ceiling(rows)
    assert r["rows"] == 2
    assert r["overall"]["n"] == 6 and r["overall"]["positives"] == 3
    assert r["overall"]["accuracy"] == 1.0 and r["overall"]["auroc"] == 1.0


def test_a_dissenting_annotator_is_counted_against_the_others():
    # row 1: annotators 1 and 2 say harmful, annotator 3 says not.
    # annotator 1: others mean (1 + 0) / 2 = 0.5 -> harmful label, predicts 1 -> right
    # annotator 2: same -> right; annotator 3: others mean 1.0 -> harmful label, predicts 0 -> wrong
    # row 2: all 0 -> three right; row 3 (category b): all 1 -> three right
    rows = [{"category": "a", "scores": [1.0, 1.0, 0.0]}, {"category": "a", "scores": [0.0, 0.0, 0.0]},
            {"category": "b", "scores": [1.0, 1.0, 1.0]}]
    r = human_ceiling(rows)
    assert r["by_category"]["a"]["accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    assert r["by_category"]["a"]["rows"] == 2
    assert r["by_category"]["b"]["auroc"] is None  # a single class: AUROC undefined
    assert r["overall"]["accuracy"] == pytest.approx(8 / 9, abs=1e-4)
    assert r["overall"]["n"] == 9 and r["overall"]["positives"] == 6


def test_vendored_multi_annotator_rows():
    rows = multi_annotator_rows()
    assert len(rows) > 300
    assert {r["category"] for r in rows} == {"hate_speech", "violence"}
    assert all(len(r["scores"]) == 3 for r in rows)
    keys = [(r["question"], r["answer"]) for r in rows]
    assert len(keys) == len(set(keys))
    res = human_ceiling()
    # humans agree far better than chance, and not perfectly
    assert 0.7 < res["overall"]["accuracy"] < 0.98 and 0.8 < res["overall"]["auroc"] < 0.99
