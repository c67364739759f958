"""Space files: strict validation (one-line errors before anything is written), conditional sampling, the
shipped spaces are valid for their configs."""

from __future__ import annotations

import pytest

from alignkit.attacks import AttackConfig
from alignkit.errors import AlignkitError
from alignkit.search.space import SPACES_DIR, load_space_file, parse_space

GOOD = {"params": {"lr": {"low": 1e-5, "high": 1e-3, "log": True}, "method": {"choices": ["full", "lora"]},
                   "lora_r": {"low": 2, "high": 8, "when": {"method": "lora"}}}}


@pytest.mark.parametrize("raw, message", [
    ({"params": {"learning_rate": {"low": 1e-5, "high": 1e-3}}}, "unknown parameter(s) learning_rate"),
    ({"params": {"lr": {"low": 1e-3, "high": 1e-5}}}, "inverted range"),
    ({"params": {"lr": {"low": 1e-4, "high": 1e-4}}}, "empty range"),
    ({"params": {"method": {"choices": []}}}, "empty choice list"),
    ({"params": {"method": {"choices": ["full", "qlora"]}}}, "method = 'qlora' is not accepted"),
    ({"params": {"lr": {"low": 0.0, "high": 1e-3, "log": True}}}, "log-scaled"),
    ({"params": {"lr": {"low": 1e-5, "high": 2.0}}}, "lr = 2.0 is not accepted"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}}, "fixed": {"bogus": 1}}, "unknown parameter(s) bogus"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3, "scale": 2}}}, "scale"),
    ({"params": {"lora_r": {"low": 2, "high": 8, "when": {"method": "lora"}}}}, "not a categorical parameter"),
    ({"params": {}}, "declares no parameters"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}}, "extra": {}}, "unknown section"),
])
def test_bad_spaces_are_one_line_errors(raw, message):
    with pytest.raises(AlignkitError) as exc:
        parse_space(raw, AttackConfig, source="s.yaml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_conditional_parameter_sampled_only_when_its_condition_holds():
    import optuna

    space = parse_space(GOOD, AttackConfig)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(12):
        t = study.ask()
        v = space.sample(t)
        assert ("lora_r" in v) == (v["method"] == "lora")
        assert 1e-5 <= v["lr"] <= 1e-3
        AttackConfig(**v)
        seen.add(v["method"])
        study.tell(t, 0.0)
    assert seen == {"full", "lora"}


def test_fingerprint_depends_on_content_only():
    a = parse_space(GOOD, AttackConfig, source="a.yaml")
    b = parse_space(GOOD, AttackConfig, source="b.yaml")
    c = parse_space({**GOOD, "fixed": {"max_steps": 5}}, AttackConfig)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_shipped_spaces_are_valid():
    from alignkit.defences import DEFENCES

    load_space_file(SPACES_DIR / "attack.yaml", AttackConfig)
    load_space_file(SPACES_DIR / "attack-quick.yaml", AttackConfig)
    for name in DEFENCES.names():  # every registered defence declares its space (and a quick one) next to it
        defence = DEFENCES.get(name)
        full, quick = defence.search_space_file(), defence.search_space_file("quick")
        assert full.name == f"{name}.yaml" and quick.name == f"{name}-quick.yaml"
        for f in (full, quick):
            s = load_space_file(f, defence.config_class, base={"defence": name}, allow_attacks=True)
            assert s.attacks and all(set(a) <= set(AttackConfig.model_fields) for a in s.attacks)


def test_a_defence_without_a_space_is_a_one_line_error(tmp_path, monkeypatch):
    from alignkit.defences import DEFENCES
    from alignkit.search.defence import DefenceSearchConfig, resolve

    assert DEFENCES.get("vaccine").search_space_file("no-such-preset").name == "vaccine.yaml"  # falls back
    monkeypatch.setattr(DEFENCES.get("vaccine"), "search_spaces_dir", tmp_path)
    with pytest.raises(AlignkitError, match="declares no search space; give one with --space"):
        resolve(DefenceSearchConfig(defence="vaccine", output_dir=str(tmp_path / "s")))


def test_presets_fill_only_what_the_user_did_not_set(tmp_path):
    from alignkit.search.attack import AttackSearchConfig
    from alignkit.search.attack import resolve as resolve_attack
    from alignkit.search.defence import DefenceSearchConfig
    from alignkit.search.defence import resolve as resolve_defence

    cfg, space, out, sig = resolve_attack(AttackSearchConfig(preset="quick", n_trials=3, output_dir=str(tmp_path)))
    assert cfg.n_trials == 3 and cfg.eval_prompts == 16 and cfg.max_new_tokens == 32  # explicit n_trials kept
    assert space.source.endswith("attack-quick.yaml") and space.params["max_steps"].high <= 25
    full = resolve_attack(AttackSearchConfig(output_dir=str(tmp_path)))
    assert full[0].n_trials == 20 and full[1].source.endswith("attack.yaml") and full[3] != sig
    cfg, space, attacks, _, _ = resolve_defence(DefenceSearchConfig(defence="repnoise", preset="quick"))
    assert cfg.n_trials == 5 and cfg.train_steps == 8 and len(attacks) == 1 and attacks[0]["max_steps"] == 12
    assert not (tmp_path / "search.json").exists()  # resolving writes nothing


def test_unknown_defence_and_bad_attack_grid_are_one_line(tmp_path):
    from alignkit.search.defence import DefenceSearchConfig
    from alignkit.search.defence import resolve as resolve_defence

    with pytest.raises(AlignkitError, match="unknown defence 'nope'"):
        resolve_defence(DefenceSearchConfig(defence="nope"))
    bad = tmp_path / "s.yaml"
    bad.write_text("params:\n  alpha: {low: 0.1, high: 2.0}\nattacks:\n  - {learning_rate: 1.0e-4}\n")
    with pytest.raises(AlignkitError, match=r"attacks\[0\]: unknown attack option\(s\) learning_rate"):
        resolve_defence(DefenceSearchConfig(defence="repnoise", space=str(bad)))


def test_results_name_the_resolved_judge_version(tmp_path):
    """results.json's provenance says which judge version scored the trials ("minilm" -> "minilm@3")."""
    import optuna

    from alignkit.harmfulness import judge_cache_name
    from alignkit.search import attack, defence

    want = judge_cache_name("minilm")
    assert want.startswith("minilm@")
    cfg, space, out, _ = attack.resolve(attack.AttackSearchConfig(preset="quick", output_dir=str(tmp_path / "a")))
    res = attack.summarize(optuna.create_study(direction="maximize"), cfg, space, out, "sqlite:///x", {})
    assert res.provenance["judge"] == want
    cfg, space, _, out, _ = defence.resolve(defence.DefenceSearchConfig(preset="quick", output_dir=str(tmp_path / "d")))
    res = defence.summarize(optuna.create_study(directions=defence.DIRECTIONS), cfg, space, out, "sqlite:///x", {})
    assert res.provenance["judge"] == want and res.base == {} and res.pareto == []
