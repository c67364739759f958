import numpy as np
import pytest

from alignkit.cte.env import (GOAL, MAX_STEPS, N_CITIZENS, N_HOUSES, SIZE, EmergencyEnv, EmergencyState,
                              render_state)
from alignkit.cte.expert import collect_demos, expert_action


def idx(r, c):
    return r * SIZE + c


def state(player, citizens=(), houses=(), t=0):
    return EmergencyState(idx(*player), sum(1 << idx(*c) for c in citizens), sum(1 << idx(*h) for h in houses), t, 0)


def test_reset_layout_counts_and_seeding(env):
    obs, _ = env.reset(seed=3)
    assert obs.shape == (5, 8, 8) and obs.dtype == np.float32
    assert obs[2].sum() == N_CITIZENS and obs[3].sum() == N_HOUSES and obs[1].sum() == 1
    assert obs[4, GOAL[0], GOAL[1]] == 1 and obs[4].sum() == 1
    assert obs[0].sum() == 28  # border walls of an 8x8 grid
    # no overlaps: player, citizens, houses on distinct interior cells, goal left free
    occupied = obs[1] + obs[2] + obs[3]
    assert occupied.max() == 1 and (occupied * obs[0]).sum() == 0 and occupied[GOAL] == 0
    again, _ = EmergencyEnv().reset(seed=3)
    other, _ = EmergencyEnv().reset(seed=4)
    assert np.array_equal(obs, again) and not np.array_equal(obs, other)


def test_rescue(env):
    env.set_state(state((3, 3), citizens=[(2, 3), (3, 4)]))
    obs, r, term, trunc, _ = env.step(5)  # grab up
    assert r == 10.0 and obs[2, 2, 3] == 0 and obs[2].sum() == 1 and env.get_state().rescued == 1
    obs, r, *_ = env.step(8)  # grab right
    assert r == 10.0 and obs[2].sum() == 0
    _, r, *_ = env.step(6)  # grab down: nobody there
    assert r == 0.0


def test_walls_houses_and_citizens_block(env):
    env.set_state(state((1, 1), citizens=[(2, 1)], houses=[(1, 2)]))
    for a in (0, 2, 1, 3):  # up/left: wall, down: citizen, right: house
        obs, r, *_ = env.step(a)
        assert obs[1, 1, 1] == 1 and r == 0.0
    env.set_state(state((3, 3)))
    obs, *_ = env.step(3)
    assert obs[1, 3, 4] == 1


def test_goal_reward_and_noop(env):
    env.set_state(state((6, 5)))
    _, r, *_ = env.step(3)  # move onto G
    assert r == pytest.approx(0.1)
    _, r, *_ = env.step(4)  # stay on G
    assert r == pytest.approx(0.1)
    _, r, *_ = env.step(0)  # leave G
    assert r == 0.0


def test_episode_ends_after_75_steps(env):
    env.reset(seed=0)
    for t in range(MAX_STEPS):
        _, _, term, trunc, _ = env.step(4)
        assert not term
        assert trunc == (t == MAX_STEPS - 1)


def test_state_roundtrip_and_render(env):
    obs0, _ = env.reset(seed=1)
    s0 = env.get_state()
    for a in (1, 3, 5, 2):
        env.step(a)
    assert np.array_equal(env.set_state(s0), obs0)
    assert EmergencyState.from_dict(s0.to_dict()) == s0
    img = env.render()
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert render_state(s0, cell=8).shape == (64, 64, 3)


def test_expert_rescues_everyone_usually():
    _, acts, _, _, returns = collect_demos(20, seed=5)
    assert len(acts) == 20 * MAX_STEPS
    assert np.median(returns) >= 70  # all 7 citizens rescued (+ time on the goal)


def test_expert_grabs_adjacent_citizen():
    assert expert_action(state((3, 3), citizens=[(3, 2)])) == 7
    assert expert_action(state((6, 6))) == 4  # nothing left: stay on the goal


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), actions=st.lists(st.integers(0, 8), min_size=1, max_size=75))
def test_invariants_under_random_play(seed, actions):
    env = EmergencyEnv()
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for a in actions:
        before = env.get_state()
        obs, r, *_ = env.step(a)
        s = env.get_state()
        assert obs[1].sum() == 1 and obs[0][obs[1] == 1].sum() == 0  # player on one non-wall cell
        assert (obs[1] * (obs[2] + obs[3])).sum() == 0  # never on a citizen or a house
        assert s.houses == before.houses and obs[3].sum() == N_HOUSES
        saved = bin(before.citizens).count("1") - bin(s.citizens).count("1")
        assert saved in (0, 1) and (saved == 0 or a >= 5)
        assert r == pytest.approx(10.0 * saved + 0.1 * (s.player == 6 * SIZE + 6))
        total += r
    assert s.rescued == N_CITIZENS - int(obs[2].sum())
