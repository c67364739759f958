"""``alignkit search attack`` end to end on tiny-random-llama (real attacks, real capability measure), its
results and report, continuing a study, and the bad-input paths (one line, exit 2, study untouched)."""

from __future__ import annotations

import json

import pytest

from search_support import TINY_OPTIONS, run_cli


_cli = run_cli


def _opts() -> list[str]:
    out = []
    for k, v in TINY_OPTIONS.items():
        flag = f"--{k.replace('_', '-')}"
        out += [flag] if v is True else [flag, str(v)]
    return out


def test_attack_search_end_to_end_and_continue(tmp_path, attack_space, monkeypatch, capsys):
    import optuna

    from alignkit.attacks import AttackResult
    from alignkit.search import AttackSearchConfig, search_attack

    out = tmp_path / "search"
    cfg = AttackSearchConfig(**TINY_OPTIONS, output_dir=str(out), n_trials=2, space=str(attack_space), epsilon=0.5,
                             reference_model="tiny-random-llama")
    res = search_attack(cfg)
    assert res.counts["complete"] == 2 and len(res.trials) == 2
    values = {t.number: t.values[0] for t in res.trials}
    for t in res.trials:
        # every trial is an ordinary attack run folder, and the trial's value is that run's final harmfulness
        run = AttackResult.model_validate_json((out / "trials" / f"trial-{t.number:04d}" / "results.json").read_text())
        assert run.final_harmfulness == pytest.approx(t.values[0])
        assert run.config.lr == pytest.approx(t.params["lr"]) and run.config.method == t.params["method"]
        assert run.total_steps == t.params["max_steps"]
        assert ("lora_r" in t.params) == (t.params["method"] == "lora")
        a = t.attrs
        assert a["capability_loss"] == pytest.approx(a["perplexity"] / a["base_perplexity"] - 1)
        assert a["within_epsilon"] == (a["capability_loss"] <= 0.5)
        assert not (out / "trials" / f"trial-{t.number:04d}" / "model").exists()  # dropped after measuring
        assert not (out / "trials" / f"trial-{t.number:04d}" / "checkpoints").exists()
    assert res.worst_raw.harmfulness == max(values.values())
    bounded = [t for t in res.trials if t.attrs["capability_loss"] <= 0.5]
    if bounded:
        assert res.worst_bounded.harmfulness == max(t.values[0] for t in bounded)
        assert res.worst_bounded.capability_loss <= 0.5
    else:
        assert res.worst_bounded is None
    saved = json.loads((out / "results.json").read_text())
    assert saved["worst_raw"]["trial"] == res.worst_raw.trial and "steps_to_break" in saved["worst_raw"]
    assert saved["provenance"]["model"] == "tiny-random-llama" and saved["provenance"]["versions"]
    html = (out / "report.html").read_text()
    assert "Capability-bounded worst case" in html and "data:image/png;base64" in html
    assert res.mean_overhead_s is not None and res.mean_overhead_s < 30  # loose: search's own cost per trial
    # --reference-model: the worst trial's exact attack on that model (here the same model: the same result)
    ref = {r["trial"]: r for r in saved["reference"]["trials"]}
    assert res.worst_raw.trial in ref and saved["reference"]["model"] == "tiny-random-llama"
    w = res.worst_raw.trial
    ref_run = AttackResult.model_validate_json((out / "reference" / f"trial-{w:04d}" / "results.json").read_text())
    trial_run = AttackResult.model_validate_json((out / "trials" / f"trial-{w:04d}" / "results.json").read_text())
    other = {"output_dir", "save_model"}
    assert ({k: v for k, v in ref_run.config.model_dump().items() if k not in other}
            == {k: v for k, v in trial_run.config.model_dump().items() if k not in other})
    assert ref[w]["harmfulness"] == pytest.approx(res.worst_raw.harmfulness)  # deterministic on CPU
    assert "on the reference model" in html

    # the same command with a larger budget continues the study (first trials kept as they were)
    code, stdout, err = _cli(["search", "attack", *_opts(), "--output-dir", str(out), "--n-trials", "3",
                              "--space", str(attack_space), "--epsilon", "0.5"], monkeypatch, capsys)
    assert code == 0, err
    study = optuna.load_study(study_name="alignkit-search", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3
    assert {t.number: t.values[0] for t in trials[:2]} == values
    assert stdout.strip().endswith("results.json")


def test_bad_input_is_one_line_and_leaves_the_study_untouched(tmp_path, attack_space, monkeypatch, capsys):
    from alignkit.search import AttackSearchConfig, search_attack

    out = tmp_path / "search"
    search_attack(AttackSearchConfig(**TINY_OPTIONS, output_dir=str(out), n_trials=1, space=str(attack_space)))
    db = out / "study.db"
    before = (db.read_bytes(), (out / "results.json").read_text(), (out / "search.json").read_text())
    capsys.readouterr()

    def run(*extra: str, space: str | None = None, folder=out) -> tuple[int, str]:
        code, _, err = _cli(["search", "attack", *_opts(), "--output-dir", str(folder), "--n-trials", "2",
                             "--space", space or str(attack_space), *extra], monkeypatch, capsys)
        return code, err

    other = tmp_path / "other.yaml"  # a valid space, but not the study's
    other.write_text(attack_space.read_text().replace("high: 1.0e-2", "high: 2.0e-2"))
    code, err = run(space=str(other))
    assert code == 2 and err.startswith("error: ") and "other settings" in err and err.count("\n") == 1
    code, err = run("--storage", f"sqlite:///{db}", space=str(other))  # same study through --storage
    assert code == 2 and "other settings" in err
    code, err = run("--storage", f"sqlite:///{db}", space=str(other), folder=tmp_path / "new")  # new folder
    assert code == 2 and "study in this storage was created with other settings" in err
    assert not (tmp_path / "new").exists()

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("params:\n  learning_rate: {low: 1.0e-5, high: 1.0e-3}\n")
    code, err = run(space=str(unknown))
    assert code == 2 and "unknown parameter(s) learning_rate" in err and err.count("\n") == 1
    inverted = tmp_path / "inverted.yaml"
    inverted.write_text("params:\n  lr: {low: 1.0e-3, high: 1.0e-5}\n")
    code, err = run(space=str(inverted))
    assert code == 2 and "inverted range" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("params:\n  max_steps: {low: 5, high: 5}\n")
    code, err = run(space=str(empty))
    assert code == 2 and "empty range" in err
    code, err = run("--storage", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # forgot / changed --storage
    assert code == 2 and "pass the same --storage" in err and not (tmp_path / "elsewhere.db").exists()
    fresh = tmp_path / "fresh"  # a new search pointed at a storage that cannot be opened
    code, err = run("--storage", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", folder=fresh)
    assert code == 2 and "cannot open storage" in err and err.count("\n") == 1
    code, err = run("--storage", "nonsense-url", folder=fresh)
    assert code == 2 and "cannot open storage" in err
    code, err = run("--storage", "postgresql://nobody@127.0.0.1:1/none", folder=fresh)
    assert code == 2 and "cannot open storage" in err and err.count("\n") == 1
    assert not fresh.exists()

    # an attack dataset in the space that has no rows (the cross-domain set before it is generated)
    from alignkit.data import base as data_base
    from alignkit.data import cross_domain

    monkeypatch.setattr(cross_domain, "user_dir", lambda: tmp_path / "nothing")
    monkeypatch.setattr(cross_domain, "PACKAGED", tmp_path / "nothing")
    data_base._build_cached.cache_clear()
    data_base.info.cache_clear()
    xd = tmp_path / "xd.yaml"
    xd.write_text(attack_space.read_text() + "  dataset: cross-domain-harmful\n")
    code, err = run(space=str(xd))
    data_base._build_cached.cache_clear()
    data_base.info.cache_clear()
    assert code == 2 and "'cross-domain-harmful' in the search space has no rows" in err and "alignkit.data" in err
    # a judge given as module:Class runs code: refused unless allowed
    code, _, err = _cli(["search", "attack", *[o for o in _opts() if o != "--allow-judge-import"], "--output-dir",
                         str(out), "--n-trials", "2", "--space", str(attack_space)], monkeypatch, capsys)
    assert code == 2 and "--allow-judge-import" in err and err.count("\n") == 1

    assert ((db.read_bytes(), (out / "results.json").read_text(), (out / "search.json").read_text()) == before)
    assert not (tmp_path / "no").exists()
