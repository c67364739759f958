"""Attack test helpers: one thread (the CI box is shared), a fake judge, a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from attack_support import ROOT, judge_available  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def fake_judge():
    from ak_fake_judge import FakeJudge

    return FakeJudge()


@pytest.fixture(scope="session")
def cli_judge() -> str:
    """The judge the CLI tests use: refusal-keywords once registered, else the fake judge by import path."""
    return "refusal-keywords" if judge_available("refusal-keywords") else "ak_fake_judge:FakeJudge"


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               ALIGNKIT_RUNS=str(tmp_path / "runs"), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), str(HERE.parent), str(ROOT / "src"),
                                                  env.get("PYTHONPATH")])))
    return env

