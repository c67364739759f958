"""Bad input to ``alignkit cte ...``: every user mistake is one ``error:`` line and exit code 2, before any
file is written (seeds, corrupt weights, unwritable run folders, malformed CTE files and trajectories)."""

import json
import math

import pytest
from typer.testing import CliRunner

from alignkit.cte.cli import app
from alignkit.cte.core import check_seed
from alignkit.cte.env import EmergencyEnv, EmergencyState, check_state
from alignkit.cte.pipeline import json_safe, load_ctes, read_trajectory
from alignkit.errors import AlignkitError

runner = CliRunner()


def one_error_line(result):
    text = (result.stderr if hasattr(result, "stderr") else result.output).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in result.output
    return lines[0]


def valid_row() -> dict:
    """A CTE record in the format ``cte_to_dict`` writes (synthetic numbers, real dynamics)."""
    env = EmergencyEnv()
    env.reset(seed=0)
    start = env.get_state()
    crit = {k: 0.5 for k in ("validity", "proximity", "state_importance", "diversity", "realisticness", "sparsity")}
    return {"method": "random", "episode": 0, "episode_seed": 1_000_000, "start": 0,
            "start_state": start.to_dict(), "orig_actions": [1, 3], "cf_actions": [0, 2],
            "start_reward": 0.1, "orig_rewards": [0.1, 0.2], "cf_rewards": [0.0, -0.1],
            "mean_reward_orig": 0.13, "mean_reward_cf": 0.0, "raw": dict(crit), "norm": dict(crit),
            "quality": 1.5, "seconds": 0.01, "cpu_seconds": 0.01,
            "features_orig": [float(i % 5) for i in range(46)], "features_cf": [float(i % 3) for i in range(46)]}


def write_rows(folder, rows, method="mcto"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ctes_{method}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_valid_row_loads(tmp_path):
    write_rows(tmp_path, [valid_row()] * 3)
    assert len(load_ctes(tmp_path, "mcto")) == 3


# ----------------------------------------------------------------------------------------------- 18: seeds
@pytest.mark.parametrize("seed", [-1, 2**32, 8589934592])
@pytest.mark.parametrize("cmd", [
    ["generate", "-m", "random", "-n", "2"],
    ["pipeline", "-n", "1"],
    ["train", "--demos", "1", "--timesteps", "2048"],
    ["explain", "{traj}"],
])
def test_seed_out_of_range(tmp_path, cmd, seed):
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"layout_seed": 0, "actions": [1]}))
    args = [a.format(traj=traj) for a in cmd] + ["--seed", str(seed), "--out", str(tmp_path / "o")]
    line = one_error_line(runner.invoke(app, args))
    assert "--seed must be in 0..2**32-1" in line
    assert not (tmp_path / "o").exists()


def test_check_seed():
    assert check_seed(0) == 0 and check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, True, 1.5, "3"):
        with pytest.raises(AlignkitError, match=r"must be in 0\.\.2\*\*32-1"):
            check_seed(bad)


# ------------------------------------------------------------------------------------- 19: corrupt weights
@pytest.mark.parametrize("cmd", [["generate", "-m", "random", "-n", "1"], ["pipeline", "-n", "1"],
                                 ["explain", "{traj}"]])
def test_corrupt_weights_file(tmp_path, cmd):
    bad = tmp_path / "baddir"
    bad.mkdir()
    for f in ("airl_reward.safetensors", "policy.safetensors"):
        (bad / f).write_text("junk")
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"layout_seed": 0, "actions": [1]}))
    args = [a.format(traj=traj) for a in cmd] + ["--model-dir", str(bad), "--out", str(tmp_path / "o")]
    line = one_error_line(runner.invoke(app, args))
    assert f"{bad}/airl_reward.safetensors is not a valid weights file" in line
    assert "cte train" in line
    assert not (tmp_path / "o").exists()


