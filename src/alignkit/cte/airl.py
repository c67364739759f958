"""Adversarial Inverse Reinforcement Learning (Fu et al. 2018) with a state-only reward, written here.

Why not the ``imitation`` library: its latest release (1.0.1) pins gymnasium 0.29 and
stable-baselines3 2.2 and, through huggingface-sb3, huggingface-hub < 1, which breaks transformers 5
used by the rest of alignkit; installing it breaks the environment. AIRL itself is ~100 lines:

* demonstrations: 1000 episodes of the planner expert (:mod:`alignkit.cte.expert`);
* discriminator D(s, a, s') = exp(f) / (exp(f) + pi(a|s)), f = g(s) + gamma * h(s') - h(s), i.e.
  logit(D) = f - log pi(a|s); g is the state-only reward (the one CTEs explain), h the shaping term;
* generator: stable-baselines3 PPO whose environment reward is f(s, a, s') (computed by the
  :class:`AIRLRewardWrapper` from the current discriminator), with PPO's entropy bonus (0.01) as the
  entropy regulariser. The textbook generator reward log D - log(1 - D) = f - log pi(a|s)
  (``entropy_term=True``) drove the policy to near-uniform (entropy 2.0-2.07 of max 2.20, return 34
  vs 25 for random) within our 200k-step budget, so the default leaves the -log pi term out;
* alternate: one PPO rollout+update (n_envs * n_steps transitions), then ``disc_updates`` minibatch
  steps of binary cross-entropy (expert = 1, generator = 0) on the fresh generator transitions.

Deviation for the CPU budget (a few minutes on 2 cores): the PPO policy is warm-started by behavioural
cloning on the demonstrations (20 epochs) and trained with a small learning rate (1e-4), so the
generator is competent from the start and the
discriminator learns the reward from near-expert contrasts instead of waiting for PPO to learn the task.
Episodes end only by the 74-action time limit, so h(s') is never zeroed at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.vec_env import VecEnvWrapper

from alignkit.cte.env import EmergencyEnv
from alignkit.cte.expert import collect_demos, expert_action
from alignkit.cte.models import (META_FILE, POLICY_FILE, REWARD_FILE, AIRLDiscriminator, policy_kwargs)
from alignkit.io import write_json
from alignkit.provenance import library_versions


class AIRLRewardWrapper(VecEnvWrapper):
    """Replaces the env reward by f(s, a, s') - log pi(a|s) and records the generator's transitions."""

    def __init__(self, venv, disc: AIRLDiscriminator, entropy_term: bool = False):
        super().__init__(venv)
        self.disc = disc
        self.entropy_term = entropy_term
        self.policy = None  # set after PPO is built
        self.buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._last_obs = None
        self._actions = None

    def reset(self):
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions):
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rew, dones, infos = self.venv.step_wait()
        next_obs = obs.copy()
        for i, d in enumerate(dones):
            if d:
                next_obs[i] = infos[i]["terminal_observation"]
        prev = self._last_obs
        self.buffer.append((prev.copy(), self._actions.copy(), next_obs))
        with torch.no_grad():
            o, no = torch.as_tensor(prev), torch.as_tensor(next_obs)
            rew = self.disc.f(o, no)
            if self.entropy_term:
                rew = rew - self.policy.get_distribution(o).log_prob(torch.as_tensor(self._actions))
            rew = rew.numpy()
        for i in range(len(infos)):
            infos[i]["true_reward"] = float(true_rew[i])
        self._last_obs = obs
        return obs, rew.astype(np.float32), dones, infos

    def pop(self):
        o, a, n = (np.concatenate(x) for x in zip(*self.buffer))
        self.buffer = []
        return o, a, n


def bc_pretrain(policy, obs: np.ndarray, acts: np.ndarray, epochs: int = 1, batch: int = 512, seed: int = 0):
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    o_t, a_t = torch.as_tensor(obs), torch.as_tensor(acts)
    for _ in range(epochs):
        perm = torch.randperm(len(o_t), generator=g)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            dist = policy.get_distribution(o_t[idx])
            loss = -dist.log_prob(a_t[idx]).mean() - 0.01 * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def agreement(policy, disc: AIRLDiscriminator, n_episodes: int = 30, seed: int = 50_000) -> dict:
    """How well g agrees with the ground truth up to shaping (:mod:`alignkit.cte.diagnostics`), on
    episodes of the AIRL policy, the expert and a random policy; plus the policy's entropy."""
    from alignkit.cte.diagnostics import reward_diagnostics

    torch.manual_seed(seed)  # the AIRL policy's episodes are sampled

    def g_batch(o):
        with torch.no_grad():
            return disc.g(torch.as_tensor(o)).squeeze(-1).numpy()

    def airl_act(_env, obs, _rng):
        with torch.no_grad():
            return int(policy.get_distribution(torch.as_tensor(obs[None])).sample()[0])

    acts = {"airl_policy": airl_act,
            "expert": lambda e, o, r: expert_action(e.get_state()),
            "random": lambda e, o, r: int(r.integers(9))}
    out = reward_diagnostics(g_batch, acts, n_episodes=n_episodes, seed=seed, gamma=disc.gamma)
    with torch.no_grad():
        ent = policy.get_distribution(torch.as_tensor(np.stack(
            [EmergencyEnv().reset(seed=seed + i)[0] for i in range(200)]))).entropy()
    out["policy_entropy_mean"] = float(ent.mean())  # max ln 9 = 2.197 (uniform)
    return out


def train_airl(out_dir: str | Path, n_demos: int = 1000, total_steps: int = 150_000, seed: int = 0,
               n_envs: int = 8, n_steps: int = 256, disc_updates: int = 4, disc_batch: int = 512,
               bc_epochs: int = 20, gamma: float = 0.99, ppo_lr: float = 1e-4, entropy_term: bool = False,
               log: Callable[[str], None] = print) -> dict:
    from safetensors.torch import save_file
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    np.random.seed(seed)
    e_obs, e_act, e_next, _, e_ret = collect_demos(n_demos, seed=seed + 1)
    log(f"{n_demos} expert demos, {len(e_act)} transitions, mean return {e_ret.mean():.1f}")

    disc = AIRLDiscriminator(gamma=gamma)
    d_opt = torch.optim.Adam(disc.parameters(), lr=3e-4)
    venv = DummyVecEnv([EmergencyEnv for _ in range(n_envs)])
    venv.seed(seed)
    wrapped = AIRLRewardWrapper(venv, disc, entropy_term=entropy_term)
    model = PPO("MlpPolicy", wrapped, n_steps=n_steps, batch_size=256, n_epochs=4, learning_rate=ppo_lr,
                ent_coef=0.01, gamma=gamma, seed=seed, device="cpu", policy_kwargs=policy_kwargs(), verbose=0)
    wrapped.policy = model.policy
    bc_pretrain(model.policy, e_obs, e_act, epochs=bc_epochs, seed=seed)
    log(f"behavioural-cloning warm start done ({time.perf_counter() - t0:.0f}s)")

    e_obs_t, e_act_t, e_next_t = map(torch.as_tensor, (e_obs, e_act, e_next))
    rng = np.random.default_rng(seed)
    rounds = max(1, total_steps // (n_envs * n_steps))
    for r in range(rounds):
        model.learn(n_envs * n_steps, reset_num_timesteps=False)
        g_obs, g_act, g_next = (torch.as_tensor(x) for x in wrapped.pop())
        for _ in range(disc_updates):
            ei = torch.as_tensor(rng.integers(0, len(e_act_t), disc_batch))
            gi = torch.as_tensor(rng.integers(0, len(g_act), disc_batch))
            obs = torch.cat([e_obs_t[ei], g_obs[gi]])
            nxt = torch.cat([e_next_t[ei], g_next[gi]])
            act = torch.cat([e_act_t[ei], g_act[gi]])
            with torch.no_grad():
                log_pi = model.policy.get_distribution(obs).log_prob(act)
            labels = torch.cat([torch.ones(disc_batch), torch.zeros(disc_batch)])
            loss = F.binary_cross_entropy_with_logits(disc.logits(obs, nxt, log_pi), labels)
            d_opt.zero_grad()
            loss.backward()
            d_opt.step()
        if r % 10 == 0 or r == rounds - 1:
            log(f"round {r + 1}/{rounds}  disc loss {loss.item():.3f}  "
                f"({time.perf_counter() - t0:.0f}s)")

    metrics = agreement(model.policy, disc)
    metrics["train_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, str(out / REWARD_FILE))
    save_file({k: v.contiguous() for k, v in model.policy.state_dict().items()}, str(out / POLICY_FILE))
    meta = {"method": "AIRL (state-only g, shaping h) vs SB3 PPO, BC warm start", "env": EmergencyEnv.env_id,
            "expert": "greedy BFS planner on the ground-truth reward",
            "settings": dict(n_demos=n_demos, total_steps=rounds * n_envs * n_steps, seed=seed, n_envs=n_envs,
                             n_steps=n_steps, disc_updates=disc_updates, disc_batch=disc_batch,
                             bc_epochs=bc_epochs, gamma=gamma, ppo_lr=ppo_lr,
                             generator_reward="f - log pi" if entropy_term else "f"),
            "expert_demo_return": float(e_ret.mean()),
            "agreement": metrics, "versions": library_versions()}
    write_json(out / META_FILE, meta)
    return meta
