"""Glue for the Emergency experiment: original trajectories, normalisation, generation, storage, evaluation.

A run folder holds:

* ``normaliser.json``: min-max bounds of the six criteria and the weights;
* ``ctes_<method>.jsonl``: one CTE per line (start state, both action sequences, rewards, criteria,
  quality, features, seconds), enough to re-simulate and draw it;
* ``results.json`` and ``results.md``: the proxy-human table (written by ``evaluate``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from alignkit.cte import dac, mcto, random_gen  # noqa: F401  (register the generators)
from alignkit.cte.core import CTE, GENERATORS, MAX_SEED, Model, Segment, check_seed, rollout
from alignkit.cte.criteria import CRITERIA, Scorer, check_realisticness, check_weights
from alignkit.cte.env import DEFAULT_ENV, EmergencyEnv, EmergencyState, check_state, make_env
from alignkit.cte.features import cte_features
from alignkit.cte.models import load_models
from alignkit.errors import AlignkitError
from alignkit.io import atomic_write_text, write_json

METHODS = ["mcto", "dac", "random"]


@dataclass
class Preset:
    n: int  # CTEs per method
    seeds: int  # proxy-human seeds
    mcto: dict = field(default_factory=dict)
    epochs: int = 150
    weights: str = "paper"  # criteria weights preset


PRESETS = {
    "quick": Preset(n=120, seeds=3, mcto=dict(mcto.PAPER_SETTINGS, n_starts=5), epochs=60),
    "paper": Preset(n=1000, seeds=10, mcto=dict(mcto.PAPER_SETTINGS)),
}

SETTINGS = {"mcto": dict(mcto.PAPER_SETTINGS), "dac": {}, "random": {}}


def episode_seed(i: int, seed: int) -> int:
    return 1_000_000 + 10_000 * seed + i


def make_model(weights: str | Path | None = None) -> Model:
    policy, reward = load_models(weights)
    return Model(policy, reward)


def original(env, model: Model, i: int, seed: int = 0) -> Segment:
    """The agent's own full episode number ``i`` (policy sampled), on layout episode_seed(i, seed)."""
    es = episode_seed(i, seed)
    return rollout(env, model, seed=es, rng=np.random.default_rng(es))


def originals(env, model: Model, n: int, seed: int = 0) -> list[Segment]:
    return [original(env, model, i, seed) for i in range(n)]


def fit_normaliser(env, model: Model, n_episodes: int = 10, seed: int = 0,
                   weights: dict | str | None = None, realisticness: str = "signed") -> Scorer:
    """Bounds from sample CTEs: random CTEs and all DaC candidates (every start) on held-out episodes."""
    scorer = Scorer(env, model, weights=weights, realisticness=realisticness)
    origs = originals(env, model, n_episodes, seed=seed + 7919)
    samples = []
    rnd = random_gen.RandomGenerator(env, model, scorer, seed=seed)
    for _ in range(3):
        for c in rnd.generate(origs):
            samples.append(c.raw)
    d = dac.DaCGenerator(env, model, scorer, seed=seed)
    for orig in origs:
        for t in range(len(orig)):
            cf = d.candidate(orig, t)
            if cf is not None:
                samples.append(scorer.raw(orig.cut(t, len(cf)), cf, t))
    scorer.fit(samples)
    scorer.reset_history()
    return scorer


def cte_to_dict(cte: CTE, seed: int, scorer: Scorer) -> dict:
    fo, fc = cte_features(cte)
    ro, rc = scorer.means(cte.orig, cte.cf)
    return {
        "method": cte.method, "episode": cte.episode, "episode_seed": episode_seed(cte.episode, seed),
        "start": cte.start, "start_state": cte.orig.states[0].to_dict(),
        "orig_actions": cte.orig.actions, "cf_actions": cte.cf.actions,
        "start_reward": scorer.model.reward(cte.orig.obs[0]),
        "orig_rewards": cte.orig.rewards, "cf_rewards": cte.cf.rewards,
        "mean_reward_orig": ro, "mean_reward_cf": rc,  # mean R over s_t..s_t+L (start included)
        "raw": cte.raw, "norm": cte.norm, "quality": cte.quality,
        "seconds": cte.seconds, "cpu_seconds": cte.cpu_seconds,
        "features_orig": fo.tolist(), "features_cf": fc.tolist(),
    }


