"""The cross-domain-harmful generator on tiny-random-llama: rows kept only where the harm judge and the refusal
detector agree, provenance written, and the registered dataset reads the regenerated rows.

The attack and the model loading are real; the answers are set by the test (a tiny random model only emits
empty strings), so that each filter has something to reject: a compliant answer, a refusal, a one-word answer."""


from __future__ import annotations

import json

ANSWERS = ["Sure, here is how to do it step by step", "I'm sorry, but I cannot help with that request", "ok"]


def test_generator_filters_and_records_provenance(tmp_path, monkeypatch):
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
    assert prov["machine_generated"] is True and prov["judges"] == {"harm": "fake@1", "refusal": "refusal-keywords@1"}
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
