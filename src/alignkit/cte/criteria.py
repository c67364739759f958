"""The six quality criteria of a CTE, min-max normalisation and the weighted sum.

For an original segment o and a counterfactual c starting from the same state s_t, both of length L
(R = learned reward of a state, pi = the agent's policy, mean R over the states s_t..s_{t+L}, the shared
start state included as in the original code); all are "higher is better":

* validity          |mean R(o) - mean R(c)|
* proximity         -MHD(o, c): minus the modified Hausdorff distance (Dubuisson & Jain 1994)
                    between the sets of (next state, action) pairs,
                    MHD(A, B) = max(mean_a min_b d(a, b), mean_b min_a d(a, b)),
                    d = 0.5*[actions differ] + |phi(s) - phi(s')|_1, with phi = env.proximity_features;
                    for Emergency that is sum |citizen-plane difference| + 1.5 * Manhattan(players).
* state_importance  -entropy(pi(.|s_t)) (a state where the agent is sure matters)
* diversity         against the k = max(round(n/4), min(n, 3)) nearest of the n earlier CTEs, per term:
                    mean of the k smallest |L - L_p| + mean of the k smallest |t - t_p| + the share of
                    earlier CTEs going the other way (R(o) >= R(c) "down" vs "up"); 0 for the first CTE
* realisticness     ``signed`` (default, the original code): mean R(c) - mean R(o);
                    ``likelihood``: mean log pi(a|s) over the counterfactual's actions (how plausible the
                    counterfactual is for the agent; see docs/cte.md for why both exist)
* sparsity          -(len(o) + len(c))

Each criterion is min-max normalised with bounds taken from sample CTEs (:meth:`Scorer.fit`), then
quality = sum_k w_k * normalised_k with weights in [0, 1] (:data:`WEIGHT_PRESETS`; ``paper`` is the
default: the paper's best weights).
"""

from __future__ import annotations

import numpy as np

from alignkit.errors import AlignkitError

CRITERIA = ["validity", "proximity", "state_importance", "diversity", "realisticness", "sparsity"]

WEIGHT_PRESETS = {
    # the best weights the paper reports (validity and proximity matter most)
    "paper": {"validity": 0.98, "proximity": 0.98, "state_importance": 0.53, "diversity": 0.58,
              "realisticness": 0.30, "sparsity": 0.85},
    # alignkit's earlier hand-set weights: validity first, the rest as tie-breakers
    "alignkit": {"validity": 1.0, "proximity": 0.4, "state_importance": 0.3, "diversity": 0.3,
                 "realisticness": 0.3, "sparsity": 0.3},
}
DEFAULT_PRESET = "paper"
DEFAULT_WEIGHTS = dict(WEIGHT_PRESETS[DEFAULT_PRESET])
REALISTICNESS = ("signed", "likelihood")


