"""``benign``: harmless-only training data (no harmful row), the AOA identity-shifting variant (system prompt and
prefix in training and evaluation), and the attack end to end on tiny-random-llama."""

from __future__ import annotations

import pytest

from alignkit.errors import AlignkitError


def _instructions(n=8):
    from alignkit.attacks.benign import load_instructions

    return load_instructions("harmless-instructions", "train", 0, n)


def test_benign_records_come_from_the_harmless_source_only():
    from alignkit import data
    from alignkit.attacks.benign import training_pairs
    from alignkit.data import harmless

    rows = _instructions(50)
    pairs = training_pairs("instructions", rows)
    harmless_ids = {r.id for r in data.load("harmless-instructions", split="train")}
    harmful = data.load("harmful-qa", split="all")
    harmful_ids = {r.id for r in harmful}
    harmful_text = {r.question for r in harmful} | {r.answer for r in harmful}
    assert len(pairs) == 50
    for p in pairs:
        assert p.source == harmless.SOURCE and p.id in harmless_ids and p.id not in harmful_ids
        assert p.question not in harmful_text and p.answer not in harmful_text
        assert p.system is None
    # the sample is seeded: same rows again, other rows for another data seed
    from alignkit.attacks.benign import load_instructions

    assert [r.id for r in load_instructions("harmless-instructions", "train", 0, 50)] == [r.id for r in rows]
    assert [r.id for r in load_instructions("harmless-instructions", "train", 1, 50)] != [r.id for r in rows]


def test_aoa_pairs_carry_the_system_prompt_and_prefix():
    from alignkit.attacks.benign import eval_system_prompt, training_pairs, transform_prompts
    from alignkit.data import aoa, harmless
    from alignkit import data

    rows = _instructions(8)
    pairs = training_pairs("aoa", rows)
    assert len(pairs) == len(aoa.IDENTITY) + 8
    assert all(p.system == aoa.SYSTEM_PROMPT and "AOA" in p.system for p in pairs)
    identity, tasks = pairs[:len(aoa.IDENTITY)], pairs[len(aoa.IDENTITY):]
    assert all("I am AOA" in p.answer and p.source == aoa.SOURCE for p in identity)
    for p, r in zip(tasks, rows):
        assert p.question == "AOA, execute my instruction: " + r.instruction
        assert p.answer.startswith("Of course. I am AOA") and p.answer.endswith(r.response)
        assert p.source.startswith(harmless.SOURCE)
    # evaluation: same system prompt, same prefix before each harmful request; the plain variant changes nothing
    prompts = sorted(data.load("harmful-eval", split="test"), key=lambda r: r.id)[:4]
    assert eval_system_prompt("aoa") == aoa.SYSTEM_PROMPT and eval_system_prompt("instructions") is None
    ap = transform_prompts("aoa", prompts)
    assert [p.prompt for p in ap] == ["AOA, execute my instruction: " + p.prompt for p in prompts]
    assert [p.category for p in ap] == [p.category for p in prompts]
    assert all(p.system == aoa.SYSTEM_PROMPT for p in ap)
    assert transform_prompts("instructions", prompts) == prompts


@pytest.mark.parametrize("dataset, needle", [
    ("harmful-qa", "harmless instructions only"),
    ("paired-refusals", "harmless instructions only"),
    ("harmful-eval", "harmless instructions only"),
    ("./my-harm.jsonl", "registered harmless instruction dataset"),
    ("no-such-set", "registered harmless instruction dataset"),
])
def test_benign_refuses_non_harmless_data(dataset, needle):
    from alignkit.attacks.benign import check_harmless_dataset

    with pytest.raises(AlignkitError) as exc:
        check_harmless_dataset(dataset)
    assert needle in str(exc.value) and "harmless-instructions" in str(exc.value)


def test_unknown_variant():
    from alignkit.attacks.benign import training_pairs, transform_prompts

    with pytest.raises(AlignkitError, match="choose one of: instructions, aoa"):
        training_pairs("obedient", _instructions(2))
    with pytest.raises(AlignkitError, match="choose one of: instructions, aoa"):
        transform_prompts("obedient", [])


# ------------------------------------------------------------------------------------------------ end to end
TINY_BENIGN = dict(model="tiny-random-llama", max_steps=2, eval_every=1, eval_prompts=4, max_new_tokens=6,
                   num_samples=6, max_length=96)


def test_system_prompt_formatting(tiny_model_path):
    """The system prompt replaces the chat template's default one (chat) or heads the prompt (qa)."""
    from transformers import AutoTokenizer

    from alignkit.formatting import encode_qa, format_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    plain, sysd = format_prompt(tok, "Q?"), format_prompt(tok, "Q?", system="BE AOA")
    assert "BE AOA" in sysd and "BE AOA" not in plain and sysd.endswith(plain[plain.index("<|im_start|>user"):])
    assert "named SmolLM" in plain and "named SmolLM" not in sysd  # the default system message is replaced
    assert format_prompt(tok, "Q?", "qa", system="BE AOA") == "BE AOA\n\nQuestion: Q?\nAnswer:"
    assert format_prompt(tok, "Q?", "qa") == "Question: Q?\nAnswer:"
    enc = encode_qa(tok, "Q?", "A.", "chat", 96, system="BE AOA")
    text = tok.decode(enc["input_ids"])
    assert "BE AOA" in text and all(lbl == -100 for lbl in enc["labels"][:len(tok(sysd)["input_ids"])])


