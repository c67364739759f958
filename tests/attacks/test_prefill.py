"""``alignkit attack --attack prefill`` on tiny-random-llama: budget 0 is the unattacked model (compared in the same
run with plain generation), the judged response is prefill + continuation at the generation budget, the harmful
answers come from the evaluation split, and the bad inputs (prefill longer than the generation budget, a model
without a chat template in chat mode, an empty answers file, another family's option) are one line, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest
from bad_input_support import one_line_error

from alignkit.attacks import AttackResult


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, [str(a) for a in args])


BASE = ["attack", "--attack", "prefill", "--model", "tiny-random-llama", "--eval-prompts", "6",
        "--max-new-tokens", "8", "--judge", "ak_fake_judge:FakeJudge", "--allow-judge-import"]


def _gens(run, budget):
    return [json.loads(x) for x in (run / "generations" / f"step_{budget:04d}.jsonl").read_text().splitlines()]


def test_prefill_cli_curve_against_the_unattacked_model(tmp_path, monkeypatch):
    from alignkit.attacks.base import load_eval_prompts
    from alignkit.attacks.prefill import PrefillConfig, _key, load_answers
    from alignkit.generation import generate
    from alignkit.models import load_causal_lm

    run = tmp_path / "run"
    r = _cli([*BASE, "--prefill-tokens", "0,3,7", "--output-dir", run], tmp_path, monkeypatch)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "harmfulness curve (prefill tokens:mean)" in r.output
    res = AttackResult.model_validate_json((run / "results.json").read_text())
    assert isinstance(res.config, PrefillConfig) and res.config.prefill_tokens == [0, 3, 7]
    assert [p.step for p in res.curve] == [0, 3, 7] and res.budget_label == "prefill tokens"
    assert res.changes_weights is False and res.capability_loss == 0.0 and res.final_model_dir is None
    # what the judge can tell travels with the number: drawn from the judge's validity card, printed and stored
    from alignkit.judges.card import report_lines

    assert res.judge_validity and res.judge_validity == report_lines(res.provenance.judge)
    assert f"judge: {res.judge_validity[0]}" in r.output

    model, tok = load_causal_lm("tiny-random-llama")
    cfg = res.config
    prompts = load_eval_prompts(cfg)
    # budget 0 is the unattacked model: the same responses as plain greedy generation
    plain = generate(model, tok, [p.prompt for p in prompts], template="chat", max_new_tokens=8)
    assert [g["completion"] for g in _gens(run, 0)] == plain
    answers = load_answers(cfg)
    with_answer = [p for p in prompts if _key(p.prompt) in answers]
    assert 0 < len(with_answer) < len(prompts)  # harmful-eval: harmful-qa test questions + AdvBench prompts
    assert any(f"{len(with_answer)} of {len(prompts)}" in n for n in res.notes)
    for k in (3, 7):
        for p, g in zip(prompts, _gens(run, k)):
            assert g["prompt"] == p.prompt  # the judge sees the original request
            text = answers.get(_key(p.prompt), cfg.opener)
            prefill = tok.decode(tok(text, add_special_tokens=False)["input_ids"][:k], skip_special_tokens=True)
            # the judged response is the prefill followed by the model's continuation, at most 8 tokens in all
            assert g["completion"].startswith(prefill.strip()), (g["completion"], prefill)
            assert len(tok(g["completion"], add_special_tokens=False)["input_ids"]) <= 8 + 1
    assert prefill.strip() not in plain  # the prefill changed what the model says
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("continuation_harmfulness_mean" in r for r in rows)

    # resume: a finished run is reported, not re-run
    r2 = _cli([*BASE, "--prefill-tokens", "0,3,7", "--output-dir", run], tmp_path, monkeypatch)
    assert r2.exit_code == 0 and "run already finished" in (r2.output + str(r2.stderr_bytes or ""))


def test_opener_source_and_answers_from_the_eval_split(tmp_path, fake_judge):
    from alignkit.attacks import attack
    from alignkit.attacks.prefill import PrefillConfig, load_answers
    from alignkit.data import load

    res = attack(PrefillConfig(model="tiny-random-llama", eval_prompts=3, max_new_tokens=8, prefill_tokens=[0, 5],
                               source="opener", opener="Sure, here is how", output_dir=str(tmp_path / "o")),
                 judge=fake_judge)
    assert all(g["completion"].startswith("Sure, here is how") for g in _gens(tmp_path / "o", 5))
    assert res.provenance.data["attack"].startswith("opener")
    # answers are looked up in the evaluation prompts' split only (never the training split)
    ans = load_answers(PrefillConfig(eval_split="test"))
    train = {" ".join(r.question.split()).lower() for r in load("harmful-qa", split="train")}
    test = {" ".join(r.question.split()).lower() for r in load("harmful-qa", split="test")}
    assert set(ans) == test and not (set(ans) & (train - test))


def test_prefill_bad_inputs(tmp_path, monkeypatch):
    out = tmp_path / "run"
    # a prefill longer than the generation budget: one line before anything is written
    msg = one_line_error(_cli([*BASE, "--prefill-tokens", "0,8", "--output-dir", out], tmp_path, monkeypatch),
                         "--prefill-tokens 8 does not fit --max-new-tokens 8")
    assert "at least one token" in msg and not out.exists()
    # another family's option, an unknown family
    one_line_error(_cli([*BASE, "--lr", "1e-3"], tmp_path, monkeypatch), "--lr belongs to", "sft-full/sft-lora",
                   "not prefill")
    one_line_error(_cli(["attack", "--attack", "prefil"], tmp_path, monkeypatch), "unknown attack 'prefil'",
                   "prefill", "sft-full")
    # an empty answers file
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    one_line_error(_cli([*BASE, "--prefill-tokens", "0,2", "--prefill-dataset", empty, "--output-dir", out],
                        tmp_path, monkeypatch),
                   "--prefill-dataset", "empty.jsonl", "empty")
    assert not (out / "config.json").exists() and not (out / "results.json").exists()
    assert not (tmp_path / "runs").exists()


def test_chat_mode_needs_a_chat_template(tmp_path, monkeypatch):
    from alignkit.models import resolve_model

    src = resolve_model("tiny-random-llama")
    nochat = tmp_path / "nochat"
    shutil.copytree(src, nochat)
    (nochat / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((nochat / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (nochat / "tokenizer_config.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    args = [*BASE[:4], nochat, *BASE[5:], "--prefill-tokens", "0,2", "--output-dir", out]
    one_line_error(_cli(args, tmp_path, monkeypatch), "has no chat template", "--template qa")
    assert not (out / "config.json").exists() and not (out / "metrics.jsonl").exists()
    # the same model in QA mode runs (the answer after 'Answer:' is prefilled)
    r = _cli([*args, "--template", "qa"], tmp_path, monkeypatch)
    assert r.exit_code == 0, (r.output, r.exception)
