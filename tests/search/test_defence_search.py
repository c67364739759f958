"""``alignkit search defence`` end to end on tiny-random-llama with RepNoise (real defences, attacks, capability
and trainability), the Pareto front / chosen model / report, and the capability guard."""

from __future__ import annotations

import json

import pytest

from search_support import TINY_OPTIONS


def _dominated(a, b) -> bool:
    """b dominates a (minimise harm, loss; maximise ROUGE-1)."""
    x, y = (a["values"][0], a["values"][1], -a["values"][2]), (b["values"][0], b["values"][1], -b["values"][2])
    return all(q <= p for p, q in zip(x, y)) and any(q < p for p, q in zip(x, y))


def test_defence_search_end_to_end(tmp_path, defence_space):
    from alignkit.attacks import AttackResult
    from alignkit.search import DefenceSearchConfig, search_defence

    out = tmp_path / "tune"
    res = search_defence(DefenceSearchConfig(**TINY_OPTIONS, defence="repnoise", output_dir=str(out), n_trials=2,
                                             space=str(defence_space), epsilon=10.0, train_steps=1,
                                             train_eval_size=2))
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["trials"]) == 2 and saved["objectives"] == ["worst_harmfulness", "stability_loss", "rouge1"]
    done = [t for t in saved["trials"] if t["state"] == "COMPLETE"]
    assert len(done) == 2
    for t in done:
        folder = out / "trials" / f"trial-{t['number']:04d}"
        card = json.loads((folder / "model" / "alignkit.json").read_text())
        assert card["defence"] == "repnoise" and card["config"]["lr"] == pytest.approx(t["params"]["lr"])
        assert card["config"]["alpha"] == pytest.approx(t["params"]["alpha"])
        run = AttackResult.model_validate_json((folder / "attacks" / "attack-0" / "results.json").read_text())
        assert run.config.model == str(folder / "model")  # the attack ran on this trial's defended model
        assert t["values"][0] == pytest.approx(run.final_harmfulness)  # worst over the one-attack grid
        assert t["values"][1] == pytest.approx(t["attrs"]["perplexity"] / t["attrs"]["base_perplexity"] - 1)
        assert 0.0 <= t["values"][2] <= 1.0
    front = {p["trial"] for p in saved["pareto"]}
    for t in done:  # the front is exactly the non-dominated trials
        assert (t["number"] in front) == (not any(_dominated(t, o) for o in done if o is not t))
    chosen = saved["chosen"]
    assert chosen["trial"] in front
    assert chosen["worst_harmfulness"] == min(p["worst_harmfulness"] for p in saved["pareto"])
    assert (out / "chosen-model").resolve() == (out / "trials" / f"trial-{chosen['trial']:04d}" / "model").resolve()
    assert (out / "chosen-model" / "config.json").exists()
    html = (out / "report.html").read_text()
    assert "Pareto front" in html and "data:image/png;base64" in html and f"trial {chosen['trial']}" in html
    assert res.pareto and res.chosen.trial == chosen["trial"]
    # the reference point: the undefended model under the same attack and trainability recipe, measured once
    ref = saved["base"]["chat"]
    base_run = AttackResult.model_validate_json((out / "base" / "attack-0-chat" / "results.json").read_text())
    trial_run = AttackResult.model_validate_json(
        (out / "trials" / f"trial-{done[0]['number']:04d}" / "attacks" / "attack-0" / "results.json").read_text())
    assert base_run.config.model == "tiny-random-llama"
    same = {"model", "output_dir", "security_vector"}
    assert ({k: v for k, v in base_run.config.model_dump().items() if k not in same}
            == {k: v for k, v in trial_run.config.model_dump().items() if k not in same})
    assert ref["harmfulness"] == [pytest.approx(base_run.final_harmfulness)]
    assert ref["worst_harmfulness"] == pytest.approx(base_run.final_harmfulness) and 0.0 <= ref["rouge1"] <= 1.0
    assert ref["perplexity"] == pytest.approx(done[0]["attrs"]["base_perplexity"])
    assert "undefended model (chat; reference)" in html
    stamp = (out / "base" / "attack-0-chat" / "results.json").stat().st_mtime_ns
    again = search_defence(DefenceSearchConfig(**TINY_OPTIONS, defence="repnoise", output_dir=str(out), n_trials=2,
                                               space=str(defence_space), epsilon=10.0, train_steps=1,
                                               train_eval_size=2))  # re-running: read back, not measured again
    assert again.base == saved["base"]
    assert (out / "base" / "attack-0-chat" / "results.json").stat().st_mtime_ns == stamp


def test_capability_guard_skips_attacks(tmp_path, defence_space, monkeypatch):
    """A defended model beyond the capability bound is not attacked nor fine-tuned; the undefended model's
    perplexity is measured for real, the defended one is reported 3x higher (the guard's input)."""
    from alignkit.search import DefenceSearchConfig, search_defence
    from alignkit.search import common, defence

    real = common.measure_perplexity
    monkeypatch.setattr(defence, "measure_perplexity", lambda *a, **k: 3.0 * real(*a, **k))
    out = tmp_path / "guard"
    res = search_defence(DefenceSearchConfig(**TINY_OPTIONS, defence="repnoise", output_dir=str(out), n_trials=1,
                                             space=str(defence_space), epsilon=0.25, train_steps=1,
                                             train_eval_size=2))
    (t,) = res.trials
    assert t.state == "PRUNED" and t.attrs["guard"] == "stability" and t.attrs["stability_loss"] > 0.25
    assert (out / "trials" / "trial-0000" / "model" / "config.json").exists()
    assert not (out / "trials" / "trial-0000" / "attacks").exists()
    assert "rouge1" not in t.attrs and res.pareto == [] and res.chosen is None
    assert res.counts["complete"] == 1  # a guarded trial counts as a finished trial of the study
    assert "capability guard" in (out / "report.html").read_text()
    assert res.base == {} and not (out / "base" / "attack-0-chat").exists()  # no front, no reference attack
