"""Deviate-and-Continue (DaC): try a deviation at every time step, keep the best-scoring CTE.

For each time step t of the original trajectory (or every ``stride``-th):

1. deviate: pick at random an action a != a_t that the policy allows (pi(a|s_t) > ``threshold``) and
   whose next state differs from the original's next state (skip t when there is none);
2. optionally deviate again: the number of deviations is uniform in 1..``max_deviations``; each extra
   deviation takes an allowed action other than the policy's most likely one;
3. continue: follow the policy (sampled) and stop with probability ``end_prob`` per step (or at the
   episode end / when the original runs out; the original is cut to the same length).

Every candidate is scored on all six criteria (state importance and diversity included) and the one
with the highest weighted quality is returned (none when no step of the original has a deviation
that changes the next state).
"""

from __future__ import annotations

import numpy as np

from alignkit.cte.core import CTE, GENERATORS, Generator, Segment, extend, sample_action


@GENERATORS.register("dac")
class DaCGenerator(Generator):
    name = "dac"

    def __init__(self, env, model, scorer, seed: int = 0, end_prob: float = 0.2, max_deviations: int = 3,
                 threshold: float = 0.003, stride: int = 1, max_len: int | None = None):
        super().__init__(env, model, scorer, seed=seed)
        self.end_prob, self.max_deviations, self.threshold = end_prob, max_deviations, threshold
        self.stride, self.max_len = stride, max_len

    def candidate(self, orig: Segment, t: int) -> Segment | None:
        rng, env, model = self.rng, self.env, self.model
        T = len(orig)
        max_len = T - t if self.max_len is None else min(self.max_len, T - t)
        options = [a for a in self.deviations(orig, t, self.threshold) if a != orig.actions[t]]
        if not options:
            return None
        cf = Segment([orig.states[t]], [orig.obs[t]])
        done = extend(env, model, cf, int(rng.choice(options)))
        extra = int(rng.integers(1, self.max_deviations + 1)) - 1
        while not done and len(cf) < max_len:
            p = model.probs(cf.obs[-1])
            if extra > 0:
                extra -= 1
                a = sample_action(p, rng, exclude=int(np.argmax(p)), threshold=self.threshold)
            else:
                if rng.random() < self.end_prob:
                    break
                a = sample_action(p, rng, threshold=self.threshold)
            done = extend(env, model, cf, a)
        return cf

    def generate_one(self, orig: Segment, episode: int = -1) -> CTE | None:
        best = None
        for t in range(0, len(orig), self.stride):
            cf = self.candidate(orig, t)
            if cf is None:
                continue
            cte = CTE(t, orig.cut(t, len(cf)), cf, self.name, episode=episode)
            self.scorer.score(cte)
            if best is None or cte.quality > best.quality:
                best = cte
        return best  # None when no step has a deviation that changes the next state
