import numpy as np
import pytest

from alignkit.cte.core import CTE, Model, Segment
from alignkit.cte.criteria import Scorer, check_weights, modified_hausdorff
from alignkit.cte.env import EmergencyEnv, EmergencyState
from alignkit.errors import AlignkitError


def seg(env, start, actions, model):
    from alignkit.cte.core import extend

    s = Segment([start], [env.set_state(start)])
    for a in actions:
        extend(env, model, s, a)
    return s


def test_modified_hausdorff_by_hand():
    fa = np.array([[0.0], [2.0]])
    fb = np.array([[0.0]])
    # d(A,B): mean(min) = (0 + 2)/2 = 1 ; d(B,A) = 0 ; actions equal (0.0 extra)
    assert modified_hausdorff(fa, np.array([1, 1]), fb, np.array([1])) == pytest.approx(1.0)
    # different actions add 0.5 to every pair
    assert modified_hausdorff(fa, np.array([1, 1]), fb, np.array([2])) == pytest.approx(1.5)
    assert modified_hausdorff(fa, np.array([1, 1]), fa, np.array([1, 1])) == 0.0


def test_six_criteria_on_a_hand_made_pair(toy_model):
    env = EmergencyEnv()
    start = EmergencyState(3 * 8 + 3, 1 << (3 * 8 + 5), 0, 10, 0)  # player (3,3), one citizen at (3,5)
    orig = seg(env, start, [0, 0], toy_model)  # up, up   -> (1,3)
    cf = seg(env, start, [3, 8], toy_model)  # right, grab-right -> rescues the citizen
    sc = Scorer(env, toy_model)  # defaults: the paper's weights, signed realisticness
    raw = sc.raw(orig, cf, start=10)
    # learned toy reward: -0.1 * visible citizens + [on goal]; R(s0) = -0.1
    assert orig.rewards == pytest.approx([-0.1, -0.1]) and cf.rewards == pytest.approx([-0.1, 0.0])
    # means over s0, s1, s2 (start included): o = -0.3/3 = -0.1, c = -0.2/3
    assert raw["validity"] == pytest.approx(0.1 - 0.2 / 3)
    assert raw["realisticness"] == pytest.approx(-0.2 / 3 + 0.1)  # signed: mean R(c) - mean R(o)
    assert raw["sparsity"] == -4
    assert raw["diversity"] == 0.0  # no earlier CTEs
    assert raw["state_importance"] == pytest.approx(-toy_model.entropy(orig.obs[0]))
    likely = Scorer(env, toy_model, realisticness="likelihood").raw(orig, cf, start=10)
    assert likely["realisticness"] == pytest.approx(np.mean(cf.logps))
    # proximity by hand: o = {((2,3),cit), ((1,3),cit)} with actions up, up;
    # c = {((3,4),cit), ((3,4),no cit)} with actions right, grab-right; every action pair differs (+0.5)
    d = np.array([[0.5 + 1.5 * 2, 0.5 + 1 + 1.5 * 2],
                  [0.5 + 1.5 * 3, 0.5 + 1 + 1.5 * 3]])
    expected = max(d.min(1).mean(), d.min(0).mean())
    assert raw["proximity"] == pytest.approx(-expected)
    # identical segments: proximity 0, validity 0
    same = sc.raw(orig, orig, start=10)
    assert same["proximity"] == 0.0 and same["validity"] == 0.0


def _fake_cte(env, start, length, down):
    obs0 = env.reset(seed=0)[0]
    hi, lo = [1.0] * length, [0.0] * length
    mk = lambda r: Segment([None] * (length + 1), [obs0] * (length + 1), [4] * length, r, [0.0] * length)  # noqa: E731
    return CTE(start, mk(hi if down else lo), mk(lo if down else hi), "x")


def test_diversity_k_nearest_by_hand():
    env = EmergencyEnv()
    model = Model(lambda o: np.ones(9) / 9, lambda o: 0.0)
    sc = Scorer(env, model)
    for length, start, down in ((1, 0, True), (2, 5, True), (3, 20, False), (10, 40, False)):
        sc.remember(_fake_cte(env, start, length, down))
    # n = 4 earlier CTEs -> k = max(round(4/4), min(4, 3)) = 3 nearest per term
    # length 2: |dL| = 1, 0, 1, 8 -> 0, 1, 1 -> 2/3; start 10: |dt| = 10, 5, 10, 30 -> 25/3;
    # an "up" CTE: share of earlier "down" ones = 2/4
    assert sc.diversity(2, 10, False) == pytest.approx(2 / 3 + 25 / 3 + 0.5)
    assert sc.diversity(2, 10, True) == pytest.approx(2 / 3 + 25 / 3 + 0.5)
    assert sc.diversity(1, 0, True) == pytest.approx((0 + 1 + 2) / 3 + (0 + 5 + 20) / 3 + 0.5)
    for i in range(8):  # n = 12 -> k = 3; n = 20 -> k = 5
        sc.remember(_fake_cte(env, 60, 1, True))
    assert sc.diversity(1, 60, True) == pytest.approx(0.0 + 0.0 + 2 / 12)


def test_weight_presets_and_normalisation(toy_model):
    env = EmergencyEnv()
    assert check_weights("paper") == pytest.approx({"validity": 0.98, "proximity": 0.98, "state_importance": 0.53,
                                                    "diversity": 0.58, "realisticness": 0.30, "sparsity": 0.85})
    assert check_weights(None) == check_weights("paper")
    sc = Scorer(env, toy_model, weights={"validity": 1.0, "sparsity": 0.0})
    keys = ["validity", "proximity", "state_importance", "diversity", "realisticness", "sparsity"]
    sc.fit([dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 2.0)])
    n = sc.normalise(dict.fromkeys(keys, 1.0))
    assert all(v == pytest.approx(0.5) for v in n.values())
    q = sc.quality(dict.fromkeys(keys, 2.0))
    assert q == pytest.approx(sum(sc.weights.values()))
    for bad in ({"validity": 1.5}, {"bogus": 0.5}, "heavy"):
        with pytest.raises(AlignkitError):
            check_weights(bad)
    with pytest.raises(AlignkitError, match="unknown realisticness"):
        Scorer(env, toy_model, realisticness="probable")
