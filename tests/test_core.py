import json
from typing import Literal

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from alignkit.config import build_config, config_command
from alignkit.errors import AlignkitError
from alignkit.formatting import IGNORE, PairCollator, QACollator, encode_pair, encode_qa, format_prompt
from alignkit.io import append_jsonl, read_jsonl, write_json
from alignkit.registry import Registry


def test_registry_register_get_and_unknown():
    reg: Registry = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and reg.names() == ["a"] and "a" in reg
    with pytest.raises(AlignkitError, match="unknown widget 'b'; choose one of: a"):
        reg.get("b")


def test_error_message_is_one_line():
    assert str(AlignkitError("a\nb   c")) == "a b c"


def test_atomic_json_and_jsonl(tmp_path):
    write_json(tmp_path / "r.json", {"x": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    append_jsonl(tmp_path / "m.jsonl", {"step": 0})
    append_jsonl(tmp_path / "m.jsonl", {"step": 2})
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"step": 4, "cut')  # a line cut by a kill
    assert [r["step"] for r in read_jsonl(tmp_path / "m.jsonl")] == [0, 2]


class DemoConfig(BaseModel):
    lr: float = Field(8e-5, description="learning rate", gt=0)
    steps: int = Field(4, description="steps")
    method: Literal["full", "lora"] = Field("full", description="method")
    lrs: list[float] = Field(default_factory=lambda: [3e-5], description="sweep lrs")
    flag: bool = Field(False, description="a flag")


def test_config_command_options_override_file(tmp_path):
    app = typer.Typer()
    got = {}

    @app.callback()
    def _cb():
        pass

    config_command(app, DemoConfig, "go", lambda cfg: got.setdefault("cfg", cfg))
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.001\nsteps: 9\n")
    r = CliRunner().invoke(app, ["go", "--config", str(f), "--steps", "3", "--lrs", "1e-4", "--lrs", "2e-4",
                                 "--flag", "--method", "lora"])
    assert r.exit_code == 0, r.output
    cfg = got["cfg"]
    assert cfg.lr == 0.001 and cfg.steps == 3 and cfg.lrs == [1e-4, 2e-4] and cfg.flag and cfg.method == "lora"
    r = CliRunner().invoke(app, ["go", "--help"])
    assert "learning rate" in r.output


def test_build_config_errors(tmp_path):
    with pytest.raises(AlignkitError, match="--lr"):
        build_config(DemoConfig, {"lr": -1})
    with pytest.raises(AlignkitError, match="does not exist"):
        build_config(DemoConfig, {}, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: 1\n")
    with pytest.raises(AlignkitError, match="unknown keys: foo"):
        build_config(DemoConfig, {}, bad)


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    from alignkit.models import load_tokenizer

    return load_tokenizer(tiny_model_path)


@pytest.mark.parametrize("template", ["chat", "qa"])
def test_encode_qa_loss_on_answer_only(tok, template):
    enc = encode_qa(tok, "How do I bake bread?", "Mix flour and water.", template, max_length=128)
    prompt_len = len(tok(format_prompt(tok, "How do I bake bread?", template), add_special_tokens=False)["input_ids"])
    assert all(x == IGNORE for x in enc["labels"][:prompt_len])
    answer = [x for x in enc["labels"] if x != IGNORE]
    assert tok.decode(answer).startswith((" Mix", "Mix")) and answer[-1] == tok.eos_token_id
    assert len(enc["input_ids"]) == len(enc["labels"])


def test_encode_qa_truncates_but_keeps_answer(tok):
    enc = encode_qa(tok, "word " * 300, "the answer is here", "qa", max_length=64)
    assert len(enc["input_ids"]) == 64
    assert sum(x != IGNORE for x in enc["labels"]) >= 4


def test_pair_collator_diff_mask(tok):
    feats = [encode_pair(tok, "Q one?", "harmful answer long text here", "I can't help with that.", "chat", 64),
             encode_pair(tok, "Another question?", "bad", "No.", "chat", 64)]
    b = PairCollator(tok.pad_token_id)(feats)
    assert b["harmful_input_ids"].shape == b["harmless_input_ids"].shape == b["diff_mask"].shape
    for i, f in enumerate(feats):
        # the shared prompt prefix is never in the mask
        n_prompt = sum(1 for x in f["harmful_labels"] if x == IGNORE)
        assert b["diff_mask"][i, :n_prompt].sum() == 0
        assert b["diff_mask"][i].sum() > 0
        # positions where both are padding are never in the mask
        both_pad = (b["harmful_attention_mask"][i] == 0) & (b["harmless_attention_mask"][i] == 0)
        assert (b["diff_mask"][i][both_pad] == 0).all()
    qa = QACollator(tok.pad_token_id)([encode_qa(tok, "a", "b"), encode_qa(tok, "aa aa aa", "bb bb")])
    assert (qa["labels"][qa["attention_mask"] == 0] == IGNORE).all()


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os
    import stat

    p = write_json(tmp_path / "perm.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
