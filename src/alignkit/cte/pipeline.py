"""Glue for the Emergency experiment: original trajectories, normalisation, generation, storage, evaluation.

A run folder holds:

* ``normaliser.json``: min-max bounds of the six criteria and the weights;
* ``ctes_<method>.jsonl``: one CTE per line (start state, both action sequences, rewards, criteria,
  quality, features, seconds), enough to re-simulate and draw it;
* ``results.json`` and ``results.md``: the proxy-human table (written by ``evaluate``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from alignkit.cte import dac, mcto, random_gen  # noqa: F401  (register the generators)
from alignkit.cte.core import CTE, GENERATORS, Model, Segment, rollout
from alignkit.cte.criteria import CRITERIA, Scorer, check_weights
from alignkit.cte.env import EmergencyEnv, EmergencyState
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


PRESETS = {
    "quick": Preset(n=120, seeds=3, mcto=dict(mcto.PAPER_SETTINGS, n_starts=5)),
    "paper": Preset(n=1000, seeds=10, mcto=dict(mcto.PAPER_SETTINGS)),
}

SETTINGS = {"mcto": dict(mcto.PAPER_SETTINGS), "dac": {}, "random": {}}


def episode_seed(i: int, seed: int) -> int:
    return 1_000_000 + 10_000 * seed + i


def make_model(weights: str | Path | None = None) -> Model:
    policy, reward = load_models(weights)
    return Model(policy, reward)


def originals(env, model: Model, n: int, seed: int = 0) -> list[Segment]:
    """The agent's own full episodes (policy sampled), on layouts episode_seed(i, seed)."""
    rng = np.random.default_rng(seed)
    return [rollout(env, model, seed=episode_seed(i, seed), rng=rng) for i in range(n)]


def fit_normaliser(env, model: Model, n_episodes: int = 10, seed: int = 0,
                   weights: dict | None = None) -> Scorer:
    """Bounds from sample CTEs: random CTEs and all DaC candidates (every start) on held-out episodes."""
    scorer = Scorer(env, model, weights=weights)
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


def cte_to_dict(cte: CTE, seed: int) -> dict:
    fo, fc = cte_features(cte)
    return {
        "method": cte.method, "episode": cte.episode, "episode_seed": episode_seed(cte.episode, seed),
        "start": cte.start, "start_state": cte.orig.states[0].to_dict(),
        "orig_actions": cte.orig.actions, "cf_actions": cte.cf.actions,
        "orig_rewards": cte.orig.rewards, "cf_rewards": cte.cf.rewards,
        "mean_reward_orig": cte.orig.mean_reward(), "mean_reward_cf": cte.cf.mean_reward(),
        "raw": cte.raw, "norm": cte.norm, "quality": cte.quality,
        "seconds": cte.seconds, "cpu_seconds": cte.cpu_seconds,
        "features_orig": fo.tolist(), "features_cf": fc.tolist(),
    }


