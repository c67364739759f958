"""Judge cards (alignkit.judges.card): every shipped version has a valid card whose numbers agree with the judge's
own (phi margin) and with each other; reports draw the validity block from it; a missing or malformed card is
named at load; a judge without a card says it is not validated here."""

from __future__ import annotations

import json
import shutil

import pytest

from alignkit.errors import AlignkitError


@pytest.mark.parametrize("version", ["3", "5"])
def test_every_shipped_version_has_a_valid_card(version):
    import importlib

    from alignkit.judges.card import load_card
    from alignkit.judges.minilm import HEADS_JUDGES

    card = load_card(f"minilm@{version}")
    assert card.judge == f"minilm@{version}" and card.status == ("default" if version == "5" else "kept")
    mod, cls = HEADS_JUDGES[version]
    # the class's rounded margin (used by the conditions) is the card's measurement rounded
    assert getattr(importlib.import_module(mod), cls).phi_margin == round(card.phi_margin.value, 2)
    kinds = {c.kind for c in card.checks}
    assert {"refusal", "harm_ood", "harm_real", "probe", "human_ceiling"} <= kinds
    assert all(c.command and c.date for c in card.checks)
    assert load_card(f"minilm@{version}+bf16") == card and load_card(f"minilm@{version}+1a2b3c4d") is None


def test_validity_lines_come_from_the_card(tmp_path, monkeypatch):
    """Change a number in the card: the block changes with it (no number is written by the report code)."""
    from alignkit.judges import minilm5
    from alignkit.judges.card import card_path, validity_lines

    before = validity_lines("minilm@5")
    assert any(x.startswith("refusal detection: 0.91 / 0.98") for x in before)
    assert any("near chance" in x for x in before) and any(x.startswith("not for:") for x in before)
    raw = json.loads(card_path("minilm@5").read_text())
    raw["checks"][0]["accuracy"], raw["checks"][0]["auroc"] = 0.5, 0.6
    w = tmp_path / minilm5.SHIPPED_WEIGHTS.name
    (tmp_path / card_path("minilm@5").name).write_text(json.dumps(raw))
    monkeypatch.setattr(minilm5, "SHIPPED_WEIGHTS", w)
    after = validity_lines("minilm@5")
    assert any(x.startswith("refusal detection: 0.50 / 0.60") for x in after)


@pytest.mark.parametrize("label", ["refusal-keywords@2", "judgezoo:strong_reject@0.1.9", "hf-classifier@1",
                                   "minilm@2", "my.module:Judge", ""])
def test_judges_without_a_card_are_not_validated_here(label):
    from alignkit.judges.card import validity_lines

    lines = validity_lines(label)
    assert "not validated here" in lines[0] and not any(ch.isdigit() for ch in lines[1].replace("llama_guard_3", ""))


@pytest.mark.parametrize("content, match", [
    (None, "card .* is missing"),
    ("{not json", "is not valid JSON"),
    (json.dumps({"judge": "minilm@5"}), "is malformed"),
])
def test_missing_or_malformed_card_is_named_at_load(tmp_path, monkeypatch, content, match):
    from alignkit.judges import get_judge, minilm5
    from alignkit.judges.card import card_path, report_lines

    w = tmp_path / minilm5.SHIPPED_WEIGHTS.name
    shutil.copy(minilm5.SHIPPED_WEIGHTS, w)
    if content is not None:
        (tmp_path / card_path("minilm@5").name).write_text(content)
    monkeypatch.setattr(minilm5, "SHIPPED_WEIGHTS", w)
    monkeypatch.setattr(minilm5.MiniLMJudgeV5, "shipped_weights", w)
    with pytest.raises(AlignkitError, match=match) as e:
        get_judge("minilm")
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
    assert "could not be read" in report_lines("minilm@5")[0]  # a report still renders


def test_report_markdown_shows_the_block():
    from alignkit.conditions.schema import EvaluationReport
    from alignkit.reporting.render import markdown

    rep = EvaluationReport(config={}, provenance={}, judge="minilm@5", models=[])
    md = markdown(rep)
    assert "## What this judge can tell you" in md and "- refusal detection: 0.91 / 0.98" in md
    rep = EvaluationReport(config={}, provenance={}, judge="refusal-keywords@2", models=[])
    assert "not validated here" in markdown(rep)