def replay(d: dict, env: EmergencyEnv | None = None) -> tuple[list[EmergencyState], list[EmergencyState]]:
    """Re-simulate the states of a stored CTE: (original states, counterfactual states)."""
    env = env or EmergencyEnv()
    try:
        start = EmergencyState.from_dict(d["start_state"], env.max_steps)
    except (KeyError, ValueError) as e:
        raise AlignkitError(f"a CTE holds a malformed start_state ({e}); regenerate the file") from None
    for acts in (d["orig_actions"], d["cf_actions"]):
        if not all(isinstance(a, int) and 0 <= a < env.action_space.n for a in acts):
            raise AlignkitError("a CTE holds an action outside 0..8; the file is malformed")
    out = []
    for acts in (d["orig_actions"], d["cf_actions"]):
        env.set_state(start)
        states = [start]
        for a in acts:
            env.step(a)
            states.append(env.get_state())
        out.append(states)
    return out[0], out[1]


def generate(method: str, n: int, run_dir: str | Path, seed: int = 0, weights: str | Path | None = None,
             settings: dict | None = None, scorer_weights: dict | str | None = None,
             progress: Callable[[int], None] | None = None, env_id: str = DEFAULT_ENV,
             realisticness: str = "signed") -> list[dict]:
    """Generate ``n`` CTEs with ``method`` (one per original trajectory; an original that admits no
    deviating counterfactual is skipped and the next episode drawn) and write them atomically.
    ``weights`` is the folder of the AIRL weights, ``scorer_weights`` the criteria weights."""
    gen_cls = GENERATORS.get(method)
    if n < 1:
        raise AlignkitError(f"-n must be at least 1 (got {n})")
    check_seed(seed)
    check_weights(scorer_weights)
    check_realisticness(realisticness)
    run_dir = Path(run_dir)
    env, model = make_env(env_id), make_model(weights)
    scorer = load_or_fit_normaliser(run_dir, env, model, seed=seed, weights=scorer_weights,
                                    fingerprint=weights_fingerprint(weights), realisticness=realisticness,
                                    env_id=env_id)
    kw = dict(SETTINGS.get(method, {}))
    kw.update(settings or {})
    gen = gen_cls(env, model, scorer, seed=seed, **kw)
    ctes: list[CTE] = []
    i = 0
    while len(ctes) < n:
        if i > 2 * n + 20:
            raise AlignkitError(f"{method} found a deviating counterfactual in only {len(ctes)} of {i} episodes; "
                                "check the environment and the policy")
        k = n - len(ctes)
        done = len(ctes)
        ctes += gen.generate([original(env, model, j, seed) for j in range(i, i + k)], episodes=list(range(i, i + k)),
                             progress=(lambda j, d=done: progress(min(d + j, n - 1))) if progress else None)
        i += k
    rows = [cte_to_dict(c, seed, scorer) for c in ctes]
    atomic_write_text(run_dir / f"ctes_{method}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, so the JSON written is valid
    (``json.dumps`` would write bare NaN/Infinity, which strict readers reject)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def read_trajectory(path: str | Path, env: EmergencyEnv) -> tuple[EmergencyState, list[int]]:
    """A user's trajectory file: JSON with ``actions`` (a flat list of action ids) and either
    ``layout_seed`` (the layout ``env.reset(seed=...)`` draws) or ``start_state`` (as stored in CTE files)."""
    path = Path(path)
    if not path.is_file():
        raise AlignkitError(f"trajectory file {path} not found")
    try:
        d = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise AlignkitError(f"{path} is not JSON; write {{'layout_seed': 0, 'actions': [1, 3, ...]}}") from None
    if not isinstance(d, dict) or "actions" not in d:
        raise AlignkitError(f"{path} needs an object with 'actions' and 'layout_seed' or 'start_state'")
    acts = d["actions"]
    n_act = env.action_space.n
    if not isinstance(acts, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in acts):
        shape = np.asarray(acts, dtype=object).shape if isinstance(acts, list) else type(acts).__name__
        raise AlignkitError(f"'actions' in {path} must be a flat list of integers (shape (T,)), got shape {shape}")
    if not 1 <= len(acts) <= env.max_steps or not all(0 <= a < n_act for a in acts):
        raise AlignkitError(f"'actions' in {path} must hold 1..{env.max_steps} action ids in 0..{n_act - 1}")
    if "start_state" in d:
        try:
            start = check_state(d["start_state"], env.max_steps)
        except ValueError as e:
            raise AlignkitError(f"start_state out of range in {path}: {e}; copy a start_state from a CTE file "
                                "or use 'layout_seed'") from None
        if start.t + len(acts) > env.max_steps:
            raise AlignkitError(f"the trajectory in {path} runs past the episode end ({env.max_steps} actions)")
    elif "layout_seed" in d:
        seed = d["layout_seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise AlignkitError(f"layout_seed out of range in {path}: got {seed!r:.40}; "
                                "use an integer in 0..2**32-1")
        env.reset(seed=seed)
        start = env.get_state()
    else:
        raise AlignkitError(f"{path} needs an integer 'layout_seed' or a 'start_state'")
    return start, acts


def explain_trajectory(path: str | Path, method: str, out: str | Path, seed: int = 0,
                       weights: str | Path | None = None, scorer_weights: dict | str | None = None,
                       realisticness: str = "signed", env_id: str = DEFAULT_ENV) -> Path:
    """One CTE for a user's trajectory file; writes ``out/cte_<method>.json`` and a PNG; returns the PNG."""
    from alignkit.cte.core import extend
    from alignkit.cte.render import draw_cte

    check_seed(seed)
    env = make_env(env_id)
    start, acts = read_trajectory(path, env)
    gen_cls = GENERATORS.get(method)
    out = Path(out)
    model = make_model(weights)
    orig = Segment([start], [env.set_state(start)])
    for a in acts:
        extend(env, model, orig, a)
    scorer = load_or_fit_normaliser(out, env, model, seed=seed, weights=scorer_weights,
                                    fingerprint=weights_fingerprint(weights), realisticness=realisticness,
                                    env_id=env_id)
    ctes = gen_cls(env, model, scorer, seed=seed, **SETTINGS.get(method, {})).generate([orig])
    if not ctes:
        raise AlignkitError("no action anywhere in this trajectory leads to a state other than the original's; "
                            "there is nothing to contrast")
    row = cte_to_dict(ctes[0], seed, scorer)
    write_json(out / f"cte_{method}.json", json_safe(row))
    return draw_cte(ctes[0].orig.states, ctes[0].cf.states, row["orig_actions"], row["cf_actions"],
                    row["orig_rewards"], row["cf_rewards"], out / f"cte_{method}.png",
                    header=f"{method} CTE: start t={row['start']}, quality {row['quality']:.2f}")


def weights_fingerprint(weights_dir: str | Path | None = None) -> str:
    """sha256 (first 16 hex digits) of the reward and policy files: the normaliser belongs to them."""
    import hashlib

    from alignkit.cte.models import POLICY_FILE, REWARD_FILE, shipped_weights_dir

    d = Path(weights_dir) if weights_dir else shipped_weights_dir()
    h = hashlib.sha256()
    for f in (REWARD_FILE, POLICY_FILE):
        h.update((d / f).read_bytes())
    return h.hexdigest()[:16]


def load_or_fit_normaliser(run_dir: Path, env, model: Model, seed: int = 0, weights: dict | str | None = None,
                           fingerprint: str | None = None, realisticness: str = "signed",
                           env_id: str = DEFAULT_ENV) -> Scorer:
    """Reuse ``run_dir/normaliser.json`` when it was fitted for the same AIRL weights, seed, env and
    realisticness (the bounds do not depend on the criteria weights); else refit."""
    path = Path(run_dir) / "normaliser.json"
    if path.exists():
        try:
            d = json.loads(path.read_text())
            same = (d.get("weights_fingerprint") == fingerprint and d.get("seed") == seed
                    and d.get("realisticness") == realisticness and d.get("env") == env_id)
            if same:
                return Scorer(env, model, weights=weights, realisticness=realisticness,
                              bounds={k: (float(d["bounds"][k][0]), float(d["bounds"][k][1])) for k in CRITERIA})
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            pass  # unreadable or from another version: refit
    scorer = fit_normaliser(env, model, seed=seed, weights=weights, realisticness=realisticness)
    write_json(path, {"bounds": scorer.bounds, "weights": scorer.weights, "criteria": CRITERIA,
                      "weights_fingerprint": fingerprint, "seed": seed, "realisticness": realisticness,
                      "env": env_id})
    return scorer


ROW_KEYS = {"start": int, "start_state": dict, "orig_actions": list, "cf_actions": list,
            "orig_rewards": list, "cf_rewards": list,
            "mean_reward_orig": (int, float), "mean_reward_cf": (int, float), "quality": (int, float),
            "features_orig": list, "features_cf": list, "raw": dict, "norm": dict, "seconds": (int, float)}
N_FEATURES = 46
MAX_ABS = 1e9  # no stored number comes near this; larger ones overflow the statistics of the evaluation


class BadField(ValueError):
    """A CTE record field that is missing, of the wrong type or out of range."""

    def __init__(self, key: str, why: str, missing: bool = False):
        super().__init__(why)
        self.key, self.why, self.missing = key, why, missing


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_ABS


def check_cte_row(r, env: EmergencyEnv | None = None) -> dict:
    """Check one stored CTE record fully (types, lengths, finite numbers, the start state against the grid,
    actions in range); raise :class:`BadField` naming the first bad field. Returns the record."""
    env = env or EmergencyEnv()
    if not isinstance(r, dict):
        raise BadField("", "not a JSON object")
    for k, typ in ROW_KEYS.items():
        if k not in r:
            raise BadField(k, "missing", missing=True)
        if not isinstance(r[k], typ) or isinstance(r[k], bool):
            raise BadField(k, f"must be {getattr(typ, '__name__', 'a number')}")
    try:
        state = check_state(r["start_state"], env.max_steps)
    except ValueError as e:
        raise BadField("start_state", str(e)) from None
    if not 0 <= r["start"] < env.max_steps:
        raise BadField("start", f"must be in 0..{env.max_steps - 1}")
    n_act = env.action_space.n
    for k in ("orig_actions", "cf_actions"):
        acts = r[k]
        if not acts or not all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < n_act for a in acts):
            raise BadField(k, f"must be a non-empty list of action ids in 0..{n_act - 1}")
        if state.t + len(acts) > env.max_steps:
            raise BadField(k, f"runs past the episode end ({env.max_steps} steps)")
    if len(r["orig_actions"]) != len(r["cf_actions"]):
        raise BadField("cf_actions", "must be as long as orig_actions")
    for k, ak in (("orig_rewards", "orig_actions"), ("cf_rewards", "cf_actions")):
        if len(r[k]) != len(r[ak]) or not all(_number(x) for x in r[k]):
            raise BadField(k, f"must be {len(r[ak])} finite numbers (one per action)")
    for k in ("features_orig", "features_cf"):
        if len(r[k]) != N_FEATURES or not all(_number(x) for x in r[k]):
            raise BadField(k, f"must be a flat list of {N_FEATURES} finite numbers")
    for k in ("mean_reward_orig", "mean_reward_cf", "quality", "seconds", "cpu_seconds"):
        if k in r and not _number(r[k]):
            raise BadField(k, "must be a finite number")
    for k in ("seconds", "cpu_seconds"):
        if k in r and r[k] < 0:
            raise BadField(k, "must not be negative")
    for k in ("raw", "norm"):
        if any(c not in r[k] for c in CRITERIA) or not all(_number(v) for v in r[k].values()):
            raise BadField(k, f"must map each of {', '.join(CRITERIA)} to a finite number")
    return r


