"""The Emergency gridworld with the original code's dynamics, as a plain-numpy
Gymnasium environment (env id ``emergency-v2``, the only one; see :data:`ENVS`).

Layout: an 8x8 grid whose border cells are walls (a 6x6 interior). Each episode places 7 citizens,
2 impassable houses and the player on distinct cells drawn from all 36 interior cells; the goal cell G
(the "fire extinguisher") is fixed at (row 6, col 6) and may lie under a citizen, a house or the player.
Coordinates are (row, col); "up" decreases the row.

Actions (9): 0 up, 1 down, 2 left, 3 right (moves), 4 no-op, 5-8 grab a citizen in the adjacent cell
up/down/left/right. The rules, in the order the original game applies them within one step:

1. goal bonus: +0.1 if the player *starts* the step on G (it is paid on the pre-move state);
2. grab: a grab action removes a citizen from the adjacent cell (+10); with nobody there it does nothing;
3. move: a move into a wall or a house leaves the player where it is; citizens do *not* block, the
   player walks onto them (the citizen stays there and can be grabbed after stepping off);
4. the episode ends (``truncated``) after 74 actions (the original's step counter also ticks on the
   first frame, so its 75-step limit allows 74 actions).

Observation: 5 binary 8x8 planes, float32, shape (5, 8, 8): wall, player, citizen, house, goal, drawn
like the original's one-character-per-cell board, whose z-order is citizen < goal < house < player:
an object under the player is hidden, a citizen on G is hidden by G, and G under a house is hidden.
Hidden objects are still in the state (:class:`EmergencyState`), which the search compares.

Search methods (MCTO, DaC) need to branch from any state many times, so the state is a small immutable
:class:`EmergencyState` (player cell, citizen and house bitmasks, time, rescues): ``get_state()`` and
``set_state()`` cost about a microsecond. Dynamics are pure Python integer operations.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

from alignkit.errors import AlignkitError

SIZE = 8
N_CITIZENS = 7
N_HOUSES = 2
MAX_STEPS = 74
GOAL = (6, 6)
N_ACTIONS = 9
ACTION_NAMES = ["up", "down", "left", "right", "noop", "grab-up", "grab-down", "grab-left", "grab-right"]
RESCUE_REWARD = 10.0
GOAL_REWARD = 0.1
DEFAULT_ENV = "emergency-v2"

_DELTAS = [-SIZE, SIZE, -1, 1]  # up, down, left, right as flat-index offsets
_GOAL_IDX = GOAL[0] * SIZE + GOAL[1]
_GOAL_BIT = 1 << _GOAL_IDX
_WALL = np.zeros(SIZE * SIZE, dtype=np.float32)
for _i in range(SIZE * SIZE):
    _r, _c = divmod(_i, SIZE)
    if _r in (0, SIZE - 1) or _c in (0, SIZE - 1):
        _WALL[_i] = 1.0
_WALL_MASK = sum(1 << i for i in range(SIZE * SIZE) if _WALL[i])
_INTERIOR = [i for i in range(SIZE * SIZE) if not _WALL[i]]  # all 36 interior cells, G included
_INTERIOR_SET = frozenset(_INTERIOR)
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
    def from_dict(cls, d: dict, max_steps: int = MAX_STEPS) -> "EmergencyState":
        """The state stored by :meth:`to_dict`, checked against the grid: ``ValueError`` (one line saying
        which field is wrong) for a missing key, a wrong type or a value no episode can reach."""
        return check_state(d, max_steps)


_MASK_FIELDS = ("citizens", "houses")
_INT_FIELDS = ("player", "t", "rescued")


def _as_int(d: dict, key: str) -> int:
    v = d[key]
    if key in _MASK_FIELDS and isinstance(v, str) and v.isascii() and v.isdigit():
        return int(v)  # masks are stored as decimal strings (they exceed JSON's safe integers)
    if isinstance(v, bool) or not isinstance(v, int):
        kind = "a bitmask of cells (a non-negative decimal string)" if key in _MASK_FIELDS else "an integer"
        raise ValueError(f"{key} must be {kind}, got {v!r:.40}")
    return v


def check_state(d, max_steps: int = MAX_STEPS) -> EmergencyState:
    """An :class:`EmergencyState` from a dict (as :meth:`EmergencyState.to_dict` writes it) after checking
    every field against the grid; ``ValueError`` with a one-line reason otherwise."""
    if not isinstance(d, dict):
        raise ValueError(f"the state must be an object with {', '.join(EmergencyState._fields)}")
    missing = [k for k in EmergencyState._fields if k not in d]
    if missing:
        raise ValueError(f"the state lacks {', '.join(missing)}")
    player, citizens, houses, t, rescued = (_as_int(d, k) for k in EmergencyState._fields)
    if player not in _INTERIOR_SET:
        raise ValueError(f"player must be an interior cell index r*8+c with r, c in 1..{SIZE - 2}, got {player}")
    for name, mask, most in (("citizens", citizens, N_CITIZENS), ("houses", houses, N_HOUSES)):
        if not 0 <= mask < 1 << (SIZE * SIZE) or mask & _WALL_MASK:
            raise ValueError(f"{name} must be a bitmask of interior cells, got {mask}")
        if mask.bit_count() > most:
            raise ValueError(f"{name} marks {mask.bit_count()} cells; at most {most}")
    if citizens & houses:
        raise ValueError("citizens and houses share a cell")
    if houses >> player & 1:
        raise ValueError("player stands on a house")
    if not 0 <= t <= max_steps:
        raise ValueError(f"t must be in 0..{max_steps}, got {t}")
    if not 0 <= rescued <= N_CITIZENS - citizens.bit_count():
        raise ValueError(f"rescued must be in 0..{N_CITIZENS - citizens.bit_count()} "
                         f"({N_CITIZENS} citizens in all), got {rescued}")
    return EmergencyState(player, citizens, houses, t, rescued)


_PLANES: dict[int, np.ndarray] = {}


def mask_to_plane(mask: int) -> np.ndarray:
    """64-bit cell mask -> float32 vector of 64 zeros/ones (bit i = cell i); cached, do not modify."""
    plane = _PLANES.get(mask)
    if plane is None:
        mask = int(mask)
        bits = np.unpackbits(np.frombuffer(mask.to_bytes(8, "little"), dtype=np.uint8), bitorder="little")
        if len(_PLANES) > 200_000:
            _PLANES.clear()
        plane = _PLANES[mask] = bits.astype(np.float32)
    return plane


def player_rc(obs: np.ndarray) -> tuple[int, int]:
    """Player (row, col) read from an observation."""
    idx = int(np.argmax(obs.reshape(5, -1)[1]))
    return divmod(idx, SIZE)


class EmergencyEnv(gym.Env):
    """The Emergency gridworld. ``reset(seed=s)`` gives the same layout for the same ``s``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    env_id = DEFAULT_ENV

    def __init__(self, render_mode: str | None = None, max_steps: int = MAX_STEPS):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(5, SIZE, SIZE), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.render_mode = render_mode
        self.max_steps = max_steps
        self._s = EmergencyState(_GOAL_IDX, 0, 0, 0, 0)

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
        cells = self.np_random.choice(len(_INTERIOR), size=N_CITIZENS + N_HOUSES + 1, replace=False)
        cells = [_INTERIOR[i] for i in cells]
        citizens = sum(1 << c for c in cells[:N_CITIZENS])
        houses = sum(1 << c for c in cells[N_CITIZENS:N_CITIZENS + N_HOUSES])
        self._s = EmergencyState(cells[-1], citizens, houses, 0, 0)
        return self._obs(), {}

    def step(self, action):
        s = self._s
        a = int(action)
        player, citizens = s.player, s.citizens
        reward = GOAL_REWARD if player == _GOAL_IDX else 0.0  # paid on the pre-move state
        rescued = s.rescued
        if a < 4:
            nxt = player + _DELTAS[a]
            if not ((_WALL_MASK | s.houses) >> nxt & 1):  # citizens do not block
                player = nxt
        elif a >= 5:
            if a > 8:
                raise ValueError(f"invalid action {action}")
            target = player + _DELTAS[a - 5]
            if citizens >> target & 1:
                citizens &= ~(1 << target)
                reward += RESCUE_REWARD
                rescued += 1
        elif a != 4:
            raise ValueError(f"invalid action {action}")
        t = s.t + 1
        self._s = EmergencyState(player, citizens, s.houses, t, rescued)
        return self._obs(), reward, False, t >= self.max_steps, {}

    def _obs(self) -> np.ndarray:
        return state_planes(self._s)

    def is_done(self) -> bool:
        return self._s.t >= self.max_steps

    # ----- proximity for the CTE criteria -----
    @staticmethod
    def state_distance(a: EmergencyState, b: EmergencyState) -> float:
        """The state part of the reference pair distance between two states, on what the observation
        shows: popcount(visible citizens_a XOR visible citizens_b) + 1.5 * Manhattan(players)."""
        ca = a.citizens & ~((1 << a.player) | _GOAL_BIT)
        cb = b.citizens & ~((1 << b.player) | _GOAL_BIT)
        ra, xa = divmod(a.player, SIZE)
        rb, xb = divmod(b.player, SIZE)
        return (ca ^ cb).bit_count() + 1.5 * (abs(ra - rb) + abs(xa - xb))

    @staticmethod
    def proximity_matrix(states_a: list, states_b: list) -> np.ndarray:
        """Pairwise :meth:`state_distance` (vectorised; the same as the L1 distance between
        :meth:`proximity_features` of the observations)."""
        pa = [s.player for s in states_a]
        pb = [s.player for s in states_b]
        ca = np.array([s.citizens & ~((1 << s.player) | _GOAL_BIT) for s in states_a], dtype=np.uint64)
        cb = np.array([s.citizens & ~((1 << s.player) | _GOAL_BIT) for s in states_b], dtype=np.uint64)
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


