"""The general interface shared by all CTE generators.

A CTE generator needs three things, none of them specific to the Emergency gridworld:

* ``env``: a Gymnasium environment with a ``Discrete`` action space that offers ``get_state()`` and
  ``set_state(state) -> obs`` (cheap save/restore; ``set_state`` returns the observation of the state);
* ``policy(obs) -> probs``: any callable giving the agent's action probabilities for one observation;
* ``reward(obs) -> float``: the per-state reward to explain (e.g. the AIRL g(s) network).

Optionally the env may define ``proximity_features(obs) -> vector`` (the L1 distance between two such
vectors is the state part of the proximity distance; default: the flattened observation).

:class:`Model` wraps policy and reward with a cache keyed by the observation bytes: the search visits the
same states over and over, and a cache hit costs ~1 microsecond instead of a network call.
Trajectories are :class:`Segment` objects; a :class:`CTE` pairs an original and a counterfactual segment
that start from the same state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.registry import Registry

GENERATORS: Registry = Registry("CTE generator")

PolicyFn = Callable[[np.ndarray], np.ndarray]
RewardFn = Callable[[np.ndarray], float]


class Model:
    """Policy + reward with a per-observation cache of (probs, log-probs, entropy, reward)."""

    def __init__(self, policy: PolicyFn, reward: RewardFn, max_cache: int = 500_000):
        self.policy = policy
        self.reward_fn = reward
        self.max_cache = max_cache
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, float, float]] = {}
        # (state, action) -> (next obs, next state, done, R(next obs), log pi(action|state)); search
        # revisits the same transitions constantly, so this skips the env step and the lookups.
        self.step_cache: dict = {}

    def info(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        key = obs.tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        p = np.asarray(self.policy(obs), dtype=np.float64).ravel()
        p = np.clip(p, 0.0, None)
        p = p / p.sum()
        logp = np.log(np.maximum(p, 1e-12))
        ent = float(-(p * logp).sum())
        out = (p, logp, ent, float(self.reward_fn(obs)))
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
        self._cache[key] = out
        return out

    def probs(self, obs):
        return self.info(obs)[0]

    def reward(self, obs) -> float:
        return self.info(obs)[3]

    def entropy(self, obs) -> float:
        return self.info(obs)[2]


@dataclass
class Segment:
    """A (partial) trajectory: states/obs s_0..s_L, actions a_0..a_{L-1}, and per step i the learned
    reward R(s_{i+1}) of the state it reaches and log pi(a_i|s_i)."""

    states: list[Any]
    obs: list[np.ndarray]
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)

    def mean_reward(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else 0.0

    def cut(self, start: int, length: int) -> "Segment":
        """Steps start..start+length (states start..start+length)."""
        end = start + length
        return Segment(self.states[start:end + 1], self.obs[start:end + 1], self.actions[start:end],
                       self.rewards[start:end], self.logps[start:end])


@dataclass
class CTE:
    """One counterfactual trajectory explanation."""

    start: int  # time step of the shared start state in the original trajectory
    orig: Segment
    cf: Segment
    method: str
    raw: dict[str, float] = field(default_factory=dict)  # the six criteria, raw
    norm: dict[str, float] = field(default_factory=dict)  # min-max normalised
    quality: float = float("nan")  # weighted sum of the normalised criteria
    seconds: float = 0.0  # wall time
    cpu_seconds: float = 0.0  # process CPU time (not inflated by other jobs on a shared machine)
    episode: int = -1  # index/seed of the original trajectory

    @property
    def length(self) -> int:
        return len(self.cf)


MAX_SEED = 2**32 - 1  # numpy, torch and stable-baselines3 all accept seeds in 0..2**32-1


def check_seed(seed, flag: str = "--seed") -> int:
    """``seed`` is an integer in 0..2**32-1 (what every seeded library accepts), else a user error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise AlignkitError(f"{flag} must be in 0..2**32-1 (got {seed!r:.40}); pass a non-negative integer seed")
    return int(seed)


def check_env(env) -> None:
    """Raise AlignkitError when ``env`` lacks what the generators need."""
    import gymnasium as gym

    base = getattr(env, "unwrapped", env)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise AlignkitError("CTE generators need a Discrete action space; wrap or discretise the environment")
    for name in ("get_state", "set_state"):
        if not callable(getattr(base, name, None)):
            raise AlignkitError(f"the environment has no {name}(); add get_state()/set_state() for cheap save/restore")


def env_step(env, state, action: int):
    """Restore ``state``, take ``action``; returns (obs, next_state, done)."""
    base = env.unwrapped
    getattr(base, "restore", base.set_state)(state)  # restore(): optional set_state without the obs
    obs, _, term, trunc, _ = base.step(action)
    return obs, base.get_state(), bool(term or trunc)


