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
    sc = Scorer(env, toy_model)
    raw = sc.raw(orig, cf, start=10)
    # learned toy reward: -0.1 * citizens + [on goal]
    assert orig.rewards == pytest.approx([-0.1, -0.1]) and cf.rewards == pytest.approx([-0.1, 0.0])
    assert raw["validity"] == pytest.approx(0.05)
    assert raw["sparsity"] == -4
    assert raw["diversity"] == 0.0  # no earlier CTEs
    assert raw["state_importance"] == pytest.approx(-toy_model.entropy(orig.obs[0]))
    assert raw["realisticness"] == pytest.approx(np.mean(cf.logps))
    # proximity by hand: o = {((2,3),cit), ((1,3),cit)} with actions up, up;
    # c = {((3,4),cit), ((3,4),no cit)} with actions right, grab-right; every action pair differs (+0.5)
    d = np.array([[0.5 + 1.5 * 2, 0.5 + 1 + 1.5 * 2],
                  [0.5 + 1.5 * 3, 0.5 + 1 + 1.5 * 3]])
    expected = max(d.min(1).mean(), d.min(0).mean())
    assert raw["proximity"] == pytest.approx(-expected)
    # identical segments: proximity 0, validity 0
    same = sc.raw(orig, orig, start=10)
    assert same["proximity"] == 0.0 and same["validity"] == 0.0


def test_diversity_grows_with_difference(toy_model):
    env = EmergencyEnv()
    start = EmergencyState(3 * 8 + 3, 0, 0, 0, 0)
    o = seg(env, start, [0], toy_model)
    sc = Scorer(env, toy_model)
    sc.remember(CTE(0, o, o, "x"))
    near = sc.diversity(1, 0, 0.0)
    far = sc.diversity(11, 25, 1.0)
    assert near == 0.0 and far == pytest.approx(1 + 1 + 1)


def test_normalisation_and_weights(toy_model):
    env = EmergencyEnv()
    sc = Scorer(env, toy_model, weights={"validity": 1.0, "sparsity": 0.0})
    keys = ["validity", "proximity", "state_importance", "diversity", "realisticness", "sparsity"]
    sc.fit([dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 2.0)])
    n = sc.normalise(dict.fromkeys(keys, 1.0))
    assert all(v == pytest.approx(0.5) for v in n.values())
    q = sc.quality(dict.fromkeys(keys, 2.0))
    assert q == pytest.approx(sum(sc.weights.values()))
    with pytest.raises(AlignkitError):
        check_weights({"validity": 1.5})
    with pytest.raises(AlignkitError):
        check_weights({"bogus": 0.5})
