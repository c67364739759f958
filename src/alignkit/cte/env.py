"""The Emergency gridworld (methods.md section 4), as a plain-numpy Gymnasium environment.

Layout: an 8x8 grid whose border cells are walls (a 6x6 interior). Each episode places 7 citizens,
2 impassable houses and the player at random interior cells; the goal cell G (the "fire extinguisher")
is fixed at (row 6, col 6). Coordinates are (row, col); "up" decreases the row.

Actions (9): 0 up, 1 down, 2 left, 3 right (moves), 4 no-op, 5-8 grab a citizen in the adjacent cell
up/down/left/right. A move into a wall, house or citizen leaves the player where it is (citizens block;
they have to be rescued, not walked over). A grab with no citizen there does nothing.

Observation: 5 binary 8x8 planes, float32, shape (5, 8, 8): wall, player, citizen, house, goal.
Ground-truth reward: +10 for each citizen rescued in the step, +0.1 for ending the step on G.
Episodes end (``truncated``) after 75 steps; there is no other terminal condition.

Search methods (MCTO, DaC) need to branch from any state many times, so the state is a small immutable
:class:`EmergencyState` (player cell, citizen and house bitmasks, time, rescues): ``get_state()`` and
``set_state()`` cost about a microsecond. Dynamics are pure Python integer operations.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

SIZE = 8
N_CITIZENS = 7
N_HOUSES = 2
MAX_STEPS = 75
GOAL = (6, 6)
N_ACTIONS = 9
ACTION_NAMES = ["up", "down", "left", "right", "noop", "grab-up", "grab-down", "grab-left", "grab-right"]
RESCUE_REWARD = 10.0
GOAL_REWARD = 0.1

_DELTAS = [-SIZE, SIZE, -1, 1]  # up, down, left, right as flat-index offsets
_GOAL_IDX = GOAL[0] * SIZE + GOAL[1]
_WALL = np.zeros(SIZE * SIZE, dtype=np.float32)
for _i in range(SIZE * SIZE):
    _r, _c = divmod(_i, SIZE)
    if _r in (0, SIZE - 1) or _c in (0, SIZE - 1):
        _WALL[_i] = 1.0
_WALL_MASK = sum(1 << i for i in range(SIZE * SIZE) if _WALL[i])
_INTERIOR = [i for i in range(SIZE * SIZE) if not _WALL[i] and i != _GOAL_IDX]
_GOAL_PLANE = np.zeros(SIZE * SIZE, dtype=np.float32)
_GOAL_PLANE[_GOAL_IDX] = 1.0
_ROW = np.arange(SIZE * SIZE) // SIZE
_COL = np.arange(SIZE * SIZE) % SIZE


class EmergencyState(NamedTuple):
    """Everything needed to restore the environment exactly (immutable, hashable, JSON-friendly)."""

    player: int  # flat cell index r*8+c
    citizens: int  # bitmask over the 64 cells
    houses: int  # bitmask over the 64 cells
    t: int  # steps taken so far
    rescued: int  # citizens rescued so far

    def to_dict(self) -> dict:
        return {"player": self.player, "citizens": str(self.citizens), "houses": str(self.houses),
                "t": self.t, "rescued": self.rescued}

    @classmethod
    def from_dict(cls, d: dict) -> "EmergencyState":
        return cls(int(d["player"]), int(d["citizens"]), int(d["houses"]), int(d["t"]), int(d["rescued"]))


def mask_to_plane(mask: int) -> np.ndarray:
    """64-bit cell mask -> float32 vector of 64 zeros/ones (bit i = cell i)."""
    bits = np.unpackbits(np.frombuffer(mask.to_bytes(8, "little"), dtype=np.uint8), bitorder="little")
    return bits.astype(np.float32)


def player_rc(obs: np.ndarray) -> tuple[int, int]:
    """Player (row, col) read from an observation."""
    idx = int(np.argmax(obs.reshape(5, -1)[1]))
    return divmod(idx, SIZE)


class EmergencyEnv(gym.Env):
    """The Emergency gridworld. ``reset(seed=s)`` gives the same layout for the same ``s``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, max_steps: int = MAX_STEPS):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(5, SIZE, SIZE), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.render_mode = render_mode
        self.max_steps = max_steps
        self._s = EmergencyState(_GOAL_IDX, 0, 0, 0, 0)
        self._houses_plane = np.zeros(SIZE * SIZE, dtype=np.float32)
        self._houses_mask_cached = -1

    # ----- state save / restore (used by the CTE search) -----
    def get_state(self) -> EmergencyState:
        return self._s

    def set_state(self, state: EmergencyState) -> np.ndarray:
        """Restore a state saved by :meth:`get_state`; returns its observation."""
        self._s = state
        return self._obs()

    def restore(self, state: EmergencyState) -> None:
        """:meth:`set_state` without building the observation (the search's fast path)."""
        self._s = state

    # ----- gymnasium API -----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cells = self.np_random.choice(len(_INTERIOR), size=1 + N_CITIZENS + N_HOUSES, replace=False)
        cells = [_INTERIOR[i] for i in cells]
        player = cells[0]
        citizens = sum(1 << c for c in cells[1:1 + N_CITIZENS])
        houses = sum(1 << c for c in cells[1 + N_CITIZENS:])
        self._s = EmergencyState(player, citizens, houses, 0, 0)
        return self._obs(), {}

    def step(self, action):
        s = self._s
        a = int(action)
        player, citizens = s.player, s.citizens
        reward = 0.0
        if a < 4:
            nxt = player + _DELTAS[a]
            blocked = (_WALL_MASK | s.houses | citizens) >> nxt & 1
            if not blocked:
                player = nxt
        elif a >= 5:
            target = player + _DELTAS[a - 5]
            if citizens >> target & 1:
                citizens &= ~(1 << target)
                reward += RESCUE_REWARD
        elif a != 4:
            raise ValueError(f"invalid action {action}")
        if player == _GOAL_IDX:
            reward += GOAL_REWARD
        t = s.t + 1
        self._s = EmergencyState(player, citizens, s.houses, t, s.rescued + (reward >= RESCUE_REWARD))
        truncated = t >= self.max_steps
        return self._obs(), reward, False, truncated, {}

    def _obs(self) -> np.ndarray:
        s = self._s
        if s.houses != self._houses_mask_cached:
            self._houses_plane = mask_to_plane(s.houses)
            self._houses_mask_cached = s.houses
        obs = np.empty((5, SIZE * SIZE), dtype=np.float32)
        obs[0] = _WALL
        obs[1] = 0.0
        obs[1, s.player] = 1.0
        obs[2] = mask_to_plane(s.citizens)
        obs[3] = self._houses_plane
        obs[4] = _GOAL_PLANE
        return obs.reshape(5, SIZE, SIZE)

    def is_done(self) -> bool:
        return self._s.t >= self.max_steps

    # ----- proximity for the CTE criteria -----
    @staticmethod
    def proximity_matrix(states_a: list, states_b: list) -> np.ndarray:
        """Pairwise state part of the reference pair distance, from states (fast path of
        :meth:`proximity_features`): popcount(citizens_a XOR citizens_b) + 1.5 * Manhattan(players)."""
        pa = [s.player for s in states_a]
        pb = [s.player for s in states_b]
        ca = np.array([s.citizens for s in states_a], dtype=np.uint64)
        cb = np.array([s.citizens for s in states_b], dtype=np.uint64)
        manhattan = np.abs(_ROW[pa][:, None] - _ROW[pb][None, :]) + np.abs(_COL[pa][:, None] - _COL[pb][None, :])
        return np.bitwise_count(ca[:, None] ^ cb[None, :]) + 1.5 * manhattan

    @staticmethod
    def proximity_features(obs: np.ndarray) -> np.ndarray:
        """Vector whose L1 distance is the reference pair distance without the action term:
        sum |citizen-plane difference| + 1.5 * Manhattan(player positions)."""
        r, c = player_rc(obs)
        return np.concatenate([obs.reshape(5, -1)[2], np.array([1.5 * r, 1.5 * c], dtype=np.float32)])

    # ----- rendering -----
    def render(self):
        return render_state(self._s)


