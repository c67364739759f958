"""The generators on a user's own environment, policy and reward: a tiny chain with a key."""

import gymnasium as gym
import numpy as np

from alignkit.cte import GENERATORS, Model, Scorer, rollout


class KeyChain(gym.Env):
    """Positions 0..6 on a line; action 0 left, 1 right, 2 pick up the key (lying at position 5).
    Observation: one-hot position (7) + has-key flag. Episodes last 20 steps."""

    N = 7

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 1, shape=(self.N + 1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.s = (0, 0, 0)

    def _obs(self):
        o = np.zeros(self.N + 1, dtype=np.float32)
        o[self.s[0]] = 1
        o[-1] = self.s[1]
        return o

    def get_state(self):
        return self.s

    def set_state(self, s):
        self.s = s
        return self._obs()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = (int(self.np_random.integers(0, 3)), 0, 0)
        return self._obs(), {}

    def step(self, a):
        pos, key, t = self.s
        if a == 0:
            pos = max(pos - 1, 0)
        elif a == 1:
            pos = min(pos + 1, self.N - 1)
        elif pos == 5:
            key = 1
        self.s = (pos, key, t + 1)
        return self._obs(), 0.0, False, t + 1 >= 20, {}


def policy(obs):  # the agent walks right and sometimes dawdles
    return np.array([0.15, 0.7, 0.15])


def reward(obs):  # the "learned" reward to explain: having the key, a little for being far right
    return 1.0 * obs[-1] + 0.05 * float(np.argmax(obs[:-1]))


def test_generators_on_a_user_environment():
    env = KeyChain()
    model = Model(policy, reward)
    origs = [rollout(env, model, seed=s) for s in range(3)]
    assert all(len(o) == 20 for o in origs)
    scorer = Scorer(env, model)  # proximity falls back to L1 on the observation
    samples = [c.raw for c in GENERATORS.get("random")(env, model, scorer, seed=1).generate(origs * 5)]
    scorer.fit(samples)
    scorer.reset_history()
    for name, kw in (("mcto", dict(n_starts=4, n_iter=8)), ("dac", {}), ("random", {})):
        ctes = GENERATORS.get(name)(env, model, scorer, seed=0, **kw).generate(origs)
        for orig, c in zip(origs, ctes):
            assert c.cf.states[0] == orig.states[c.start]
            assert c.cf.actions[0] != orig.actions[c.start]
            assert len(c.orig) == len(c.cf) >= 1
            assert np.isfinite(c.quality)
    # MCTO looks for a big reward difference: it should find CTEs where only one side gets the key
    mcto = GENERATORS.get("mcto")(env, model, scorer, seed=0, n_starts=6, n_iter=15).generate(origs)
    assert max(c.raw["validity"] for c in mcto) > 0.3
