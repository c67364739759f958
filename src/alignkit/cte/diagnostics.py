"""How close is the learned reward g to the ground truth, up to what AIRL cannot identify?

AIRL's state-only g is identifiable only up to potential shaping, and the Emergency ground truth
R(s, a, s') = 0.1*[player on G in s] + 10*(C(s) - C(s')) (C = citizens left) is mostly a potential
difference: rescuing a citizen lowers C. So the raw per-transition Pearson between g(s') and R says
little (a perfect shaping-equivalent g scores near 0 on it). Two measures that respect shaping:

* **Pearson with the shaping-equivalent reward.** Under the discount gamma AIRL trains with (0.99), R
  equals (up to the potential Phi(s) = -10*C(s) - 0.1*[G in s], which changes no policy's ranking)
  the state reward  r_eq(s') = -10*(1 - gamma)*C(s') + 0.1*gamma*[G in s'].
  ``pearson_shaping_equivalent`` is Pearson(g(s'), r_eq(s')) over visited transitions.
* **EPIC distance** (Gleave et al. 2021, "Quantifying differences in reward functions"): canonicalise
  each reward, C(R)(s,a,s') = R(s,a,s') + E[gamma R(s',A,S') - R(s,A,S') - gamma R(S,A,S')] with S, S'
  drawn independently from the visited states and A uniform over the 9 actions, then
  D = sqrt((1 - rho) / 2), rho = Pearson of the canonical rewards over visited transitions (0 = same
  reward up to shaping and scale, 0.71 = unrelated, 1 = opposite). The expectations are estimated by
  Monte Carlo; the ground truth is extended to any (s, a, s') pair by the same formula. For these two
  rewards the canonical forms are g(s') - const and r_eq(s') - const, so rho equals the Pearson above up
  to sampling noise; computing it the general way checks that reading.

The coverage distribution is the transitions of three policies (the AIRL agent, the planner expert and
a uniform random policy) on the same layouts.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from alignkit.cte.env import _GOAL_IDX, RESCUE_REWARD, GOAL_REWARD, EmergencyEnv, EmergencyState

GAMMA = 0.99


def n_citizens(states: list[EmergencyState]) -> np.ndarray:
    return np.array([s.citizens.bit_count() for s in states], dtype=float)


def on_goal(states: list[EmergencyState]) -> np.ndarray:
    return np.array([s.player == _GOAL_IDX for s in states], dtype=float)


def ground_truth(s: list[EmergencyState], s2: list[EmergencyState]) -> np.ndarray:
    """R(s, a, s') for any pair of states (the action does not enter)."""
    return GOAL_REWARD * on_goal(s) + RESCUE_REWARD * (n_citizens(s) - n_citizens(s2))


def shaping_equivalent(s2: list[EmergencyState], gamma: float = GAMMA) -> np.ndarray:
    return -RESCUE_REWARD * (1 - gamma) * n_citizens(s2) + GOAL_REWARD * gamma * on_goal(s2)


def _pearson(a, b) -> float:
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def epic_distance(reward_a: Callable, reward_b: Callable, si: np.ndarray, s2i: np.ndarray, pool: np.ndarray,
                  gamma: float = GAMMA, n_samples: int = 512, seed: int = 0) -> tuple[float, float]:
    """EPIC distance and rho between two rewards given as vectorised ``reward(i, j) -> array`` over
    indices of states (state-based rewards: the action is ignored, so A ~ uniform drops out), on the
    transitions (si, s2i), with canonicalisation samples S, S' drawn from the indices ``pool``.
    Returns (distance, rho)."""
    rng = np.random.default_rng(seed)
    S, S2 = rng.choice(pool, n_samples), rng.choice(pool, n_samples)

    def canon(R):
        def from_x(xs):  # E_{S'} R(x, A, S') for each x
            uniq, inv = np.unique(xs, return_inverse=True)
            m = R(np.repeat(uniq, n_samples), np.tile(S2, len(uniq))).reshape(len(uniq), n_samples).mean(1)
            return m[inv]

        return R(si, s2i) + gamma * from_x(s2i) - from_x(si) - gamma * float(R(S, S2).mean())

    rho = _pearson(canon(reward_a), canon(reward_b))
    return float(np.sqrt(max(0.0, (1 - rho) / 2))), rho


def reward_diagnostics(g_of_obs: Callable[[np.ndarray], np.ndarray], act_fns: dict[str, Callable],
                       n_episodes: int = 30, seed: int = 50_000, gamma: float = GAMMA) -> dict:
    """Roll out each policy in ``act_fns`` (name -> fn(env, obs, rng) -> action) for ``n_episodes``
    seeded layouts; returns returns, rescues and the agreement measures of g (batch fn on observations)."""
    from alignkit.cte.env import state_planes

    env = EmergencyEnv()
    rng = np.random.default_rng(seed)
    out: dict = {}
    S, S2, rews, ep_start, ep_r = [], [], [], [], []
    for name, fn in act_fns.items():
        returns, rescued = [], []
        for ep in range(n_episodes):
            obs, _ = env.reset(seed=seed + ep)
            done, total, n0 = False, 0.0, len(S2)
            while not done:
                s = env.get_state()
                obs, r, term, trunc, _ = env.step(fn(env, obs, rng))
                done = term or trunc
                S.append(s)
                S2.append(env.get_state())
                rews.append(r)
                total += r
            returns.append(total)
            rescued.append(env.get_state().rescued)
            ep_r.append(total)
            ep_start.append(n0)  # index of the episode's first transition
        out[f"return_{name}"] = float(np.mean(returns))
        out[f"rescued_{name}"] = float(np.mean(rescued))
    table = list(dict.fromkeys(S + S2))  # unique states
    index = {x: i for i, x in enumerate(table)}
    si = np.array([index[x] for x in S])
    s2i = np.array([index[x] for x in S2])
    gval = np.asarray(g_of_obs(np.stack([state_planes(x) for x in table])), dtype=float).ravel()
    cit, goal = n_citizens(table), on_goal(table)
    g2 = gval[s2i]
    bounds = ep_start + [len(S2)]
    g_ep = np.array([g2[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
    out["pearson_shaping_equivalent"] = _pearson(g2, shaping_equivalent([table[i] for i in s2i], gamma))
    dist, rho = epic_distance(lambda i, j: gval[j],
                              lambda i, j: GOAL_REWARD * goal[i] + RESCUE_REWARD * (cit[i] - cit[j]),
                              si, s2i, pool=np.arange(len(table)), gamma=gamma)
    out["epic_distance"], out["epic_rho"] = dist, rho
    out["pearson_episode"] = _pearson(g_ep, np.array(ep_r))
    out["pearson_state_raw"] = _pearson(g2, np.array(rews))  # misleading: see the module docstring
    out["gamma"] = gamma
    out["n_transitions"] = len(S2)
    out["n_episodes"] = len(ep_r)
    return out