def test_weights_with_wrong_tensors(tmp_path):
    import torch
    from safetensors.torch import save_file

    from alignkit.cte.models import POLICY_FILE, REWARD_FILE, shipped_weights_dir

    if not (shipped_weights_dir() / POLICY_FILE).exists():
        pytest.skip("shipped weights not trained yet")
    bad = tmp_path / "w"
    bad.mkdir()
    (bad / POLICY_FILE).write_bytes((shipped_weights_dir() / POLICY_FILE).read_bytes())
    save_file({"g.1.weight": torch.zeros(3, 3)}, str(bad / REWARD_FILE))  # a valid file, wrong tensors
    line = one_error_line(runner.invoke(app, ["generate", "-m", "random", "-n", "1", "--model-dir", str(bad),
                                              "--out", str(tmp_path / "o")]))
    assert "airl_reward.safetensors is not a valid weights file" in line


# --------------------------------------------------------------------------------- 20: unwritable run folder
@pytest.fixture
def unwritable(monkeypatch, tmp_path):
    """Tests run as root, where chmod stops nothing: make the writability check see a read-only folder."""
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False
                        if mode & os.W_OK and str(p).startswith(str(tmp_path)) else real(p, mode, *a, **k))


@pytest.mark.parametrize("cmd", [["evaluate", "--seeds", "1", "--epochs", "1"], ["show"]])
def test_readonly_run_folder(tmp_path, unwritable, cmd):
    run = tmp_path / "cterun"
    write_rows(run, [valid_row()] * 4)
    line = one_error_line(runner.invoke(app, cmd + ["--out", str(run)]))
    assert "not writable" in line and "--out" in line
    assert sorted(p.name for p in run.iterdir()) == ["ctes_mcto.jsonl"]


@pytest.mark.parametrize("cmd", [["evaluate", "--seeds", "1", "--epochs", "1"], ["show"]])
def test_run_folder_under_a_file(tmp_path, cmd):
    (tmp_path / "afile").write_text("x")
    line = one_error_line(runner.invoke(app, cmd + ["--out", str(tmp_path / "afile" / "sub")]))
    assert "afile" in line


# ------------------------------------------------------------------------------------ 21: malformed CTE files
def _with(**kw):
    r = valid_row()
    for k, v in kw.items():
        if v is KeyError:
            del r[k]
        else:
            r[k] = v
    return r


def _state(**kw):
    s = valid_row()["start_state"]
    s.update(kw)
    return s


BAD_ROWS = [
    (_with(start_state={"x": 1}), "start_state"),
    (_with(start_state=_state(player="abc")), "start_state"),
    (_with(start_state=_state(houses="nan")), "start_state"),
    (_with(start_state=_state(player=1000000)), "start_state"),
    (_with(start_state=_state(player=-1)), "start_state"),
    (_with(start_state=_state(player=0)), "start_state"),  # a wall cell
    (_with(start_state=_state(citizens=str(2**70))), "start_state"),
    (_with(start_state=_state(t=-3)), "start_state"),
    (_with(start_state=_state(t=True)), "start_state"),
    (_with(orig_rewards=KeyError), "orig_rewards"),
    (_with(orig_rewards="x"), "orig_rewards"),
    (_with(orig_rewards=[0.1]), "orig_rewards"),
    (_with(cf_rewards=[0.1, float("nan")]), "cf_rewards"),
    (_with(orig_actions=[1, 9]), "orig_actions"),
    (_with(features_orig=["a"] * 46), "features_orig"),
    (_with(features_orig=[float("nan")] * 46), "features_orig"),
    (_with(features_cf=[1e308] * 46), "features_cf"),
    (_with(features_orig=[[1]] * 46), "features_orig"),
    (_with(mean_reward_orig=float("nan")), "mean_reward_orig"),
    (_with(mean_reward_cf=float("inf")), "mean_reward_cf"),
    (_with(quality=float("nan")), "quality"),
    (_with(seconds=-1.0), "seconds"),
    (_with(cpu_seconds="fast"), "cpu_seconds"),
    (_with(norm={"validity": 1.0}), "norm"),
    (_with(raw=dict(valid_row()["raw"], validity=float("nan"))), "raw"),
    (_with(start=100), "start"),
]


@pytest.mark.parametrize("row,field", BAD_ROWS)
def test_malformed_cte_record(tmp_path, row, field):
    write_rows(tmp_path, [valid_row(), row])
    with pytest.raises(AlignkitError) as e:
        load_ctes(tmp_path, "mcto")
    msg = str(e.value)
    assert "ctes_mcto.jsonl line 2: field" in msg and repr(field) in msg and "regenerate" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("row,field", [BAD_ROWS[1], BAD_ROWS[3], BAD_ROWS[4], BAD_ROWS[10], BAD_ROWS[14],
                                       BAD_ROWS[16], BAD_ROWS[17], BAD_ROWS[18], BAD_ROWS[20]])