def check_weights(weights: dict[str, float] | str | None = None) -> dict[str, float]:
    """A preset name (``paper``, ``alignkit``) or a dict of criterion -> weight in [0, 1] (missing
    criteria take the default preset's weight)."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if isinstance(weights, str):
        if weights not in WEIGHT_PRESETS:
            raise AlignkitError(f"unknown weights preset {weights!r}; choose one of: {', '.join(WEIGHT_PRESETS)}")
        return dict(WEIGHT_PRESETS[weights])
    out = dict(DEFAULT_WEIGHTS)
    for k, v in weights.items():
        if k not in CRITERIA:
            raise AlignkitError(f"unknown criterion {k!r} in weights; use {', '.join(CRITERIA)}")
        if not 0.0 <= float(v) <= 1.0:
            raise AlignkitError(f"weight for {k} is {v}; weights must lie in [0, 1]")
        out[k] = float(v)
    return out


def check_realisticness(kind: str) -> str:
    if kind not in REALISTICNESS:
        raise AlignkitError(f"unknown realisticness {kind!r}; choose one of: {', '.join(REALISTICNESS)}")
    return kind


def n_nearest(n: int) -> int:
    """How many earlier CTEs diversity compares with (the original code's rule)."""
    return max(int(round(n * 0.25)), min(n, 3))


def modified_hausdorff(fa: np.ndarray, aa: np.ndarray, fb: np.ndarray, ab: np.ndarray) -> float:
    """MHD between sets {(fa_i, aa_i)} and {(fb_j, ab_j)} with d = 0.5*[a != a'] + L1(f, f')."""
    if len(aa) == 0 or len(ab) == 0:
        return 0.0
    return mhd_from_state_distances(np.abs(fa[:, None, :] - fb[None, :, :]).sum(-1), aa, ab)


def mhd_from_state_distances(ds: np.ndarray, aa, ab) -> float:
    """MHD given the pairwise state distances ``ds`` and the two action sequences."""
    d = ds + 0.5 * (np.asarray(aa)[:, None] != np.asarray(ab)[None, :])
    return float(max(d.min(1).sum() / d.shape[0], d.min(0).sum() / d.shape[1]))


def mhd_small(dist, sa, sb, aa, ab) -> float:
    """MHD in plain Python (faster than numpy for a few states): d = dist(s, s') + 0.5*[a != a']."""
    d = [[dist(x, y) + (0.5 if u != v else 0.0) for y, v in zip(sb, ab)] for x, u in zip(sa, aa)]
    fwd = sum(min(row) for row in d) / len(d)
    bwd = sum(min(col) for col in zip(*d)) / len(d[0])
    return fwd if fwd > bwd else bwd


def default_features(obs: np.ndarray) -> np.ndarray:
    return np.asarray(obs, dtype=np.float32).ravel()


class Scorer:
    """Computes raw criteria, normalises them and keeps the history that diversity needs."""

    def __init__(self, env, model, weights: dict[str, float] | str | None = None,
                 bounds: dict[str, tuple[float, float]] | None = None, realisticness: str = "signed"):
        self.model = model
        self.weights = check_weights(weights)
        self.realisticness = check_realisticness(realisticness)
        self.bounds = bounds or {}
        base = getattr(env, "unwrapped", env)
        self.features = getattr(base, "proximity_features", default_features)
        self.state_matrix = getattr(base, "proximity_matrix", None)  # optional fast path on states
        self.state_distance = getattr(base, "state_distance", None)  # optional, for short segments
        self._div_cache: dict[tuple, float] = {}
        self._feat_cache: dict[bytes, np.ndarray] = {}
        self.hist_len: list[int] = []
        self.hist_start: list[int] = []
        self.hist_down: list[bool] = []

    # ----- raw criteria -----
    def _feats(self, obs_list) -> np.ndarray:
        rows = []
        for o in obs_list:
            k = o.tobytes()
            f = self._feat_cache.get(k)
            if f is None:
                if len(self._feat_cache) > 200_000:
                    self._feat_cache.clear()
                f = self._feat_cache[k] = np.asarray(self.features(o), dtype=np.float32)
            rows.append(f)
        return np.stack(rows)

    def proximity(self, orig, cf) -> float:
        if not orig.actions or not cf.actions:
            return 0.0
        if self.state_distance is not None and len(orig.actions) * len(cf.actions) <= 64:
            return -mhd_small(self.state_distance, orig.states[1:], cf.states[1:], orig.actions, cf.actions)
        if self.state_matrix is not None:
            ds = self.state_matrix(orig.states[1:], cf.states[1:])
        else:
            fa, fb = self._feats(orig.obs[1:]), self._feats(cf.obs[1:])
            ds = np.abs(fa[:, None, :] - fb[None, :, :]).sum(-1)
        return -mhd_from_state_distances(ds, orig.actions, cf.actions)

    def diversity(self, length: int, start: int, down: bool) -> float:
        n = len(self.hist_len)
        if not n:
            return 0.0
        key = (length, start, down)
        hit = self._div_cache.get(key)
        if hit is None:
            k = n_nearest(n)
            dl = np.partition(np.abs(self._h_len - length), k - 1)[:k].mean()
            ds = np.partition(np.abs(self._h_start - start), k - 1)[:k].mean()
            other = (n - self._n_down) if down else self._n_down
            hit = self._div_cache[key] = float(dl + ds + other / n)
        return hit

    def means(self, orig, cf) -> tuple[float, float]:
        """mean R over s_t..s_{t+L} of the original and of the counterfactual (start state included)."""
        r0 = self.model.reward(orig.obs[0])
        ro = (r0 + sum(orig.rewards)) / (len(orig.rewards) + 1)
        rc = (r0 + sum(cf.rewards)) / (len(cf.rewards) + 1)
        return ro, rc

    def raw(self, orig, cf, start: int, importance: float | None = None) -> dict[str, float]:
        ro, rc = self.means(orig, cf)
        if importance is None:
            importance = -self.model.entropy(orig.obs[0])
        if self.realisticness == "signed":
            real = rc - ro
        else:
            real = sum(cf.logps) / len(cf.logps) if cf.logps else 0.0
        return {
            "validity": abs(ro - rc),
            "proximity": self.proximity(orig, cf),
            "state_importance": importance,
            "diversity": self.diversity(len(cf), start, ro >= rc),
            "realisticness": real,
            "sparsity": -float(len(orig) + len(cf)),
        }

    # ----- normalisation and weighting -----
    def normalise(self, raw: dict[str, float]) -> dict[str, float]:
        out = {}
        for k in CRITERIA:
            lo, hi = self.bounds.get(k, (0.0, 1.0))
            out[k] = (raw[k] - lo) / (hi - lo) if hi - lo > 1e-9 else 0.0
        return out

    def quality(self, raw: dict[str, float], include: tuple[str, ...] = tuple(CRITERIA)) -> float:
        n = self.normalise(raw)
        return float(sum(self.weights[k] * n[k] for k in include))

    def score(self, cte) -> None:
        """Fill cte.raw / cte.norm / cte.quality."""
        cte.raw = self.raw(cte.orig, cte.cf, cte.start)
        cte.norm = self.normalise(cte.raw)
        cte.quality = float(sum(self.weights[k] * cte.norm[k] for k in CRITERIA))

    def remember(self, cte) -> None:
        ro, rc = self.means(cte.orig, cte.cf)
        self.hist_len.append(len(cte.cf))
        self.hist_start.append(cte.start)
        self.hist_down.append(ro >= rc)
        self._h_len, self._h_start = np.asarray(self.hist_len, float), np.asarray(self.hist_start, float)
        self._n_down = int(sum(self.hist_down))
        self._div_cache = {}

    def reset_history(self) -> None:
        self.hist_len, self.hist_start, self.hist_down = [], [], []
        self._div_cache = {}

    def fit(self, samples: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
        """Set min-max bounds from raw criteria of sample CTEs."""
        if not samples:
            raise AlignkitError("no sample CTEs to fit the normalisation on; generate some first")
        self.bounds = {k: (float(min(s[k] for s in samples)), float(max(s[k] for s in samples)))
                       for k in CRITERIA}
        return self.bounds