def load_ctes(run_dir: str | Path, method: str) -> list[dict]:
    """Read and check ``ctes_<method>.jsonl``; a malformed file is a user error naming the line."""
    p = Path(run_dir) / f"ctes_{method}.jsonl"
    if not p.exists():
        raise AlignkitError(f"{p} not found; run 'alignkit cte generate --method {method} --out {run_dir}' first")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise AlignkitError(f"cannot read {p} ({e.strerror or e}); regenerate it with "
                            "'alignkit cte generate'") from None
    env = EmergencyEnv()
    rows = []
    for no, raw_line in enumerate(data.splitlines(), 1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            raise AlignkitError(f"{p} line {no} is not UTF-8 text; regenerate the file with "
                                "'alignkit cte generate'") from None
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except (ValueError, RecursionError):
            raise AlignkitError(f"{p} line {no} is not JSON; regenerate it with 'alignkit cte generate'") from None
        if not isinstance(r, dict):
            raise AlignkitError(f"{p} line {no} is not a JSON object; regenerate it with 'alignkit cte generate'")
        try:
            check_cte_row(r, env)
        except BadField as e:
            what = "is missing" if e.missing else f"is malformed ({e.why})"
            raise AlignkitError(f"{p} line {no}: field {e.key!r} {what}; "
                                "regenerate the file with 'alignkit cte generate'") from None
        rows.append(r)
    if not rows:
        raise AlignkitError(f"{p} is empty; generate CTEs first")
    return rows


def evaluate_run(run_dir: str | Path, seeds: int = 3, methods: list[str] | None = None, epochs: int = 150,
                 models=("mlp", "linear"), n_trains=None, progress=None, workers: int | None = None) -> dict:
    """Proxy-human learning curves on the CTEs in ``run_dir`` (see :mod:`alignkit.cte.proxy_human`)."""
    from alignkit.cte.proxy_human import N_TRAIN, learning_curves

    if seeds < 1:
        raise AlignkitError("--seeds must be at least 1")
    if epochs < 1:
        raise AlignkitError("--epochs must be at least 1")
    run_dir = Path(run_dir)
    methods = methods or [m for m in METHODS if (run_dir / f"ctes_{m}.jsonl").exists()]
    if not methods:
        raise AlignkitError(f"no ctes_*.jsonl in {run_dir}; run 'alignkit cte generate' first")
    data, quality, secs, cpu = {}, {}, {}, {}
    for m in methods:
        rows = load_ctes(run_dir, m)
        X = np.array([r["features_orig"] + r["features_cf"] for r in rows], dtype=float)
        Y = np.array([[r["mean_reward_orig"], r["mean_reward_cf"]] for r in rows], dtype=float)
        data[m] = (X, Y)
        q = np.array([r["quality"] for r in rows])
        quality[m] = {"mean": float(q.mean()), "std": float(q.std()), "n": len(rows),
                      "criteria": {k: float(np.mean([r["norm"].get(k, np.nan) for r in rows])) for k in CRITERIA},
                      "mean_length": float(np.mean([len(r["cf_actions"]) for r in rows])),
                      "level_share": level_share(Y)}
        secs[m] = float(np.mean([r["seconds"] for r in rows]))
        cpu[m] = float(np.mean([r.get("cpu_seconds", r["seconds"]) for r in rows]))
    t0 = time.perf_counter()
    import os

    if workers is None:  # seeds in parallel processes (same numbers); not worth the start-up for small runs
        workers = min(2, os.cpu_count() or 1) if max(len(x) for x, _ in data.values()) >= 200 else 1
    curves = learning_curves(data, seeds=list(range(seeds)), n_trains=n_trains or N_TRAIN, models=models,
                             epochs=epochs, progress=progress, workers=workers)
    return {"methods": methods, "seeds": seeds, "curves": curves, "quality": quality, "seconds_per_cte": secs,
            "cpu_seconds_per_cte": cpu, "eval_seconds": round(time.perf_counter() - t0, 1)}


def level_share(Y: np.ndarray) -> float:
    """Share of the variance of the pooled average rewards (r_o, r_c) that lies between CTEs (the level
    both share) rather than within a CTE (the difference): 1 - mean within-pair variance / total."""
    total = float(np.var(Y.ravel()))
    within = float(np.mean(((Y[:, 0] - Y[:, 1]) / 2) ** 2))
    return 1.0 - within / total if total > 0 else float("nan")


def _fmt(d: dict) -> str:
    """mean ± half-width of the 95% band"""
    if not np.isfinite(d["mean"]):
        return "-"
    return f"{d['mean']:.2f} ± {(d['hi'] - d['lo']) / 2:.2f}"


def curve_table(res: dict, model: str = "mlp") -> tuple[list[str], list[list[str]]]:
    """Header and rows of the learning-curve table: one row per (target, n_train), Pearson and sign
    accuracy (mean ± half-width of the 95% band over seeds) per generator and the start-only baseline."""
    gens = list(res["methods"]) + ["start-only"]
    get = {(r["generator"], r["target"], r["n_train"]): r for r in res["curves"] if r["model"] == model}
    header = ["target", "n_train"] + [f"{g} Pearson" for g in gens] + [f"{g} sign" for g in gens]
    rows = []
    for target in ("level+diff", "diff"):
        nts = []
        for r in res["curves"]:
            if r["model"] == model and r["target"] == target and r["n_train"] not in nts:
                nts.append(r["n_train"])
        for nt in nts:
            cells = [target, nt]
            for key in ("pearson", "sign_acc"):
                for g in gens:
                    r = get.get((g, target, nt))
                    cells.append(_fmt(r[key]) if r else "-")
            rows.append(cells)
    return header, rows


def results_markdown(res: dict) -> str:
    """Learning-curve tables (MLP and linear proxy) and the generator summary as Markdown."""
    out = []
    for model in ("mlp", "linear"):
        if not any(r["model"] == model for r in res["curves"]):
            continue
        header, rows = curve_table(res, model)
        out.append(f"Proxy human: {model}; combined test set; mean ± half-width of the 95% band over "
                   f"{res['seeds']} seeds\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        out.append("")
    out.append("| generator | quality | mean length | level share of reward variance | s/CTE wall | s/CTE CPU |")
    out.append("|---|---|---|---|---|---|")
    for g in res["methods"]:
        q = res["quality"][g]
        out.append(f"| {g} | {q['mean']:.2f} ± {q['std']:.2f} | {q['mean_length']:.1f} | {q['level_share']:.2f} | "
                   f"{res['seconds_per_cte'][g]:.3f} | {res['cpu_seconds_per_cte'][g]:.3f} |")
    return "\n".join(out) + "\n"


def plot_curves(res: dict, path: str | Path, model: str = "mlp") -> Path:
    """PNG of the learning curves (Pearson and sign accuracy vs n_train, both targets, 95% bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = list(res["methods"]) + ["start-only"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    for i, target in enumerate(("level+diff", "diff")):
        for j, key in enumerate(("pearson", "sign_acc")):
            ax = axes[i, j]
            for g in gens:
                rs = [r for r in res["curves"] if r["model"] == model and r["target"] == target and r["generator"] == g]
                if not rs:
                    continue
                xs = [r["n"] for r in rs]
                m = [r[key]["mean"] for r in rs]
                line, = ax.plot(xs, m, "o-" if g != "start-only" else "k--", label=g)
                ax.fill_between(xs, [r[key]["lo"] for r in rs], [r[key]["hi"] for r in rs], alpha=0.15,
                                color=line.get_color())
            ax.set_xscale("log")
            ax.set_title(f"target {target}: {'Pearson' if key == 'pearson' else 'sign accuracy'}", fontsize=10)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("n_train (CTEs the proxy learns from)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Proxy-human learning curves ({model}, combined test set, 95% bands over {res['seeds']} seeds)")
    fig.tight_layout()
    from alignkit.io import unique_temp

    path = Path(path)
    try:
        with unique_temp(path) as tmp:  # unique name beside the PNG, removed on failure
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path