@pytest.mark.parametrize("cmd", [["show"], ["evaluate", "--seeds", "1", "--epochs", "1"]])
def test_malformed_cte_record_cli(tmp_path, row, field, cmd):
    write_rows(tmp_path, [valid_row(), row])
    line = one_error_line(runner.invoke(app, cmd + ["--out", str(tmp_path)]))
    assert f"line 2: field {field!r}" in line
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "gallery").exists()


def test_non_utf8_cte_file(tmp_path):
    (tmp_path / "ctes_mcto.jsonl").write_bytes(json.dumps(valid_row()).encode() + b"\n\xff\xfe{}\n")
    line = one_error_line(runner.invoke(app, ["show", "--out", str(tmp_path)]))
    assert "line 2 is not UTF-8" in line


def test_json_safe_has_no_nan():
    out = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2})
    assert out == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2}
    json.dumps(out, allow_nan=False)


def test_evaluate_results_json_is_strict_json(tmp_path, monkeypatch):
    """A metric that comes out NaN (e.g. a constant proxy prediction) is written as null, never bare NaN."""
    def fake_curves(data, **kw):
        nan = {"mean": math.nan, "lo": math.nan, "hi": math.nan}
        return [{"model": "mlp", "target": "diff", "generator": g, "n_train": "all", "n": 4, "pearson": nan,
                 "sign_acc": nan} for g in list(data) + ["start-only"]]

    monkeypatch.setattr("alignkit.cte.proxy_human.learning_curves", fake_curves)
    write_rows(tmp_path, [valid_row()] * 4)  # identical rows: level share is NaN
    r = runner.invoke(app, ["evaluate", "--out", str(tmp_path), "--seeds", "1", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "results.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in results.json"))


# ----------------------------------------------------------------------------- 22: trajectory start / seed
@pytest.mark.parametrize("content,needle", [
    ({"layout_seed": -1, "actions": [1]}, "layout_seed out of range"),
    ({"layout_seed": 2**32, "actions": [1]}, "layout_seed out of range"),
    ({"layout_seed": True, "actions": [1]}, "layout_seed out of range"),
    ({"layout_seed": "3", "actions": [1]}, "layout_seed out of range"),
    ({"start_state": {"player": 0, "citizens": "0", "houses": "0", "t": 0, "rescued": 0}, "actions": [1]},
     "start_state out of range"),
    ({"start_state": {"player": 9999, "citizens": "0", "houses": "0", "t": 0, "rescued": 0}, "actions": [1]},
     "start_state out of range"),
    ({"start_state": {"player": 9, "citizens": "-5", "houses": "0", "t": -3, "rescued": 0}, "actions": [1]},
     "start_state out of range"),
    ({"start_state": {"player": 9, "citizens": "0", "houses": "0", "t": -3, "rescued": 0}, "actions": [1]},
     "start_state out of range"),
    ({"start_state": {"player": 9, "citizens": "0", "houses": "512", "t": 0, "rescued": 0}, "actions": [1]},
     "start_state out of range"),  # player on a house
    ({"start_state": {"player": 9}, "actions": [1]}, "start_state out of range"),
    ({"start_state": [1, 2], "actions": [1]}, "start_state out of range"),
])
def test_bad_trajectory_start(tmp_path, content, needle):
    f = tmp_path / "traj.json"
    f.write_text(json.dumps(content))
    with pytest.raises(AlignkitError, match=needle):
        read_trajectory(f, EmergencyEnv())
    line = one_error_line(runner.invoke(app, ["explain", str(f), "--out", str(tmp_path / "o")]))
    assert needle in line
    assert not (tmp_path / "o").exists()  # checked before the output folder is created


def test_check_state_round_trip_and_limits():
    env = EmergencyEnv()
    for seed in range(20):
        env.reset(seed=seed)
        s = env.get_state()
        assert check_state(s.to_dict()) == s == EmergencyState.from_dict(s.to_dict())
    with pytest.raises(ValueError, match="rescued"):
        check_state(dict(s.to_dict(), rescued=1))  # 7 citizens left and one rescued: 8 in all
