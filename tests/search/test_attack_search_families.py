"""``alignkit search attack --attack NAME``: a family other than SFT searched with its own space, under the same
capability guard (prefill changes no weights: capability loss 0, nothing measured), on tiny-random-llama."""

from __future__ import annotations

import json

from search_support import TINY_OPTIONS, run_cli

PREFILL_SPACE = """
params:
  source: {choices: [answer, opener]}
  template: {choices: [chat, qa]}
fixed:
  prefill_tokens: [0, 2, 4]
"""


def _opts(**over) -> list[str]:
    out = []
    for k, v in {**TINY_OPTIONS, **over}.items():
        flag = f"--{k.replace('_', '-')}"
        out += [flag] if v is True else [flag, str(v)]
    return out


def test_search_prefill_two_trials(tmp_path, monkeypatch, capsys):
    from alignkit.attacks import AttackResult
    from alignkit.attacks.prefill import PrefillConfig
    from alignkit.search import common

    measured = []
    real = common.measure_perplexity
    monkeypatch.setattr(common, "measure_perplexity", lambda *a, **k: measured.append(a) or real(*a, **k))
    space = tmp_path / "space.yaml"
    space.write_text(PREFILL_SPACE)
    out = tmp_path / "search"
    code, stdout, err = run_cli(["search", "attack", "--attack", "prefill", *_opts(max_new_tokens=6),
                                 "--n-trials", "2", "--space", space, "--output-dir", out], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["complete"] == 2
    for t in res["trials"]:
        run = AttackResult.model_validate_json((out / "trials" / f"trial-{t['number']:04d}" / "results.json")
                                               .read_text())
        assert isinstance(run.config, PrefillConfig) and run.config.prefill_tokens == [0, 2, 4]
        assert run.config.source == t["params"]["source"] and run.config.template == t["params"]["template"]
        assert t["values"][0] == run.final_harmfulness
        assert t["attrs"]["capability_loss"] == 0.0 and t["attrs"]["budget_label"] == "prefill tokens"
    assert measured == []  # no weights changed: the capability guard measures nothing
    assert res["worst_bounded"] is not None
    assert json.loads((out / "search.json").read_text())["signature"]["attack"] == "prefill"


def test_search_attack_family_bad_input(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    code, _, err = run_cli(["search", "attack", "--attack", "nope", *_opts(), "--output-dir", out], monkeypatch,
                           capsys)
    assert code == 2 and "unknown attack 'nope'; choose one of:" in err and "prefill" in err
    # the shipped prefill space fixes 40-token prefills: they must fit the search's --max-new-tokens
    code, _, err = run_cli(["search", "attack", "--attack", "prefill", *_opts(max_new_tokens=8), "--output-dir",
                            out], monkeypatch, capsys)
    assert code == 2 and "--prefill-tokens 40 does not fit --max-new-tokens 8" in err
    assert not out.exists()


def test_shipped_prefill_spaces_load():
    from alignkit.attacks.base import family_class_by_name, family_config_class
    from alignkit.search.space import load_space_file

    cls = family_class_by_name("prefill")
    for preset, tokens in ((None, 50), ("quick", 32)):  # the search defaults / the quick preset's max_new_tokens
        f = cls.search_space_file(preset)
        assert f is not None and f.parent.name == "spaces" and f.parent.parent.name == "attacks"
        space = load_space_file(f, family_config_class("prefill"), base={"max_new_tokens": tokens})
        assert set(space.params) >= {"source", "template"}
    assert family_class_by_name("sft").search_space_file().name == "attack.yaml"
