from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "judges"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def default_judge():
    """The shipped default judge, minilm@5 (MiniLM + 6 layers of SmolLM2-135M-Instruct; a few seconds to load)."""
    from alignkit.judges import get_judge

    return get_judge("minilm")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised BertForSequenceClassification (labels harmful/harmless) with the
    minilm tokenizer, saved as a plain HF folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from alignkit.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=2,
                     id2label={0: "harmful", 1: "harmless"}, label2id={"harmful": 0, "harmless": 1})
    model = BertForSequenceClassification(cfg).eval()
    out = tmp_path_factory.mktemp("tiny_clf")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
