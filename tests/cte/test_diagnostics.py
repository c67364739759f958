import numpy as np
import pytest

from alignkit.cte.diagnostics import GAMMA, epic_distance, reward_diagnostics


def test_epic_ignores_potential_shaping_and_scale():
    rng = np.random.default_rng(0)
    n_states = 200
    x, phi = rng.normal(size=n_states), rng.normal(size=n_states)
    si, s2i = rng.integers(0, n_states, 500), rng.integers(0, n_states, 500)
    base = lambda i, j: x[j]  # noqa: E731
    shaped = lambda i, j: 3.0 * x[j] + GAMMA * phi[j] - phi[i] + 5.0  # noqa: E731
    d, rho = epic_distance(shaped, base, si, s2i, pool=np.arange(n_states))
    assert d == pytest.approx(0.0, abs=1e-6) and rho == pytest.approx(1.0)
    # the raw Pearson of the same pair is far from 1: shaping hides the agreement
    assert np.corrcoef(shaped(si, s2i), base(si, s2i))[0, 1] < 0.9
    other = rng.normal(size=n_states)
    d, _ = epic_distance(lambda i, j: other[j], base, si, s2i, pool=np.arange(n_states))
    assert 0.6 < d < 0.8  # unrelated rewards: sqrt(1/2)


def _random_policy(env, obs, rng):
    return int(rng.integers(9))


def test_shaping_equivalent_g_scores_high_and_the_raw_pearson_misleads():
    def g_citizens(obs):  # minus the visible citizens plus the goal: the shaping-equivalent form
        o = obs.reshape(len(obs), 5, 8, 8)
        return -0.1 * o[:, 2].sum((1, 2)) + 0.099 * o[:, 1, 6, 6]

    d = reward_diagnostics(g_citizens, {"random": _random_policy}, n_episodes=4)
    assert d["pearson_shaping_equivalent"] > 0.8  # below 1 only because the observation hides citizens
    assert d["epic_distance"] < 0.3 and d["epic_rho"] == pytest.approx(d["pearson_shaping_equivalent"], abs=1e-6)
    assert abs(d["pearson_state_raw"]) < 0.3
    assert d["n_episodes"] == 4 and d["n_transitions"] == 4 * 74

    noise = reward_diagnostics(lambda o: np.random.default_rng(1).normal(size=len(o)), {"random": _random_policy},
                               n_episodes=4)
    assert noise["epic_distance"] > 0.6
