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
    (["pipeline", "--preset", "huge"], "unknown preset"),
    (["evaluate", "--out", "/nonexistent/run"], "no ctes_"),
    (["show", "--out", "/nonexistent/run"], "not found"),
    (["generate", "--weights", "/nonexistent/w"], "not a folder"),
])
def test_bad_input_exits_2_with_one_line(args, needle):
    line = one_error_line(runner.invoke(app, args))
    assert needle in line


@needs_weights
def test_generate_evaluate_show(tmp_path):
    for m, n in (("random", 10), ("dac", 10), ("mcto", 10)):
        extra = ["--n-starts", "2", "--n-iter", "3"] if m == "mcto" else []
        r = runner.invoke(app, ["generate", "--method", m, "-n", str(n), "--out", str(tmp_path)] + extra)
        assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "ctes_mcto.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["cf_actions"][0] != r["orig_actions"][0] for r in rows)
    r = runner.invoke(app, ["evaluate", "--out", str(tmp_path), "--seeds", "1", "--epochs", "5"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "results.json").read_text())
    assert {row["generator"] for row in res["table"]} == {"mcto", "dac", "random"}
    r = runner.invoke(app, ["show", "--out", str(tmp_path), "--method", "dac", "--index", "1", "--gallery", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "gallery" / "dac_0001.png").stat().st_size > 5000
    assert "dac_0001.png" in (tmp_path / "gallery" / "index.html").read_text()
    one_error_line(runner.invoke(app, ["show", "--out", str(tmp_path), "--index", "99"]))


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
