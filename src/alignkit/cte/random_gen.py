"""Random baseline generator: a random start, then a policy rollout that stops at random.

The start time t is uniform over the original trajectory. The first counterfactual action is sampled
from the policy among the actions whose next state differs from the original's next state (so the
counterfactual really deviates; the paper's baseline does not say, and an identical "counterfactual"
explains nothing); a start without such an action is redrawn (up to 20 times, then no CTE). Each later step ends the
counterfactual with probability ``end_prob``, else samples the next action from the policy. The
original is cut to the same length. No criterion is optimised; the CTE is only scored afterwards.
"""

from __future__ import annotations

import numpy as np

from alignkit.cte.core import CTE, GENERATORS, Generator, Segment, extend, sample_action


@GENERATORS.register("random")
class RandomGenerator(Generator):
    name = "random"

    def __init__(self, env, model, scorer, seed: int = 0, end_prob: float = 0.2, max_len: int | None = None):
        super().__init__(env, model, scorer, seed=seed)
        self.end_prob = end_prob
        self.max_len = max_len

    def generate_one(self, orig: Segment, episode: int = -1) -> CTE | None:
        rng, T = self.rng, len(orig)
        for _ in range(20):
            t = int(rng.integers(0, T))
            options = self.deviations(orig, t)
            if options:
                break
        else:
            return None
        max_len = T - t if self.max_len is None else min(self.max_len, T - t)
        p = self.model.probs(orig.obs[t])
        q = np.zeros(len(p))
        q[options] = p[options]
        cf = Segment([orig.states[t]], [orig.obs[t]])
        done = extend(self.env, self.model, cf, sample_action(q, rng))
        while not done and len(cf) < max_len and rng.random() >= self.end_prob:
            done = extend(self.env, self.model, cf, sample_action(self.model.probs(cf.obs[-1]), rng))
        cte = CTE(t, orig.cut(t, len(cf)), cf, self.name, episode=episode)
        self.scorer.score(cte)
        return cte
