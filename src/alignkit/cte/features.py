"""Hand-made features of a partial trajectory in the Emergency gridworld, for the proxy human.

A segment has states s_0..s_L (s_0 = the shared start) and actions a_0..a_{L-1}. "Visited" means
s_1..s_L. Distances are Manhattan; "nearest citizen" is 10 when no citizen is left. 46 features:

==  ======================  ============================================================
 0  length                  L
 1  citizens_saved          rescues during the segment
 2  saved_per_step          citizens_saved / L
 3  citizens_start          citizens left in s_0
 4  citizens_end            citizens left in s_L
 5  steps_on_goal           visited states on the goal cell G
 6  frac_on_goal            steps_on_goal / L
 7  dist_goal_start         player to G in s_0
 8  dist_goal_end           player to G in s_L
 9  dist_goal_mean          mean over visited states
10  dist_goal_change        dist_goal_end - dist_goal_start
11  dist_citizen_start      player to nearest citizen in s_0
12  dist_citizen_end        ... in s_L
13  dist_citizen_mean       ... mean over visited states
14  dist_citizen_change     dist_citizen_end - dist_citizen_start
15  adjacent_citizens_start citizens next to the player in s_0
16  adjacent_citizens_end   ... in s_L
17  unique_cells            distinct player cells among visited states
18  frac_unique_cells       unique_cells / L
19  blocked_moves           move actions that left the player where it was
20  failed_grabs            grab actions that rescued nobody
21-29 frac_action_<a>       fraction of each of the 9 actions (up, down, left, right, noop,
                            grab-up, grab-down, grab-left, grab-right)
30  start_row   31 start_col   32 end_row   33 end_col   34 mean_row   35 mean_col
36-44 occupancy_<i><j>      fraction of visited states in each 2x2 block (i, j in 0..2) of the
                            6x6 interior, row-major
45  displacement            Manhattan distance between the player in s_0 and in s_L
==  ======================  ============================================================

Features are computed from the full state (every object drawn, see ``env.state_planes``), not from
the agent's observation, where a citizen under the player is hidden. The proxy human sees the features of the original and of the counterfactual (92 inputs), z-scored
with training-set statistics.
"""

from __future__ import annotations

import numpy as np

from alignkit.cte.env import GOAL, SIZE

FEATURE_NAMES = (
    ["length", "citizens_saved", "saved_per_step", "citizens_start", "citizens_end", "steps_on_goal",
     "frac_on_goal", "dist_goal_start", "dist_goal_end", "dist_goal_mean", "dist_goal_change",
     "dist_citizen_start", "dist_citizen_end", "dist_citizen_mean", "dist_citizen_change",
     "adjacent_citizens_start", "adjacent_citizens_end", "unique_cells", "frac_unique_cells",
     "blocked_moves", "failed_grabs"]
    + [f"frac_action_{a}" for a in range(9)]
    + ["start_row", "start_col", "end_row", "end_col", "mean_row", "mean_col"]
    + [f"occupancy_{i}{j}" for i in range(3) for j in range(3)]
    + ["displacement"]
)
N_FEATURES = len(FEATURE_NAMES)
assert N_FEATURES == 46


def segment_features(obs: np.ndarray | list, actions: list[int]) -> np.ndarray:
    """46 features (see module docstring) of one segment given its observations s_0..s_L and actions."""
    o = np.asarray(obs).reshape(len(obs), 5, SIZE, SIZE)
    L = max(len(actions), 1)
    flat_player = o[:, 1].reshape(len(o), -1).argmax(1)
    rows, cols = flat_player // SIZE, flat_player % SIZE
    cit = o[:, 2] > 0.5
    n_cit = cit.reshape(len(o), -1).sum(1)
    d_goal = np.abs(rows - GOAL[0]) + np.abs(cols - GOAL[1])
    d_cit = np.empty(len(o))
    adj = np.empty(len(o))
    for i in range(len(o)):
        rr, cc = np.nonzero(cit[i])
        if len(rr):
            d = np.abs(rr - rows[i]) + np.abs(cc - cols[i])
            d_cit[i], adj[i] = d.min(), (d == 1).sum()
        else:
            d_cit[i], adj[i] = 10.0, 0.0
    acts = np.asarray(actions, dtype=int)
    vis = slice(1, None)
    saved = float(max(n_cit[0] - n_cit[-1], 0))
    on_goal = float(((rows[vis] == GOAL[0]) & (cols[vis] == GOAL[1])).sum())
    moved = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rescued = n_cit[1:] < n_cit[:-1]
    is_move, is_grab = acts < 4, acts >= 5
    unique = float(len(set(flat_player[vis].tolist())))
    occ = np.zeros(9)
    for r, c in zip(rows[vis], cols[vis]):
        occ[min((r - 1) // 2, 2) * 3 + min((c - 1) // 2, 2)] += 1
    vr = rows[vis] if len(actions) else rows
    vc = cols[vis] if len(actions) else cols
    f = [L, saved, saved / L, n_cit[0], n_cit[-1], on_goal, on_goal / L,
         d_goal[0], d_goal[-1], d_goal[vis].mean() if len(actions) else d_goal[0], d_goal[-1] - d_goal[0],
         d_cit[0], d_cit[-1], d_cit[vis].mean() if len(actions) else d_cit[0], d_cit[-1] - d_cit[0],
         adj[0], adj[-1], unique, unique / L,
         float((is_move & ~moved).sum()), float((is_grab & ~rescued).sum())]
    f += list(np.bincount(acts, minlength=9)[:9] / L)
    f += [rows[0], cols[0], rows[-1], cols[-1], vr.mean(), vc.mean()]
    f += list(occ / L)
    f += [abs(rows[-1] - rows[0]) + abs(cols[-1] - cols[0])]
    return np.asarray(f, dtype=np.float64)


def cte_features(cte) -> tuple[np.ndarray, np.ndarray]:
    """Features of both segments, read from the full state (objects under the player or under G are
    counted, unlike in the agent's occluded observation)."""
    from alignkit.cte.env import state_planes

    def full(seg):
        return [state_planes(s, occlude=False) for s in seg.states]

    return (segment_features(full(cte.orig), cte.orig.actions), segment_features(full(cte.cf), cte.cf.actions))
