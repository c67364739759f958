import numpy as np
import pytest

from alignkit.cte.env import (GOAL, MAX_STEPS, N_CITIZENS, N_HOUSES, SIZE, EmergencyEnv, EmergencyState,
                              make_env, render_state, state_planes)
from alignkit.cte.expert import collect_demos, expert_action
from alignkit.errors import AlignkitError


def idx(r, c):
    return r * SIZE + c


def state(player, citizens=(), houses=(), t=0):
    return EmergencyState(idx(*player), sum(1 << idx(*c) for c in citizens), sum(1 << idx(*h) for h in houses), t, 0)


def cells(mask):
    return sorted(divmod(i, SIZE) for i in range(SIZE * SIZE) if mask >> i & 1)


# Recorded action sequences from fixed layouts. The expected player cell, reward, citizens left and the
# visible citizen / goal cells were worked out by hand from the rules (env.py docstring), not by running
# the env: goal bonus +0.1 when the step STARTS on G (6,6); +10 per grab of an adjacent citizen; walls and
# houses block, citizens do not; the observation hides what lies under the player, a citizen under G,
# and G under a house.
LAYOUT_A = dict(player=(3, 3), citizens=[(3, 4), (4, 4)], houses=[(2, 3)])
SEQ_A = [  # (action, player after, reward, citizens left, citizens visible in the observation)
    (0, (3, 3), 0.0, [(3, 4), (4, 4)], [(3, 4), (4, 4)]),   # up into the house: blocked
    (3, (3, 4), 0.0, [(3, 4), (4, 4)], [(4, 4)]),           # right ONTO a citizen: walks on, hides it
    (1, (4, 4), 0.0, [(3, 4), (4, 4)], [(3, 4)]),           # down onto the second one
    (5, (4, 4), 10.0, [(4, 4)], []),                         # grab up: the first one is rescued
    (5, (4, 4), 0.0, [(4, 4)], []),                          # grab up again: nobody there
    (0, (3, 4), 0.0, [(4, 4)], [(4, 4)]),                   # step off: the hidden citizen reappears
    (6, (3, 4), 10.0, [], []),                               # grab down
]
LAYOUT_B = dict(player=(5, 6), citizens=[(6, 6)], houses=[(5, 5)])
SEQ_B = [  # (action, player after, reward, citizens left, citizens visible, goal visible)
    (2, (5, 6), 0.0, [(6, 6)], [], True),        # left into the house: blocked; the citizen on G is hidden
    (1, (6, 6), 0.0, [(6, 6)], [], False),       # onto G: no bonus (the step started at (5,6)); G hidden
    (4, (6, 6), 0.1, [(6, 6)], [], False),       # no-op on G: bonus (started on G)
    (0, (5, 6), 0.1, [(6, 6)], [], True),        # leave G: still paid (started on G)
    (4, (5, 6), 0.0, [(6, 6)], [], True),        # no-op off G: nothing
    (6, (5, 6), 10.0, [], [], True),             # grab the citizen standing on G
    (1, (6, 6), 0.0, [], [], False),             # onto G again: no bonus yet
    (7, (6, 6), 0.1, [], [], False),             # failed grab left while on G: only the bonus
]


@pytest.mark.parametrize("layout,seq", [(LAYOUT_A, SEQ_A), (LAYOUT_B, SEQ_B)])
def test_recorded_sequences_follow_the_rules(env, layout, seq):
    env.set_state(state(layout["player"], layout["citizens"], layout["houses"], t=0))
    for i, row in enumerate(seq):
        a, player, rew, left, visible = row[:5]
        obs, r, term, trunc, _ = env.step(a)
        s = env.get_state()
        assert divmod(s.player, SIZE) == player, (i, a)
        assert r == pytest.approx(rew), (i, a)
        assert cells(s.citizens) == left, (i, a)
        assert sorted(zip(*np.nonzero(obs[2]))) == visible, (i, a)
        assert obs[1, player[0], player[1]] == 1 and obs[1].sum() == 1
        assert not term and not trunc
        if len(row) > 5:
            assert bool(obs[4, GOAL[0], GOAL[1]]) == row[5], (i, a)


