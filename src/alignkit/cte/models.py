"""The learned reward g(s), shaping h(s) and the agent's policy: torch modules, safetensors I/O and
numpy inference.

Files under a weights folder (the shipped one is ``alignkit/cte/weights/``):

* ``airl_reward.safetensors``: AIRL discriminator, keys ``g.*`` (reward) and ``h.*`` (shaping), each a
  320-64-64-1 ReLU MLP on the flattened 5x8x8 observation;
* ``policy.safetensors``: the stable-baselines3 PPO ``MlpPolicy`` ``state_dict`` (net_arch 64-64, tanh),
  saved with safetensors, never pickle; :func:`load_sb3_policy` rebuilds it;
* ``airl_meta.json``: training settings and the agreement metrics.

The CTE search calls the policy and the reward hundreds of thousands of times on single observations,
where torch's per-call overhead dominates; :class:`NumpyMLP` runs the same weights in numpy (~10x faster
on one observation) and is checked against torch in the tests.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alignkit.errors import AlignkitError

OBS_DIM = 5 * 8 * 8
N_ACTIONS = 9
REWARD_FILE, POLICY_FILE, META_FILE = "airl_reward.safetensors", "policy.safetensors", "airl_meta.json"


def shipped_weights_dir() -> Path:
    return Path(str(resources.files("alignkit.cte") / "weights"))


def mlp(in_dim: int = OBS_DIM, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


class AIRLDiscriminator(nn.Module):
    """f(s, a, s') = g(s) + gamma * h(s') - h(s); D = exp(f) / (exp(f) + pi(a|s)) = sigmoid(f - log pi)."""

    def __init__(self, gamma: float = 0.99, hidden: int = 64):
        super().__init__()
        self.gamma = gamma
        self.g = mlp(hidden=hidden)
        self.h = mlp(hidden=hidden)

    def f(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return (self.g(obs) + self.gamma * self.h(next_obs) - self.h(obs)).squeeze(-1)

    def logits(self, obs, next_obs, log_pi) -> torch.Tensor:
        return self.f(obs, next_obs) - log_pi


class NumpyMLP:
    """Linear layers with an activation between them, from a state_dict-like mapping."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], activation: str):
        self.layers = [(np.ascontiguousarray(w.T, dtype=np.float64), b.astype(np.float64)) for w, b in weights]
        self.act = np.tanh if activation == "tanh" else (lambda x: np.maximum(x, 0.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float64).reshape(-1, self.layers[0][0].shape[0])
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h


def _bad_weights(path: Path) -> AlignkitError:
    return AlignkitError(f"{path} is not a valid weights file; retrain with 'alignkit cte train --out {path.parent}' "
                         "or pass --model-dir pointing at a folder with trained weights")


def _load(path: Path) -> dict:
    """The tensors of a safetensors file; a truncated, foreign or corrupt file is a user error."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception:  # SafetensorError, OSError, ValueError ... all mean: not our weights
        raise _bad_weights(path) from None


def _layers(sd: dict, prefixes: list[str], path: Path, in_dim: int = OBS_DIM,
            out_dim: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weight and bias of each linear layer, checked: present, float, chained shapes from ``in_dim`` to
    ``out_dim``, finite values (else the file is not a valid weights file)."""
    out = []
    width = in_dim
    for p in prefixes:
        try:
            w, b = sd[p + ".weight"].float().numpy(), sd[p + ".bias"].float().numpy()
        except (KeyError, AttributeError, TypeError, RuntimeError):
            raise _bad_weights(path) from None
        if w.ndim != 2 or b.shape != (w.shape[0],) or w.shape[1] != width \
                or not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise _bad_weights(path)
        width = w.shape[0]
        out.append((w, b))
    if width != out_dim:
        raise _bad_weights(path)
    return out


def _check_dir(weights_dir: str | Path | None) -> Path:
    d = Path(weights_dir) if weights_dir else shipped_weights_dir()
    for f in (REWARD_FILE, POLICY_FILE):
        if not (d / f).exists():
            raise AlignkitError(f"{d / f} not found; train it with 'alignkit cte train --out {d}' "
                                "or pass --model-dir pointing at a folder with trained weights")
    return d


class RewardModel:
    """g(s) (and h(s)) in numpy: ``reward(obs) -> float``."""

    def __init__(self, weights_dir: str | Path | None = None):
        path = _check_dir(weights_dir) / REWARD_FILE
        sd = _load(path)
        self.g = NumpyMLP(_layers(sd, ["g.1", "g.3", "g.5"], path), "relu")
        self.h = NumpyMLP(_layers(sd, ["h.1", "h.3", "h.5"], path), "relu")

    def __call__(self, obs: np.ndarray) -> float:
        return float(self.g(obs)[0, 0])

    def batch(self, obs: np.ndarray) -> np.ndarray:
        return self.g(obs.reshape(len(obs), -1))[:, 0]


class PolicyModel:
    """The PPO actor in numpy: ``policy(obs) -> action probabilities``."""

    def __init__(self, weights_dir: str | Path | None = None):
        path = _check_dir(weights_dir) / POLICY_FILE
        sd = _load(path)
        self.net = NumpyMLP(_layers(sd, ["mlp_extractor.policy_net.0", "mlp_extractor.policy_net.2", "action_net"],
                                    path, out_dim=N_ACTIONS), "tanh")

    def logits(self, obs: np.ndarray) -> np.ndarray:
        return self.net(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        z = self.net(obs)[0]
        z = np.exp(z - z.max())
        return z / z.sum()


def load_models(weights_dir: str | Path | None = None) -> tuple[PolicyModel, RewardModel]:
    reward = RewardModel(weights_dir)  # the reward file first: the one a bad folder most likely names
    return PolicyModel(weights_dir), reward


def load_meta(weights_dir: str | Path | None = None) -> dict:
    p = Path(weights_dir or shipped_weights_dir()) / META_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def policy_kwargs() -> dict:
    return dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh)


def load_sb3_policy(weights_dir: str | Path | None = None):
    """Rebuild the stable-baselines3 ActorCriticPolicy and load the safetensors state_dict into it."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    from alignkit.cte.env import EmergencyEnv

    env = EmergencyEnv()
    pol = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 3e-4, **policy_kwargs())
    path = _check_dir(weights_dir) / POLICY_FILE
    try:
        pol.load_state_dict(_load(path))
    except RuntimeError:  # missing / unexpected keys or wrong shapes
        raise _bad_weights(path) from None
    return pol.eval()
