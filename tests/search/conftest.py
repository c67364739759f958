"""Search test helpers: one thread (the box is shared), tiny spaces on tiny-random-llama."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from search_support import TINY_ATTACK_SPACE, TINY_DEFENCE_SPACE  # noqa: E402

@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def attack_space(tmp_path) -> Path:
    p = tmp_path / "attack-space.yaml"
    p.write_text(TINY_ATTACK_SPACE)
    return p


@pytest.fixture
def defence_space(tmp_path) -> Path:
    p = tmp_path / "defence-space.yaml"
    p.write_text(TINY_DEFENCE_SPACE)
    return p
