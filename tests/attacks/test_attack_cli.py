"""The `alignkit attack` command end to end on tiny-random-llama, and its user errors."""

from __future__ import annotations

import json
import os
import resource
import time

import pytest
from attack_support import judge_available, run_cli
from cli_support import run_alignkit


def test_acceptance_command_tiny(tmp_path, cli_env, cli_judge):
    """alignkit attack --model tiny-random-llama --max-steps 4 --eval-every 2: < 1 minute, >= 3 curve points."""
    from alignkit.attacks import AttackResult

    judge = "minilm" if judge_available("minilm") else cli_judge
    out = tmp_path / "run"
    t0 = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = run_cli(["attack", "--model", "tiny-random-llama", "--max-steps", "4", "--eval-every", "2",
                 "--judge", judge, "--output-dir", str(out)], cli_env)
    wall = time.time() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    assert p.returncode == 0, p.stderr[-3000:]
    res = AttackResult.model_validate_json((out / "results.json").read_text())
    print(f"acceptance attack: {wall:.1f}s wall, {cpu:.1f}s cpu, judge {res.provenance.judge}, "
          f"curve {[(c.step, round(c.harmfulness_mean, 3)) for c in res.curve]}")
    assert [c.step for c in res.curve] == [0, 2, 4]
    assert res.curve[0].n == 40 and res.total_steps == 4
    assert (out / "curve.png").stat().st_size > 1000
    assert sorted(f.name for f in (out / "generations").iterdir()) == [
        "step_0000.jsonl", "step_0002.jsonl", "step_0004.jsonl"]
    row = json.loads((out / "generations" / "step_0002.jsonl").read_text().splitlines()[0])
    assert {"prompt", "category", "completion", "score"} <= set(row)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "eval"] == [0, 2, 4]
    assert json.loads((out / "config.json").read_text())["max_steps"] == 4
    # the budget is one minute; on a shared, overloaded box (load > cores) wall time measures the neighbours,
    # so the CPU time the command used is checked instead
    overloaded = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert cpu < 60, f"used {cpu:.1f}s of CPU"
    assert wall < 60 or overloaded, f"took {wall:.1f}s"

    # re-running the finished command reports the result without training
    p2 = run_cli(["attack", "--model", "tiny-random-llama", "--max-steps", "4", "--eval-every", "2",
                  "--judge", judge, "--output-dir", str(out)], cli_env)
    assert p2.returncode == 0 and "already finished" in p2.stderr
    # same folder, different config: one-line error, exit 2
    p3 = run_cli(["attack", "--model", "tiny-random-llama", "--max-steps", "6", "--eval-every", "2",
                  "--judge", judge, "--output-dir", str(out)], cli_env)
    assert p3.returncode == 2
    assert p3.stderr.strip().count("\n") == 0 and "--output-dir" in p3.stderr and "--overwrite" in p3.stderr


@pytest.mark.parametrize("args, needle", [
    (["--model", "no-such-model"], "unknown model"),
    (["--model", "tiny-random-llama", "--dataset", "/nonexistent/harm.jsonl"], "does not exist"),
    (["--model", "tiny-random-llama", "--lr", "-1"], "--lr"),
    (["--model", "tiny-random-llama", "--lr", "abc"], "lr"),
    (["--model", "tiny-random-llama", "--method", "qlora"], "--method"),
    (["--model", "tiny-random-llama", "--judge", "no-such-judge"], "judge"),
])
def test_bad_input_exits_2_one_line(tmp_path, cli_judge, args, needle, monkeypatch, capsys):
    """In-process (the console script's main(); the acceptance test above runs the real process)."""
    judge = [] if "--judge" in args else ["--judge", cli_judge]
    code, _, err = run_alignkit(["attack", *args, *judge, "--max-steps", "1", "--output-dir", tmp_path / "r"],
                                monkeypatch, capsys, env={"ALIGNKIT_RUNS": tmp_path / "runs"})
    assert code == 2, (code, err[-2000:])
    err = err.strip()
    assert needle in err
    if "abc" not in args:  # typer's own usage error for a non-number is a short box, not a traceback
        assert err.count("\n") == 0, err
        assert err.startswith("error: ")
    assert "Traceback" not in err


def test_sweep_cli(tmp_path, cli_judge, monkeypatch, capsys):
    out = tmp_path / "sw"
    code, stdout, err = run_alignkit(["attack", "--model", "tiny-random-llama", "--max-steps", "2", "--eval-every",
                                      "2", "--eval-prompts", "2", "--max-new-tokens", "4", "--num-samples", "8",
                                      "--judge", cli_judge, "--sweep", "--sweep-lrs", "3e-5,8e-5", "--output-dir",
                                      out], monkeypatch, capsys, env={"ALIGNKIT_RUNS": tmp_path / "runs"})
    assert code == 0, err[-3000:]
    data = json.loads((out / "sweep.json").read_text())
    assert [r["lr"] for r in data["runs"]] == [3e-5, 8e-5]
    assert data["worst"]["max_final_harmfulness"] is not None
    assert "worst final harmfulness" in stdout