def test_house_hides_the_goal_and_player_starts_on_goal(env):
    obs = env.set_state(state((3, 3), houses=[(6, 6)]))
    assert obs[4].sum() == 0 and obs[3, 6, 6] == 1
    env.set_state(state((6, 6), citizens=[(6, 5)]))
    _, r, *_ = env.step(7)  # starts on G and grabs left: both rewards in one step
    assert r == pytest.approx(10.1)


def test_episode_ends_after_74_actions(env):
    assert MAX_STEPS == 74
    env.reset(seed=0)
    for t in range(74):
        _, _, term, trunc, _ = env.step(4)
        assert not term
        assert trunc == (t == 73), t
    assert env.is_done()


def test_layouts_use_all_36_interior_cells_goal_included():
    env = EmergencyEnv()
    on_goal, used = 0, set()
    for seed in range(400):
        obs, _ = env.reset(seed=seed)
        s = env.get_state()
        objs = [s.player] + [i for i in range(SIZE * SIZE) if (s.citizens | s.houses) >> i & 1]
        assert len(set(objs)) == 1 + N_CITIZENS + N_HOUSES  # distinct cells
        assert all(0 < i // SIZE < SIZE - 1 and 0 < i % SIZE < SIZE - 1 for i in objs)
        used.update(objs)
        on_goal += idx(*GOAL) in objs
        assert obs[0].sum() == 28 and obs[1].sum() == 1
    assert len(used) == 36
    # 10 of 36 cells are taken, so G holds an object in about 10/36 = 28% of layouts
    assert 0.2 < on_goal / 400 < 0.36


def test_seeding_and_state_roundtrip(env):
    obs0, _ = env.reset(seed=3)
    again, _ = EmergencyEnv().reset(seed=3)
    other, _ = EmergencyEnv().reset(seed=4)
    assert np.array_equal(obs0, again) and not np.array_equal(obs0, other)
    s0 = env.get_state()
    for a in (1, 3, 5, 2):
        env.step(a)
    assert np.array_equal(env.set_state(s0), obs0)
    assert EmergencyState.from_dict(s0.to_dict()) == s0
    img = env.render()
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert render_state(s0, cell=8).shape == (64, 64, 3)


def test_unoccluded_planes_show_everything():
    s = state((3, 4), citizens=[(3, 4), (6, 6)])
    full, obs = state_planes(s, occlude=False), state_planes(s)
    assert full[2].sum() == 2 and obs[2].sum() == 0 and full[4, 6, 6] == 1


def test_unknown_env_id():
    assert isinstance(make_env("emergency-v2"), EmergencyEnv)
    with pytest.raises(AlignkitError, match="unknown env id"):
        make_env("emergency-v9")


def test_expert_rescues_everyone_usually():
    _, acts, _, _, returns = collect_demos(20, seed=5)
    assert len(acts) == 20 * MAX_STEPS
    assert np.median(returns) >= 70  # all 7 citizens rescued (+ time on the goal)


def test_expert_grabs_adjacent_citizen_and_steps_off_a_hidden_one():
    assert expert_action(state((3, 3), citizens=[(3, 2)])) == 7
    assert expert_action(state((6, 6))) == 4  # nothing left: stay on the goal
    a = expert_action(state((3, 3), citizens=[(3, 3)]))  # standing on the last citizen: step off
    assert a in (0, 1, 2, 3)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), actions=st.lists(st.integers(0, 8), min_size=1, max_size=74))
def test_invariants_under_random_play(seed, actions):
    env = EmergencyEnv()
    obs, _ = env.reset(seed=seed)
    for a in actions:
        before = env.get_state()
        obs, r, *_ = env.step(a)
        s = env.get_state()
        assert obs[1].sum() == 1 and obs[0][obs[1] == 1].sum() == 0  # player on one non-wall cell
        assert not (s.houses >> s.player & 1)  # never on a house
        assert (obs[1] * obs[2]).sum() == 0  # nothing visible under the player
        assert s.houses == before.houses and obs[3].sum() == N_HOUSES
        saved = bin(before.citizens).count("1") - bin(s.citizens).count("1")
        assert saved in (0, 1) and (saved == 0 or a >= 5)
        assert r == pytest.approx(10.0 * saved + 0.1 * (before.player == idx(*GOAL)))
    assert s.rescued == N_CITIZENS - bin(s.citizens).count("1")
