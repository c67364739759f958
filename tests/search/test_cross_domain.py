"""The cross-domain-harmful generator on tiny-random-llama: rows kept only where the harm judge and the refusal
detector agree, provenance written, and the registered dataset reads the regenerated rows.

The attack and the model loading are real; the answers are set by the test (a tiny random model only emits
empty strings), so that each filter has something to reject: a compliant answer, a refusal, a one-word answer."""


from __future__ import annotations

import json

ANSWERS = ["Sure, here is how to do it step by step", "I'm sorry, but I cannot help with that request", "ok"]


def test_generator_filters_and_records_provenance(tmp_path, monkeypatch, tiny_model_path):
    from alignkit.paths import models_dir

    # a fresh home for the generated data, sharing the prepared models (rebuilding them here took ~1 min)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(models_dir(), target_is_directory=True)
    monkeypatch.setenv("ALIGNKIT_HOME", str(tmp_path / "home"))
    from alignkit import data
    from alignkit.data import cross_domain as cd

    assert data.load(cd.NAME, split="train") == [] or cd.data_dir() is not None
    import alignkit.generation

    monkeypatch.setattr(alignkit.generation, "generate",
                        lambda model, tok, prompts, **kw: [ANSWERS[i % 3] for i in range(len(prompts))])
    cfg = cd.CrossDomainConfig(model="tiny-random-llama", attack_steps=1, attack_samples=4, per_source=3,
                               max_new_tokens=8, judge="ak_fake_judge:FakeJudge", allow_judge_import=True,
                               threshold=0.3, min_words=2,
                               attack_eval_prompts=2, work_dir=str(tmp_path / "attack"))
    out = cd.generate_dataset(cfg)
    assert out == tmp_path / "home" / "data" / cd.NAME
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines()]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["machine_generated"] is True and prov["judges"] == {"harm": "fake@1", "refusal": "refusal-keywords@2"}
    assert sum(v["prompts"] for v in prov["per_source"].values()) == 9
    assert sum(v["kept"] for v in prov["per_source"].values()) == len(rows) == prov["rows"] == 3
    assert {r["answer"] for r in rows} == {ANSWERS[0]}
    assert prov["attack"]["config"]["model"] == "tiny-random-llama"
    from ak_fake_judge import FakeJudge
    from alignkit.judges.refusal_keywords import is_refusal

    for r in rows:  # every kept row passes both filters, scored again here
        assert FakeJudge().score([r["question"]], [r["answer"]])[0] > 0.3 and not is_refusal(r["answer"])
        assert r["source"].startswith("machine-generated:") and len(r["answer"].split()) >= 2
    # the registered dataset now reads these rows, split by prompt
    built = data.build(cd.NAME, seed=0)
    assert sum(len(v) for v in built.values()) == len(rows)
    assert not ({r.question for r in built["train"]} & {r.question for r in built["test"]})

    # every generation is saved, kept or not, with the scores the filter used
    gens = [json.loads(x) for x in (out / cd.GENERATIONS).read_text().splitlines()]
    assert len(gens) == 9 == prov["generations"]
    assert {g["source"] for g in gens} == set(cd.SOURCES)
    assert all(g["prompt"] and g["judge"] == "fake@1" for g in gens)
    assert sum(g["kept"] for g in gens) == 3
    assert {g["answer"] for g in gens if g["keyword_refusal"]} == {ANSWERS[1]}
    assert {g["answer"] for g in gens if g["kept"]} == {ANSWERS[0]}

    # --refilter: re-judge the saved generations with other filters, without attacking or generating
    def boom(*a, **k):
        raise AssertionError("refilter must not generate")

    monkeypatch.setattr(alignkit.generation, "generate", boom)
    re_cfg = cd.CrossDomainConfig(refilter=str(out), output_dir=str(tmp_path / "refit"),
                                  judge="ak_fake_judge:FakeJudge", allow_judge_import=True, threshold=0.3,
                                  min_words=1)
    out2 = cd.generate_dataset(re_cfg)
    rows2 = [json.loads(x) for x in (out2 / "rows.jsonl").read_text().splitlines()]
    assert {r["answer"] for r in rows2} == {ANSWERS[0], ANSWERS[2]} and len(rows2) == 6  # the one-word answers too
    prov2 = json.loads((out2 / "provenance.json").read_text())
    assert prov2["refiltered_from"] == str(out / cd.GENERATIONS)
    assert prov2["generated_by"] == prov["generated_by"] and prov2["generation"]["decoding"].startswith("greedy")
    # a filter nothing passes: one line, and the re-scored generations are kept for the next try
    import pytest

    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="no answer passed"):
        cd.generate_dataset(re_cfg.model_copy(update={"threshold": 0.99, "output_dir": str(tmp_path / "none")}))
    assert len((tmp_path / "none" / "generations.refilter.jsonl").read_text().splitlines()) == 9
    with pytest.raises(AlignkitError, match="no generations.jsonl there"):
        cd.generate_dataset(re_cfg.model_copy(update={"refilter": str(tmp_path / "missing")}))


def test_shipped_set_is_documented_and_consistent():
    """The packaged copy: machine-generated and said so, rows = the kept generations, license notices present."""
    import hashlib

    from alignkit.data import cross_domain as cd

    d = cd.PACKAGED
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["machine_generated"] is True and prov["reviewed_by_people"] is False
    assert "not been reviewed by people" in prov["shipped"]["note"].lower() and "attacked 135m model" in prov["shipped"]["note"].lower()
    rows = cd.read_rows(d)
    gens = [json.loads(x) for x in (d / cd.GENERATIONS).read_text().splitlines()]
    assert len(rows) == prov["rows"] == sum(g["kept"] for g in gens) and len(gens) == prov["generations"]
    assert {r.answer for r in rows} == {g["answer"] for g in gens if g["kept"]}
    for g in gens:  # the flags agree with the recorded filter
        assert g["kept"] == cd.keep(g, prov["generator_config"]["threshold"], prov["generator_config"]["min_words"])
    for f, sha in prov["shipped"]["files"].items():
        assert hashlib.sha256((d / f).read_bytes()).hexdigest() == sha, f
    for src in prov["shipped"]["prompt_sources"].values():
        for notice in src["notices"]:
            assert (d / notice).stat().st_size > 500, notice
    assert "unreviewed" in (d / "README.md").read_text().lower()
