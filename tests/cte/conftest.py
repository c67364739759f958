import numpy as np
import pytest

from alignkit.cte.core import Model
from alignkit.cte.env import EmergencyEnv


def toy_policy(obs):
    """A fixed, state-dependent policy for tests: prefers 'right' and 'down', a bit of everything else."""
    p = np.array([1, 3, 1, 4, 0.5, 1, 1, 1, 1], dtype=float)
    p[int(obs.reshape(5, -1)[1].argmax()) % 9] += 2.0  # depends on the player cell
    return p / p.sum()


def toy_reward(obs):
    o = obs.reshape(5, 8, 8)
    return -0.1 * float(o[2].sum()) + float(o[1, 6, 6])


@pytest.fixture
def env():
    return EmergencyEnv()


@pytest.fixture
def toy_model():
    return Model(toy_policy, toy_reward)