def replay(d: dict, env: EmergencyEnv | None = None) -> tuple[list[EmergencyState], list[EmergencyState]]:
    """Re-simulate the states of a stored CTE: (original states, counterfactual states)."""
    env = env or EmergencyEnv()
    start = EmergencyState.from_dict(d["start_state"])
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
             settings: dict | None = None, scorer_weights: dict | None = None,
             progress: Callable[[int], None] | None = None) -> list[dict]:
    """Generate ``n`` CTEs with ``method`` (one per original trajectory) and append-free write them."""
    gen_cls = GENERATORS.get(method)
    if n < 1:
        raise AlignkitError(f"-n must be at least 1 (got {n})")
    run_dir = Path(run_dir)
    env, model = EmergencyEnv(), make_model(weights)
    scorer = load_or_fit_normaliser(run_dir, env, model, seed=seed, weights=scorer_weights,
                                    fingerprint=weights_fingerprint(weights))
    origs = originals(env, model, n, seed=seed)
    kw = dict(SETTINGS.get(method, {}))
    kw.update(settings or {})
    gen = gen_cls(env, model, scorer, seed=seed, **kw)
    ctes = gen.generate(origs, progress=progress)
    rows = [cte_to_dict(c, seed) for c in ctes]
    atomic_write_text(run_dir / f"ctes_{method}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def weights_fingerprint(weights_dir: str | Path | None = None) -> str:
    """sha256 (first 16 hex digits) of the reward and policy files: the normaliser belongs to them."""
    import hashlib

    from alignkit.cte.models import POLICY_FILE, REWARD_FILE, shipped_weights_dir

    d = Path(weights_dir) if weights_dir else shipped_weights_dir()
    h = hashlib.sha256()
    for f in (REWARD_FILE, POLICY_FILE):
        h.update((d / f).read_bytes())
    return h.hexdigest()[:16]


def load_or_fit_normaliser(run_dir: Path, env, model: Model, seed: int = 0, weights: dict | None = None,
                           fingerprint: str | None = None) -> Scorer:
    """Reuse ``run_dir/normaliser.json`` when it was fitted for the same weights and seed; else refit."""
    path = Path(run_dir) / "normaliser.json"
    if path.exists():
        d = json.loads(path.read_text())
        if d.get("weights_fingerprint") == fingerprint and d.get("seed") == seed:
            return Scorer(env, model, weights=weights or d.get("weights"),
                          bounds={k: tuple(v) for k, v in d["bounds"].items()})
    scorer = fit_normaliser(env, model, seed=seed, weights=weights)
    write_json(path, {"bounds": scorer.bounds, "weights": scorer.weights, "criteria": CRITERIA,
                      "weights_fingerprint": fingerprint, "seed": seed})
    return scorer


def load_ctes(run_dir: str | Path, method: str) -> list[dict]:
    p = Path(run_dir) / f"ctes_{method}.jsonl"
    if not p.exists():
        raise AlignkitError(f"{p} not found; run 'alignkit cte generate --method {method} --out {run_dir}' first")
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        raise AlignkitError(f"{p} is empty; generate CTEs first")
    return rows


def evaluate_run(run_dir: str | Path, seeds: int = 3, methods: list[str] | None = None, epochs: int = 150,
                 models=("mlp", "linear")) -> dict:
    from alignkit.cte.proxy_human import evaluate

    run_dir = Path(run_dir)
    methods = methods or [m for m in METHODS if (run_dir / f"ctes_{m}.jsonl").exists()]
    if not methods:
        raise AlignkitError(f"no ctes_*.jsonl in {run_dir}; run 'alignkit cte generate' first")
    data, quality, secs, cpu = {}, {}, {}, {}
    for m in methods:
        rows = load_ctes(run_dir, m)
        X = np.array([r["features_orig"] + r["features_cf"] for r in rows])
        Y = np.array([[r["mean_reward_orig"], r["mean_reward_cf"]] for r in rows])
        data[m] = (X, Y)
        q = np.array([r["quality"] for r in rows])
        quality[m] = {"mean": float(q.mean()), "std": float(q.std()), "n": len(rows),
                      "criteria": {k: float(np.mean([r["norm"][k] for r in rows])) for k in CRITERIA},
                      "mean_length": float(np.mean([len(r["cf_actions"]) for r in rows]))}
        secs[m] = float(np.mean([r["seconds"] for r in rows]))
        cpu[m] = float(np.mean([r.get("cpu_seconds", r["seconds"]) for r in rows]))
    t0 = time.perf_counter()
    rows = evaluate(data, seeds=list(range(seeds)), models=models, epochs=epochs)
    return {"methods": methods, "seeds": seeds, "table": rows, "quality": quality, "seconds_per_cte": secs,
            "cpu_seconds_per_cte": cpu,
            "eval_seconds": round(time.perf_counter() - t0, 1)}


def results_markdown(res: dict) -> str:
    """The proxy-human table as Markdown (combined test set first, the paper's headline)."""
    def cell(gen, model, test, metric):
        for r in res["table"]:
            if (r["generator"], r["model"], r["test"], r["metric"]) == (gen, model, test, metric):
                return f"{r['mean']:.2f} ± {r['std']:.2f}"
        return "-"

    lines = ["| generator | model | combined Pearson | combined Spearman | combined sign acc | combined Pearson Δ | "
             "own Pearson | own sign acc | quality | s/CTE wall | s/CTE CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in res["methods"]:
        for m in ("mlp", "linear"):
            q = res["quality"][g]
            lines.append(f"| {g} | {m} | {cell(g, m, 'combined', 'pearson')} | {cell(g, m, 'combined', 'spearman')} | "
                         f"{cell(g, m, 'combined', 'sign_acc')} | {cell(g, m, 'combined', 'pearson_diff')} | "
                         f"{cell(g, m, 'own', 'pearson')} | "
                         f"{cell(g, m, 'own', 'sign_acc')} | {q['mean']:.2f} ± {q['std']:.2f} | "
                         f"{res['seconds_per_cte'][g]:.3f} | {res['cpu_seconds_per_cte'][g]:.3f} |")
    return "\n".join(lines) + "\n"