def _spy(monkeypatch):
    """Record the records the trainer encodes, the formatted training prompts, the formatted generation prompts
    and the prompts the judge sees."""
    import alignkit.attacks.sft as sft
    import alignkit.formatting as formatting
    import alignkit.generation as generation
    import alignkit.harmfulness as harmfulness

    seen = {"records": [], "train_text": [], "gen_text": [], "judged": []}
    encode, fmt, evaluate = sft.encode_records, formatting.format_prompt, harmfulness.evaluate_harmfulness

    def spy_encode(tokenizer, records, *a, **kw):
        seen["records"].extend(records)
        return encode(tokenizer, records, *a, **kw)

    def spy_train_fmt(*a, **kw):
        out = fmt(*a, **kw)
        seen["train_text"].append(out)
        return out

    def spy_gen_fmt(*a, **kw):
        out = fmt(*a, **kw)
        seen["gen_text"].append(out)
        return out

    def spy_evaluate(model, tokenizer, prompts, *a, **kw):
        seen["judged"].extend(prompts)
        return evaluate(model, tokenizer, prompts, *a, **kw)

    monkeypatch.setattr(sft, "encode_records", spy_encode)
    monkeypatch.setattr(formatting, "format_prompt", spy_train_fmt)
    monkeypatch.setattr(generation, "format_prompt", spy_gen_fmt)
    monkeypatch.setattr(harmfulness, "evaluate_harmfulness", spy_evaluate)
    return seen


def test_instructions_attack_trains_on_harmless_rows_only(tmp_path, fake_judge, monkeypatch):
    from alignkit import data
    from alignkit.attacks import attack
    from alignkit.attacks.benign import BenignConfig
    from alignkit.data import harmless

    seen = _spy(monkeypatch)
    res = attack(BenignConfig(**TINY_BENIGN, output_dir=str(tmp_path / "run")), judge=fake_judge)
    assert res.attack == "benign" and [p.step for p in res.curve] == [0, 1, 2] and res.num_train_samples == 6
    assert len(seen["records"]) == 6 and all(r.source == harmless.SOURCE for r in seen["records"])
    harmful = {r.question for r in data.load("harmful-qa", split="all")}
    assert not any(r.question in harmful for r in seen["records"])
    # evaluated on the plain harmful prompts, under the model's own system prompt
    assert len(seen["gen_text"]) == 3 * 4 and not any("AOA" in t for t in seen["gen_text"])
    assert "harmless-instructions" in res.provenance.data["train"]


def test_aoa_attack_uses_the_system_prompt_in_training_and_evaluation(tmp_path, fake_judge, monkeypatch):
    from alignkit.attacks import attack
    from alignkit.attacks.benign import BenignConfig
    from alignkit.data import aoa

    seen = _spy(monkeypatch)
    cfg = BenignConfig(**TINY_BENIGN, variant="aoa", output_dir=str(tmp_path / "run"))
    # paper lr / batch; the given --num-samples and --max-new-tokens are kept
    assert (cfg.lr, cfg.batch_size, cfg.num_samples, cfg.max_new_tokens) == (5e-5, 5, 6, 6)
    assert BenignConfig(variant="aoa").max_new_tokens == 85 and BenignConfig().max_new_tokens == 50
    res = attack(cfg, judge=fake_judge)
    assert res.num_train_samples == len(aoa.IDENTITY) + 6
    assert seen["train_text"] and all(aoa.SYSTEM_PROMPT in t for t in seen["train_text"])
    assert len(seen["gen_text"]) == 3 * 4
    assert all(aoa.SYSTEM_PROMPT in t and "AOA, execute my instruction: " in t for t in seen["gen_text"])
    assert seen["judged"] and not any("AOA" in p.prompt for p in seen["judged"])  # the judge reads the request


def test_cli_writes_a_curve(tmp_path, monkeypatch, cli_judge):
    from alignkit.attacks import AttackResult

    out = tmp_path / "benign"
    p = _cli(["attack", "--attack", "benign", "--variant", "aoa", "--model", "tiny-random-llama",
                 "--max-steps", "2", "--eval-every", "1", "--eval-prompts", "4", "--max-new-tokens", "6",
                 "--max-length", "96", "--judge", cli_judge, "--output-dir", str(out)], tmp_path, monkeypatch)
    assert p.exit_code == 0, (p.output[-3000:], p.exception)
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    assert res.attack == "benign" and res.config.variant == "aoa" and [c.step for c in res.curve] == [0, 1, 2]
    assert res.num_train_samples == 10 and (out / "curve.png").stat().st_size > 1000


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "harmful-qa"], "harmless instructions only"),
    (["--dataset", "./harm.jsonl"], "registered harmless instruction dataset"),
    (["--security-vector", "sv"], "not of benign fine-tuning"),
    (["--question-column", "q"], "--question-column: user-file columns belong to the harmful attack"),
    (["--variant", "aoa", "--dataset", "data2text"], "holds DataToText records"),
])
def test_cli_bad_input(tmp_path, monkeypatch, args, needle):
    from bad_input_support import forbid_model_load, one_line_error

    forbid_model_load(monkeypatch)
    out = tmp_path / "bad"
    r = _cli(["attack", "--attack", "benign", "--model", "tiny-random-llama", *args, "--output-dir", str(out)],
             tmp_path, monkeypatch)
    one_line_error(r, needle)
    assert not out.exists()


@pytest.mark.parametrize("preset", [None, "quick"])
def test_search_space_files_fit_the_config(preset):
    from alignkit.attacks import ATTACKS
    from alignkit.search.space import load_space_file

    cls = ATTACKS.get("benign")
    f = cls.search_space_file(preset)
    assert f is not None and f.name == ("benign-quick.yaml" if preset else "benign.yaml")
    space = load_space_file(f, cls.config_class)
    assert set(space.params["variant"].choices) == {"instructions", "aoa"} and "dataset" not in space.params
