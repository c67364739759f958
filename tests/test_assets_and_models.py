import pytest
import torch
from cli_support import run_alignkit

from alignkit import assets
from alignkit.errors import AlignkitError
from alignkit.models import load_causal_lm, resolve_model, save_with_card


def test_assets_list_shows_three_ready_models(tiny_model_path, smollm2_path, monkeypatch, capsys):
    code, out, err = run_alignkit(["assets", "list"], monkeypatch, capsys)
    assert code == 0, err
    for name in ("smollm2-135m-instruct", "minilm-l6", "tiny-random-llama"):
        assert name in out
        assert assets.is_ready(name)
    assert "no " not in out.replace("no_", "")


def test_smollm2_answers_paris(smollm2_path):
    from alignkit.generation import generate

    model, tok = load_causal_lm("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    out = generate(model, tok, ["What is the capital of France?"], max_new_tokens=20)
    assert "Paris" in out[0], out


def test_tiny_model_is_small_and_uses_smollm2_tokenizer(tiny_model_path):
    model, tok = load_causal_lm("tiny-random-llama")
    assert model.config.num_hidden_layers == 2
    assert len(tok) == 49152
    assert tok.pad_token is not None


@pytest.mark.parametrize("name,fragment", [
    ("no-such-model", "unknown model"),
    ("./missing/folder", "does not exist"),
    ("some-org/some-model-that-is-not-here", "hub id"),
])
def test_bad_model_names_raise_one_line(name, fragment):
    with pytest.raises(AlignkitError) as ei:
        load_causal_lm(name)
    msg = str(ei.value)
    assert fragment in msg and "\n" not in msg


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(AlignkitError, match="is a file"):
        resolve_model(str(f))


def test_encoder_is_not_a_causal_lm():
    with pytest.raises(AlignkitError, match="sentence encoder"):
        load_causal_lm("minilm-l6")


def test_save_with_card_reloads_with_plain_transformers(tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = load_causal_lm("tiny-random-llama")
    out = save_with_card(model, tok, tmp_path / "m", {"title": "test", "defence": "none"})
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()
    assert "defence" in (out / "README.md").read_text()
    again = AutoModelForCausalLM.from_pretrained(out)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_cli_unknown_model_exit_2_one_line(tmp_path, monkeypatch, capsys):
    code, _, err = run_alignkit(["assets", "prepare", "--name", "gpt-17"], monkeypatch, capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: ")
    assert "Traceback" not in err


def test_hub_id_without_network_fails_fast_with_one_line(monkeypatch):
    """A hub id that is not cached fails in seconds, not after huggingface_hub's ~45 s of retries."""
    import time

    from huggingface_hub import constants

    from alignkit.models import resolve_model

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(AlignkitError, match="HF_HUB_OFFLINE") as e:
        resolve_model("no-such-org/no-such-model-xyz")
    assert "\n" not in str(e.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    t = time.time()
    with pytest.raises(AlignkitError, match="cannot be reached"):
        resolve_model("no-such-org/no-such-model-xyz")
    assert time.time() - t < 10
