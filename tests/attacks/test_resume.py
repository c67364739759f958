"""Kill a real `alignkit attack` subprocess (SIGKILL) after its first checkpoint and resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from attack_support import ROOT, run_cli


def test_kill_and_resume(tmp_path, cli_env, cli_judge):
    from alignkit.attacks import AttackResult

    out = tmp_path / "run"
    args = ["attack", "--model", "tiny-random-llama", "--max-steps", "8", "--eval-every", "2",
            "--eval-prompts", "4", "--max-new-tokens", "8", "--num-samples", "40", "--max-length", "64",
            "--judge", cli_judge, "--output-dir", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "alignkit.cli", *args], env=cli_env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
                break
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.1)
        else:
            raise AssertionError("no checkpoint appeared")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()
    done_before = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")
                         if (p / "trainer_state.json").exists())
    assert done_before and done_before[-1] < 8

    p = run_cli(args, cli_env)
    assert p.returncode == 0, p.stderr[-3000:]
    step = done_before[-1]
    assert f"resuming from checkpoint-{step} (step {step})" in p.stderr, p.stderr[-2000:]
    assert "step 0:" not in p.stderr  # step 0 was not evaluated again
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    assert res.resumed_from_step == step
    assert [c.step for c in res.curve] == [0, 2, 4, 6, 8]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if r["type"] == "eval"]
    assert evals == sorted(set(evals)) == [0, 2, 4, 6, 8]  # nothing redone, nothing duplicated
    trains = [r["step"] for r in rows if r["type"] == "train"]
    assert trains == sorted(set(trains)) == list(range(1, 9))
    # keeps at most the last two checkpoints
    assert len(list((out / "checkpoints").glob("checkpoint-*"))) <= 2
