"""Attack test helpers: one thread (the CI box is shared), a fake judge, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

# tiny, fast settings shared by the in-process tests
TINY = dict(model="tiny-random-llama", max_steps=4, eval_every=2, eval_prompts=4, max_new_tokens=8,
            num_samples=24, max_length=64)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def fake_judge():
    from ak_fake_judge import FakeJudge

    return FakeJudge()


def judge_available(name: str) -> bool:
    try:
        from alignkit.harmfulness import get_judge

        get_judge(name)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def cli_judge() -> str:
    """The judge the CLI tests use: refusal-keywords once registered, else the fake judge by import path."""
    return "refusal-keywords" if judge_available("refusal-keywords") else "ak_fake_judge:FakeJudge"


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               ALIGNKIT_RUNS=str(tmp_path / "runs"), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), str(ROOT / "src"), env.get("PYTHONPATH")])))
    return env


def run_cli(args: list[str], env: dict, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alignkit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), **kw)