def rollout(env, model: Model, seed: int | None = None, rng: np.random.Generator | None = None,
            max_steps: int = 10_000, greedy: bool = False) -> Segment:
    """Play one full episode with ``model``'s policy (sampled unless greedy) from ``env.reset(seed)``."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    base = env.unwrapped
    obs, _ = env.reset(seed=seed)
    seg = Segment([base.get_state()], [obs])
    for _ in range(max_steps):
        p, logp, _, _ = model.info(obs)
        a = int(np.argmax(p)) if greedy else int(rng.choice(len(p), p=p))
        obs, _, term, trunc, _ = base.step(a)
        seg.states.append(base.get_state())
        seg.obs.append(obs)
        seg.actions.append(a)
        seg.rewards.append(model.reward(obs))
        seg.logps.append(float(logp[a]))
        if term or trunc:
            break
    return seg


def step_cached(env, model: Model, state, obs: np.ndarray, action: int) -> tuple:
    """One transition from ``state`` (with observation ``obs``): (next obs, next state, done,
    R(next obs), log pi(action|state)), from the model's transition cache when possible."""
    key = (state, action)
    try:
        hit = model.step_cache.get(key)
    except TypeError:  # unhashable states: no transition cache
        key, hit = None, None
    if hit is None:
        logp = model.info(obs)[1]
        nobs, nstate, done = env_step(env, state, action)
        hit = (nobs, nstate, done, model.reward(nobs), float(logp[action]))
        if key is not None:
            if len(model.step_cache) >= model.max_cache:
                model.step_cache.clear()
            model.step_cache[key] = hit
    return hit


def extend(env, model: Model, seg: Segment, action: int) -> bool:
    """Append one step to ``seg`` (from its last state); returns whether the episode ended."""
    hit = step_cached(env, model, seg.states[-1], seg.obs[-1], action)
    seg.states.append(hit[1])
    seg.obs.append(hit[0])
    seg.actions.append(action)
    seg.rewards.append(hit[3])
    seg.logps.append(hit[4])
    return hit[2]


def same_states(a: Segment, b: Segment) -> bool:
    """Do two segments visit exactly the same states (then the pair explains nothing)?"""
    return len(a.states) == len(b.states) and all(x == y for x, y in zip(a.states, b.states))


def sample_action(p: np.ndarray, rng: np.random.Generator, exclude: int | None = None,
                  threshold: float = 0.0) -> int:
    """Sample from p restricted to actions with p > threshold (and != exclude); uniform if nothing is left."""
    q = [x if (x > threshold and a != exclude) else 0.0 for a, x in enumerate(p.tolist())]
    s = sum(q)
    if s <= 0:
        choices = [a for a in range(len(p)) if a != exclude]
        return int(choices[int(rng.integers(len(choices)))])
    u = rng.random() * s
    acc = 0.0
    for a, x in enumerate(q):
        acc += x
        if u < acc:
            return a
    return max(a for a, x in enumerate(q) if x > 0)


def entropy(p: np.ndarray) -> float:
    return float(-sum(x * math.log(x) for x in p if x > 0))


class Generator:
    """Base class. Subclasses implement :meth:`generate_one` for one original trajectory."""

    name = "base"

    def __init__(self, env, model: Model, scorer, seed: int = 0, **settings):
        check_env(env)
        self.env = env
        self.model = model
        self.scorer = scorer  # criteria.Scorer
        self.rng = np.random.default_rng(seed)
        self.settings = settings

    def generate_one(self, orig: Segment, episode: int = -1) -> CTE | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def deviations(self, orig: Segment, t: int, threshold: float = 0.0) -> list[int]:
        """Actions from orig.states[t] (pi > threshold) whose next state differs from the original's."""
        p = self.model.probs(orig.obs[t])
        nxt = orig.states[t + 1]
        return [a for a in range(len(p)) if p[a] > threshold
                and step_cached(self.env, self.model, orig.states[t], orig.obs[t], a)[1] != nxt]

    def generate(self, originals: list[Segment], progress: Callable[[int], None] | None = None,
                 episodes: list[int] | None = None) -> list[CTE]:
        """One CTE per original. An original where no counterfactual reaches a different state than the
        original (e.g. a player boxed in by houses) gives none: a pair of identical trajectories is never
        emitted."""
        import time

        out = []
        for i, orig in enumerate(originals):
            t0, c0 = time.perf_counter(), time.process_time()
            cte = self.generate_one(orig, episode=episodes[i] if episodes else i)
            if cte is not None and not same_states(cte.orig, cte.cf):
                cte.seconds, cte.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
                self.scorer.remember(cte)
                out.append(cte)
            if progress:
                progress(i)
        return out
