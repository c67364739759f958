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


def test_mcto_first_step_reaches_another_state_and_starts_before_72(env, toy_model):
    origs, ctes = run("mcto", env, toy_model, n=4, **FAST_MCTO)
    assert len(origs[0]) == 74
    for orig, cte in zip(origs, ctes):
        assert cte.cf.actions[0] != orig.actions[cte.start]
        assert cte.cf.states[1] != orig.states[cte.start + 1]
        assert cte.start < 72


def test_mcto_start_points_exclude_the_last_two_steps(env, toy_model):
    from alignkit.cte.mcto import MCTOGenerator

    orig = rollout(env, toy_model, seed=5, rng=np.random.default_rng(0))
    gen = MCTOGenerator(env, toy_model, Scorer(env, toy_model), n_starts=80)
    assert gen.start_points(orig) == list(range(72))


def test_no_deviation_no_cte(env, toy_model):
    """A player boxed in a corner by houses, no citizen in reach: every action reaches the same state."""
    from alignkit.cte.core import Segment, extend
    from alignkit.cte.env import EmergencyState

    boxed = EmergencyState(1 * 8 + 1, 1 << (4 * 8 + 4), (1 << (1 * 8 + 2)) | (1 << (2 * 8 + 1)), 0, 0)
    orig = Segment([boxed], [env.set_state(boxed)])
    for _ in range(10):
        extend(env, toy_model, orig, 4)
    scorer = fit_normaliser(env, toy_model, n_episodes=1, seed=0)
    for method, kw in (("mcto", FAST_MCTO), ("dac", {}), ("random", {})):
        gen = GENERATORS.get(method)(env, toy_model, scorer, seed=0, **kw)
        assert gen.generate_one(orig) is None
        assert gen.generate([orig]) == []


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 100_000), lazy=st.floats(0.0, 1.0))
def test_mcto_never_emits_identical_states(seed, lazy, env, toy_model):
    """Property over many seeds: originals full of no-ops, failed grabs and blocked moves (where many
    actions reach the same state) never give a CTE whose counterfactual visits the original's states."""
    from alignkit.cte.core import Segment, extend, same_states
    from alignkit.cte.mcto import MCTOGenerator

    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    orig = Segment([env.get_state()], [obs])
    for _ in range(int(rng.integers(3, 20))):
        a = int(rng.choice([4, 5, 6, 7, 8])) if rng.random() < lazy else int(rng.integers(9))
        extend(env, toy_model, orig, a)
    scorer = Scorer(env, toy_model)
    gen = MCTOGenerator(env, toy_model, scorer, seed=seed, n_starts=3, n_iter=3)
    cte = gen.generate_one(orig)
    if cte is None:  # only when no start has an action leaving the original's next state
        assert all(not gen.deviations(orig, t) for t in gen.start_points(orig))
    else:
        assert not same_states(cte.orig, cte.cf)
        assert cte.cf.states[1] != orig.states[cte.start + 1]
        assert cte.orig.states[0] == cte.cf.states[0] == orig.states[cte.start]


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


def test_every_generator_deviates_in_state(env, toy_model):
    from alignkit.cte.core import same_states

    for method, kw in (("dac", {}), ("random", {})):
        origs, ctes = run(method, env, toy_model, n=4, **kw)
        for orig, cte in zip(origs, ctes):
            assert cte.cf.states[1] != orig.states[cte.start + 1] and not same_states(cte.orig, cte.cf)


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
