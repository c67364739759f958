import json

import numpy as np
import pytest
from typer.testing import CliRunner

from alignkit.cte.cli import app
from alignkit.cte.models import shipped_weights_dir

runner = CliRunner()
HAVE_WEIGHTS = (shipped_weights_dir() / "airl_reward.safetensors").exists()
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="shipped weights not trained yet")


def one_error_line(result):
    text = (result.stderr if hasattr(result, "stderr") else result.output).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (["generate", "--method", "bogus", "-n", "2"], "unknown CTE method"),
    (["generate", "--method", "random", "-n", "0"], "-n must be at least 1"),
    (["generate", "--method", "random", "-n", "-3"], "-n must be at least 1"),
    (["generate", "--weights", "heavy"], "unknown weights preset"),
    (["generate", "--realisticness", "probable"], "unknown realisticness"),
    (["generate", "--env", "emergency-v9"], "unknown env id"),
    (["generate", "--n-starts", "0"], "--n-starts must be at least 1"),
    (["generate", "--n-iter", "0"], "--n-iter must be at least 1"),
    (["generate", "--n-iter", "-2"], "--n-iter must be at least 1"),
    (["generate", "--model-dir", "/nonexistent/w"], "not a folder"),
    (["generate", "--weights", "/tmp"], "with --model-dir"),
    (["generate", "--model-dir", "{tmp}"], "pass --model-dir pointing at a folder"),  # a folder without weights
    (["pipeline", "--preset", "huge"], "unknown preset"),
    (["pipeline", "-n", "0"], "-n must be at least 1"),
    (["pipeline", "--weights", "heavy"], "unknown weights preset"),
    (["pipeline", "--env", "gridworld"], "unknown env id"),
    (["evaluate", "--out", "/nonexistent/run"], "no ctes_"),
    (["evaluate", "--seeds", "0"], "--seeds must be at least 1"),
    (["show", "--out", "/nonexistent/run"], "not found"),
    (["explain", "/nonexistent/traj.json"], "not found"),
])
def test_bad_input_exits_2_with_one_line(args, needle, tmp_path):
    line = one_error_line(runner.invoke(app, [a.format(tmp=tmp_path) for a in args]))
    assert needle in line


@pytest.mark.parametrize("content,needle", [
    ({"layout_seed": 0, "actions": [[1, 2], [3, 4]]}, "flat list of integers (shape (T,)), got shape (2, 2)"),
    ({"layout_seed": 0, "actions": [1, 9]}, "action ids in 0..8"),
    ({"layout_seed": 0, "actions": list(range(8)) * 10}, "1..74 action ids"),
    ({"layout_seed": 0, "actions": []}, "1..74 action ids"),
    ({"actions": [1, 2]}, "layout_seed"),
    ([1, 2, 3], "needs an object"),
    ("not json {", "is not JSON"),
])
def test_bad_trajectory_files(tmp_path, content, needle):
    f = tmp_path / "traj.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    line = one_error_line(runner.invoke(app, ["explain", str(f), "--out", str(tmp_path / "o")]))
    assert needle in line


@pytest.mark.parametrize("line,needle", [
    ("{not json", "line 1 is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"start": 3}', "field 'start_state' is missing"),
])
def test_malformed_cte_files(tmp_path, line, needle):
    (tmp_path / "ctes_random.jsonl").write_text(line + "\n")
    for cmd in (["evaluate", "--out", str(tmp_path), "--seeds", "1"], ["show", "--out", str(tmp_path), "-m", "random"]):
        assert needle in one_error_line(runner.invoke(app, cmd))


@needs_weights
def test_generate_evaluate_show(tmp_path):
    for m, n in (("random", 10), ("dac", 10), ("mcto", 10)):
        extra = ["--n-starts", "2", "--n-iter", "3"] if m == "mcto" else []
        r = runner.invoke(app, ["generate", "--method", m, "-n", str(n), "--out", str(tmp_path)] + extra)
        assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "ctes_mcto.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["cf_actions"][0] != r["orig_actions"][0] for r in rows)
    assert all(r["start"] < 72 for r in rows)
    r = runner.invoke(app, ["evaluate", "--out", str(tmp_path), "--seeds", "2", "--epochs", "5"])
    assert r.exit_code == 0, r.output
    assert "n_train" in r.output and "start-only" in r.output
    res = json.loads((tmp_path / "results.json").read_text())
    assert {row["generator"] for row in res["curves"]} == {"mcto", "dac", "random", "start-only"}
    assert {row["n_train"] for row in res["curves"]} == {"5", "all"}  # 8 training CTEs: 10 and up do not fit
    assert (tmp_path / "gallery" / "curves.png").stat().st_size > 5000
    r = runner.invoke(app, ["show", "--out", str(tmp_path), "--method", "dac", "--index", "1", "--gallery", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "gallery" / "dac_0001.png").stat().st_size > 5000
    page = (tmp_path / "gallery" / "index.html").read_text()
    assert "dac_0001.png" in page and "curves.png" in page
    one_error_line(runner.invoke(app, ["show", "--out", str(tmp_path), "--index", "99"]))
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"layout_seed": 3, "actions": rows[0]["orig_actions"] * 3}))
    r = runner.invoke(app, ["explain", str(traj), "-m", "dac", "--out", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x" / "cte_dac.png").exists()


@needs_weights
def test_numpy_policy_matches_sb3_policy():
    import torch

    from alignkit.cte.env import EmergencyEnv
    from alignkit.cte.models import PolicyModel, RewardModel, load_sb3_policy

    env = EmergencyEnv()
    obs, _ = env.reset(seed=0)
    sb3 = load_sb3_policy()
    with torch.no_grad():
        p_torch = sb3.get_distribution(torch.as_tensor(obs[None])).distribution.probs[0].numpy()
    assert np.allclose(PolicyModel()(obs), p_torch, atol=1e-5)
    assert np.isfinite(RewardModel()(obs))
