"""Plain helpers for the attack tests (imported by name; conftest modules of other folders share the name
'conftest', so helpers live in this uniquely named module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# tiny, fast settings shared by the in-process tests
TINY = dict(model="tiny-random-llama", max_steps=4, eval_every=2, eval_prompts=4, max_new_tokens=8,
            num_samples=24, max_length=64)


def judge_available(name: str) -> bool:
    try:
        from alignkit.harmfulness import get_judge

        get_judge(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def run_cli(args: list[str], env: dict, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alignkit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), **kw)