def state_planes(state: EmergencyState, occlude: bool = True) -> np.ndarray:
    """The (5, 8, 8) float32 planes wall/player/citizen/house/goal of a state. With ``occlude`` (the
    observation) each cell shows only its top object (citizen < goal < house < player); without it every
    object is drawn (what the proxy-human features read)."""
    pbit = 1 << state.player
    cit, goal = state.citizens, _GOAL_BIT
    if occlude:
        cit &= ~(pbit | _GOAL_BIT)
        goal &= ~(pbit | state.houses)
    obs = np.empty((5, SIZE * SIZE), dtype=np.float32)
    obs[0] = _WALL
    obs[1] = 0.0
    obs[1, state.player] = 1.0
    obs[2] = mask_to_plane(cit)
    obs[3] = mask_to_plane(state.houses)
    obs[4] = mask_to_plane(goal)
    return obs.reshape(5, SIZE, SIZE)


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


ENVS = {DEFAULT_ENV: EmergencyEnv}


def make_env(env_id: str = DEFAULT_ENV) -> EmergencyEnv:
    """The environment registered under ``env_id``; an unknown id is a user error."""
    if env_id not in ENVS:
        raise AlignkitError(f"unknown env id {env_id!r}; choose one of: {', '.join(ENVS)}")
    return ENVS[env_id]()
