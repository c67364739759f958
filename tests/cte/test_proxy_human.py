import numpy as np
import pytest

from alignkit.cte.env import EmergencyEnv, EmergencyState
from alignkit.cte.features import FEATURE_NAMES, N_FEATURES, segment_features
from alignkit.cte.proxy_human import evaluate, metrics


def test_features_of_a_hand_made_segment():
    env = EmergencyEnv()
    start = EmergencyState(3 * 8 + 3, 1 << (3 * 8 + 5), 0, 0, 0)
    obs = [env.set_state(start)]
    for a in (3, 8, 1):  # right, grab-right (rescue), down
        obs.append(env.step(a)[0])
    f = dict(zip(FEATURE_NAMES, segment_features(obs, [3, 8, 1])))
    assert N_FEATURES == 46 and len(FEATURE_NAMES) == 46
    assert f["length"] == 3 and f["citizens_saved"] == 1 and f["citizens_end"] == 0
    assert f["dist_goal_start"] == 6 and f["dist_goal_end"] == 4
    assert f["frac_action_3"] == pytest.approx(1 / 3) and f["failed_grabs"] == 0
    assert f["start_row"] == 3 and f["end_row"] == 4 and f["end_col"] == 4
    assert f["displacement"] == 2 and f["dist_citizen_end"] == 10


def test_metrics_by_hand():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.5]])
    m = metrics(Y.copy(), Y[:, 0] - Y[:, 1], Y)
    assert m["pearson"] == pytest.approx(1.0) and m["sign_acc"] == 1.0
    m = metrics(Y.copy(), -(Y[:, 0] - Y[:, 1]), Y)
    assert m["sign_acc"] == 0.0


def test_proxy_humans_learn_a_learnable_reward():
    rng = np.random.default_rng(0)
    data = {}
    for name in ("a", "b"):
        X = rng.normal(size=(200, 92))
        Y = np.column_stack([X[:, 0] + 0.1 * rng.normal(size=200), X[:, 46] + 0.1 * rng.normal(size=200)])
        data[name] = (X, Y)
    rows = evaluate(data, seeds=[0, 1], epochs=15)
    get = {(r["generator"], r["model"], r["test"], r["metric"]): r for r in rows}
    assert get[("a", "linear", "combined", "pearson")]["mean"] > 0.9
    assert get[("a", "mlp", "combined", "pearson")]["mean"] > 0.3
    assert len(get[("b", "mlp", "own", "sign_acc")]["values"]) == 2


def test_learning_curves_rank_an_informative_generator_first():
    from alignkit.cte.proxy_human import START_FEATURES, learning_curves

    rng = np.random.default_rng(0)
    data = {}
    for name, signal in (("good", 1.0), ("noisy", 0.0)):
        X = rng.normal(size=(150, 92))
        level = X[:, START_FEATURES[0]]  # the shared start state's level
        diff = X[:, 50] + X[:, 51]  # what the CTE's actions teach
        # "noisy" CTEs show features unrelated to their reward difference
        Y = np.column_stack([level + 0.5 * diff, level - 0.5 * diff]) if signal else \
            np.column_stack([level + 0.5 * rng.normal(size=150), level - 0.5 * rng.normal(size=150)])
        data[name] = (X, Y)
    rows = learning_curves(data, seeds=[0, 1, 2], n_trains=(5, 50, "all"), models=("linear",))
    get = {(r["generator"], r["target"], r["n_train"]): r for r in rows}
    assert {r["generator"] for r in rows} == {"good", "noisy", "start-only"}
    for r in rows:
        assert r["pearson"]["lo"] <= r["pearson"]["mean"] <= r["pearson"]["hi"]
        assert len(r["pearson"]["values"]) == 3
    assert get[("good", "diff", "all")]["n"] == 120
    assert get[("good", "diff", "all")]["pearson"]["mean"] > get[("good", "diff", "5")]["pearson"]["mean"]
    assert get[("good", "diff", "all")]["pearson"]["mean"] > get[("noisy", "diff", "all")]["pearson"]["mean"] + 0.2
    # the start state alone tells the level but nothing about the difference
    assert get[("start-only", "diff", "all")]["pearson"]["mean"] < 0.2
    assert get[("start-only", "level+diff", "all")]["pearson"]["mean"] > 0.5


def test_learning_curves_same_in_parallel():
    from alignkit.cte.proxy_human import learning_curves

    rng = np.random.default_rng(1)
    data = {g: (rng.normal(size=(40, 92)), rng.normal(size=(40, 2))) for g in ("a", "b")}
    kw = dict(seeds=[0, 1], n_trains=(5, "all"), models=("linear",))
    assert learning_curves(data, workers=2, **kw) == learning_curves(data, workers=1, **kw)
