"""Generalization's cross-domain half: `evaluate` attacks with the generated `cross-domain-harmful` set by default
when it has rows, an explicit --cross-domain-data wins, 'none' turns it off, and an empty set skips with a note.

The generated set is replaced by a small stand-in written by the test (rows in the generator's format), so that
the test does not depend on the shipped rows; the attacks are real (tiny-random-llama)."""

from __future__ import annotations

import json
import shutil

import pytest

from alignkit.errors import AlignkitError

TINY = dict(eval_prompts=2, max_new_tokens=4, attack_lrs=[1e-4], attack_samples=[4], attack_steps=1, eval_every=1,
            generalization_samples=4, attack_checkpoints=False, judge="refusal-keywords",
            conditions=["generalization"], attack_max_length=32)


def _rows(n: int, tag: str) -> str:
    return "".join(json.dumps({"id": f"{tag}{i}", "source": f"machine-generated:cross-domain-harmful:{tag}",
                               "question": f"{tag} question number {i} about something harmful?",
                               "answer": f"Sure, here is {tag} answer {i} with several words", "category": "misc",
                               "harm_score": 0.9}) + "\n" for i in range(n))


@pytest.fixture
def generated(tmp_path, monkeypatch):
    """Point the cross-domain-harmful loader at a folder of the test's; returns a setter for its rows."""
    from alignkit.data import cross_domain as cd

    folder = tmp_path / "xd"
    folder.mkdir()
    monkeypatch.setattr(cd, "user_dir", lambda: folder)
    monkeypatch.setattr(cd, "PACKAGED", tmp_path / "no-packaged-copy")

    def set_rows(text: str) -> None:
        (folder / "rows.jsonl").write_text(text)
        cd._build_cache_clear()

    yield set_rows
    cd._build_cache_clear()


def test_resolve_cross_domain(generated, tmp_path):
    from alignkit.conditions.generalization import GENERATED, resolve_cross_domain

    generated("")
    src, note = resolve_cross_domain("auto")
    assert src is None and "has no rows" in note and "python -m alignkit.data.cross_domain" in note
    with pytest.raises(AlignkitError, match="no rows"):
        resolve_cross_domain(GENERATED)  # named explicitly while empty: an error, not a silent skip
    generated(_rows(10, "gen"))
    assert resolve_cross_domain("auto") == (GENERATED, None)
    assert resolve_cross_domain(GENERATED) == (GENERATED, None)
    user = str(tmp_path / "mine.jsonl")
    assert resolve_cross_domain(user) == (user, None)  # an explicit source wins over the generated set
    for off in ("none", "None", "off", "", None):
        src, note = resolve_cross_domain(off)
        assert src is None and "turned off" in note


def test_evaluate_default_explicit_and_empty(generated, tmp_path, tiny_model_path):
    from alignkit.conditions import EvaluateConfig, evaluate

    generated(_rows(12, "gen"))
    copy = shutil.copytree(tiny_model_path, tmp_path / "copy")  # a defended model beside the base
    out = tmp_path / "ev"
    base = dict(model=[str(copy)], label=["copy"], base=tiny_model_path, output_dir=str(out), **TINY)

    # 1. default ('auto'): the generated set is picked up and attacked with
    assert EvaluateConfig(**base).cross_domain_data == "auto"
    rep = evaluate(EvaluateConfig(**base))
    g = rep.generalization
    assert g.cross_domain_source == "cross-domain-harmful" and len(g.cross_domain) == 2  # the base and "copy"
    assert {r.model for r in g.cross_domain} == {"base", "copy"}
    for r in g.cross_domain:  # the same attack on both
        assert r.spec.dataset == "cross-domain-harmful" and len(r.curve) == 2
    assert g.cross_domain[0].spec.key == g.cross_domain[1].spec.key
    # the base attacked the same way: the half says whether the defended model ends below it
    assert g.verdicts[0].cross_domain_less_than_base is not None
    assert {r.model for r in g.in_domain} == {"base", "copy"}
    assert g.verdicts[0].in_domain_less_than_base is not None
    assert "attacked base" in g.verdicts[0].detail
    cfg = json.loads((next(out.glob("attacks/cross-domain-*/copy/*")) / "config.json").read_text())
    assert cfg["dataset"] == "cross-domain-harmful"
    assert g.verdicts[0].cross_domain != "skipped"
    assert any("machine-generated" in n for n in g.notes)

    # 2. an explicit --cross-domain-data wins (a user file with other rows)
    user = tmp_path / "user.jsonl"
    user.write_text(_rows(6, "user"))
    rep = evaluate(EvaluateConfig(**{**base, "cross_domain_data": str(user)}))
    g = rep.generalization
    assert g.cross_domain_source == str(user) and {r.spec.dataset for r in g.cross_domain} == {str(user)}

    # 3. turned off
    rep = evaluate(EvaluateConfig(**{**base, "cross_domain_data": "none"}))
    assert rep.generalization.cross_domain == [] and rep.generalization.verdicts[0].cross_domain == "skipped"
    assert any("turned off" in n for n in rep.generalization.notes)

    # 4. the generated set is empty: skipped with the note (in-domain still runs, reused from step 1)
    generated("")
    rep = evaluate(EvaluateConfig(**base))
    g = rep.generalization
    assert g.cross_domain == [] and g.cross_domain_source is None and g.verdicts[0].cross_domain == "skipped"
    assert g.in_domain and any("cross-domain skipped" in n and "has no rows" in n for n in g.notes)

    # 5. ... and naming it explicitly while empty is one line before any attack
    with pytest.raises(AlignkitError, match="cross-domain-harmful: the dataset has no rows"):
        evaluate(EvaluateConfig(**{**base, "cross_domain_data": "cross-domain-harmful", "output_dir":
                                   str(tmp_path / "ev2")}))
    assert not list((tmp_path / "ev2").glob("attacks/*"))
