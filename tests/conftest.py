"""Shared test set-up: offline hub, few threads, a throw-away run folder per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers: ak_fake_judge

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    from alignkit import assets

    return str(assets.prepare("tiny-random-llama"))


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from alignkit import assets

    return str(assets.prepare("smollm2-135m-instruct"))