_COLORS = {
    "floor": (245, 245, 240), "wall": (90, 90, 90), "house": (150, 95, 50), "goal": (120, 200, 120),
    "citizen": (60, 110, 220), "player": (220, 50, 50), "grid": (200, 200, 200),
}


def render_state(state: EmergencyState, cell: int = 32) -> np.ndarray:
    """RGB uint8 image (8*cell x 8*cell x 3) of a state: walls grey, houses brown, goal green,
    citizens blue discs, player a red square."""
    img = np.zeros((SIZE * cell, SIZE * cell, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:cell, 0:cell]
    disc = (yy - cell / 2 + 0.5) ** 2 + (xx - cell / 2 + 0.5) ** 2 <= (cell * 0.35) ** 2
    for i in range(SIZE * SIZE):
        r, c = divmod(i, SIZE)
        tile = img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
        if _WALL[i]:
            tile[:] = _COLORS["wall"]
        elif state.houses >> i & 1:
            tile[:] = _COLORS["house"]
        elif i == _GOAL_IDX:
            tile[:] = _COLORS["goal"]
        else:
            tile[:] = _COLORS["floor"]
        if state.citizens >> i & 1:
            tile[disc] = _COLORS["citizen"]
        if state.player == i:
            m = cell // 5
            tile[m:cell - m, m:cell - m] = _COLORS["player"]
        tile[0, :] = _COLORS["grid"]
        tile[:, 0] = _COLORS["grid"]
    return img


def make_env() -> EmergencyEnv:
    return EmergencyEnv()
