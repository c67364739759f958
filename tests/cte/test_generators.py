import numpy as np
import pytest

from alignkit.cte.core import GENERATORS, rollout
from alignkit.cte.criteria import Scorer
from alignkit.cte.pipeline import fit_normaliser

FAST_MCTO = dict(n_starts=3, n_iter=5)


def run(method, env, model, seed=0, n=3, **kw):
    scorer = fit_normaliser(env, model, n_episodes=2, seed=0)
    origs = [rollout(env, model, seed=100 + i, rng=np.random.default_rng(i)) for i in range(n)]
    gen = GENERATORS.get(method)(env, model, scorer, seed=seed, **kw)
    return origs, gen.generate(origs)


def check_cte(cte, orig, env):
    t, L = cte.start, len(cte.cf)
    assert L >= 1 and len(cte.orig) == L
    assert cte.cf.states[0] == orig.states[t] == cte.orig.states[0]
    assert cte.orig.actions == orig.actions[t:t + L]
    # the counterfactual is a real trajectory of the env
    env.unwrapped.set_state(cte.cf.states[0])
    for a, s in zip(cte.cf.actions, cte.cf.states[1:]):
        env.unwrapped.step(a)
        assert env.unwrapped.get_state() == s
    assert np.isfinite(cte.quality) and set(cte.raw) == set(cte.norm)


@pytest.mark.parametrize("method,kw", [("mcto", FAST_MCTO), ("dac", {}), ("random", {})])
def test_generators_make_valid_ctes(method, kw, env, toy_model):
    origs, ctes = run(method, env, toy_model, **kw)
    for orig, cte in zip(origs, ctes):
        check_cte(cte, orig, env)
        assert cte.method == method


def test_mcto_first_action_differs(env, toy_model):
    origs, ctes = run("mcto", env, toy_model, n=4, **FAST_MCTO)
    for orig, cte in zip(origs, ctes):
        assert cte.cf.actions[0] != orig.actions[cte.start]


def test_deterministic_under_seed(env, toy_model):
    for method, kw in (("mcto", FAST_MCTO), ("dac", {}), ("random", {})):
        _, a = run(method, env, toy_model, seed=7, n=2, **kw)
        _, b = run(method, env, toy_model, seed=7, n=2, **kw)
        assert [(c.start, c.cf.actions, c.quality) for c in a] == [(c.start, c.cf.actions, c.quality) for c in b]


def test_mcto_beats_random_on_quality(env, toy_model):
    scorer = fit_normaliser(env, toy_model, n_episodes=2, seed=0)
    origs = [rollout(env, toy_model, seed=200 + i, rng=np.random.default_rng(i)) for i in range(4)]
    q = {}
    for m, kw in (("mcto", FAST_MCTO), ("random", {})):
        scorer.reset_history()
        q[m] = np.mean([c.quality for c in GENERATORS.get(m)(env, toy_model, scorer, seed=0, **kw).generate(origs)])
    assert q["mcto"] > q["random"]


def test_unknown_generator():
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="choose one of"):
        GENERATORS.get("nope")


def test_scorer_rejects_env_without_state(toy_model):
    import gymnasium as gym

    from alignkit.cte.random_gen import RandomGenerator
    from alignkit.errors import AlignkitError

    env = gym.make("CartPole-v1")
    with pytest.raises(AlignkitError):
        RandomGenerator(env, toy_model, Scorer(env, toy_model))
