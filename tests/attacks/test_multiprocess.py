"""Two CPU processes under `accelerate launch` (DDP over gloo): the same Trainer/accelerate path as FSDP/DeepSpeed.

Note: accelerate 1.15's `launch --cpu --num_processes 2` starts ONE process (its simple launcher); two CPU
processes come from `launch --multi_gpu --num_processes 2` on a machine without CUDA (torchrun; alignkit
creates the process state with cpu=True, so it becomes MULTI_CPU/gloo). Both are checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from attack_support import ROOT


@pytest.mark.slow
def test_accelerate_two_processes(tmp_path, cli_env, cli_judge):
    from alignkit.attacks import AttackResult

    out = tmp_path / "run"
    import torch

    if torch.cuda.is_available():
        pytest.skip("this test launches CPU processes via the multi-GPU launcher; run it on a CPU-only box")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "alignkit.cli", "attack", "--model", "tiny-random-llama", "--max-steps", "4", "--eval-every", "2",
           "--eval-prompts", "4", "--max-new-tokens", "8", "--num-samples", "32", "--max-length", "64",
           "--batch-size", "2", "--judge", cli_judge, "--output-dir", str(out)]
    p = subprocess.run(cmd, env=cli_env, cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    assert [c.step for c in res.curve] == [0, 2, 4]
    assert res.provenance.device == "cpu x2"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if r["type"] == "eval"]
    assert evals == [0, 2, 4]  # written once, by the main process only
    assert p.stdout.count("results:") == 1
    # a finished multi-process run re-reports without training
    p2 = subprocess.run(cmd, env=cli_env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert p2.returncode == 0 and "already finished" in p2.stderr
