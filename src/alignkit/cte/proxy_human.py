"""Proxy-human evaluation: how much does a model learn about the reward from CTEs?

Each CTE becomes one example: input = the 46 features (:mod:`alignkit.cte.features`) of the original
and of the counterfactual (92 numbers, z-scored with training statistics); targets = the average learned
reward of each (r_o, r_c) and their difference r_o - r_c (targets scaled by the training std).

Two proxy humans:

* ``mlp``: a multi-task MLP, trunk 92-92-92-46 (ReLU) with two heads: (r_o, r_c) and (r_o - r_c);
  loss = MSE(rewards) + MSE(difference); Adam, minibatches of 32, ``epochs`` epochs but at least 200 and
  at most 1000 gradient steps (no early stopping);
* ``linear``: ridge regression (alpha=1) from the 92 inputs to (r_o, r_c, r_o - r_c).

Protocol, for each seed: every generator's CTEs are split at random 80/20 into train/test; a model is
trained on one generator's train set and tested on (a) that generator's test set and (b) the
"combined" out-of-distribution set = the union of all generators' test sets. Metrics on a test set:

* Pearson and Spearman correlation between predicted and true average rewards (r_o and r_c pooled);
* sign accuracy: does the predicted difference have the sign of the true difference (ties excluded);
* Pearson of the predicted vs true difference r_o - r_c (``pearson_diff``): the pooled correlation is
  dominated by the reward's level, which varies between episodes and times; the difference is the
  contrast a CTE is meant to teach.

Results are mean and standard deviation over seeds.

Learning curves (:func:`learning_curves`, what ``alignkit cte pipeline`` prints): at full data every
generator's CTEs teach our proxy almost perfectly, because most of the variance of the average reward
is the reward *level* of the start state, which the features give away. What separates explanations is
how fast a proxy learns from few of them. For each seed the CTEs of every generator are split 80/20,
the combined test set is the union of the test splits, and a proxy is trained on the first ``n_train``
of a seeded shuffle of one generator's training split, for n_train in 5, 10, 20, 50, 100 and all, with
two targets:

* ``level+diff``: the two heads above (r_o, r_c and r_o - r_c); scored by the pooled Pearson of
  (r_o, r_c) and the sign accuracy of the difference head;
* ``diff``: only the difference r_o - r_c (the contrast a CTE is meant to teach); scored by the
  Pearson of the difference and its sign accuracy.

A ``start-only`` baseline trains the same proxies on 6 features of the shared start state only
(citizens left, distance to G, distance to and number of adjacent citizens, row, column), on each
generator's same subsample; its row is the mean over generators. Bands are 95% t-intervals over seeds.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from torch import nn

from alignkit.errors import AlignkitError

METRICS = ["pearson", "spearman", "sign_acc", "pearson_diff"]


class MultiTaskMLP(nn.Module):
    def __init__(self, n_in: int = 92):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_in, 92), nn.ReLU(), nn.Linear(92, 92), nn.ReLU(),
                                   nn.Linear(92, 46), nn.ReLU())
        self.rewards = nn.Linear(46, 2)
        self.diff = nn.Linear(46, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.rewards(h), self.diff(h).squeeze(-1)


def _standardise(Xtr, *Xs):
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd < 1e-8, 1.0, sd)
    return [(X - mu) / sd for X in (Xtr,) + Xs]


MAX_STEPS = 1000  # gradient steps at most per fit (40 epochs of 800 CTEs)
MIN_STEPS = 200  # at least this many (5 CTEs would otherwise see 150 steps)


def _adam(params, lr: float):
    try:  # the fused CPU kernel is ~30% faster on these small networks
        return torch.optim.Adam(params, lr=lr, weight_decay=1e-4, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch
        return torch.optim.Adam(params, lr=lr, weight_decay=1e-4)


def _n_epochs(n: int, epochs: int, batch: int) -> int:
    per_epoch = max(1, -(-n // batch))
    return max(1, min(max(epochs, -(-MIN_STEPS // per_epoch)), max(1, MAX_STEPS // per_epoch)))


def fit_predict_mlp(Xtr, Ytr, Xtes: list, seed: int, epochs: int = 150, batch: int = 32, lr: float = 1e-3):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 92-wide MLP gains nothing from threads; on a busy CPU they spin and crawl
    try:
        return _fit_predict_mlp(Xtr, Ytr, Xtes, seed, epochs, batch, lr)
    finally:
        torch.set_num_threads(threads)


def _fit_predict_mlp(Xtr, Ytr, Xtes, seed, epochs, batch, lr):
    torch.manual_seed(seed)
    Xtr, *Xtes = _standardise(Xtr, *Xtes)
    scale = Ytr.std() or 1.0
    X = torch.as_tensor(Xtr, dtype=torch.float32)
    Y = torch.as_tensor(Ytr / scale, dtype=torch.float32)
    D = Y[:, 0] - Y[:, 1]
    model = MultiTaskMLP(X.shape[1])
    opt = _adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(_n_epochs(len(X), epochs, batch)):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = perm[i:i + batch]
            pr, pd = model(X[idx])
            loss = ((pr - Y[idx]) ** 2).mean() + ((pd - D[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    outs = []
    with torch.no_grad():
        for Xte in Xtes:
            pr, pd = model(torch.as_tensor(Xte, dtype=torch.float32))
            outs.append((pr.numpy() * scale, pd.numpy() * scale))
    return outs


def fit_predict_linear(Xtr, Ytr, Xtes: list, seed: int = 0, alpha: float = 1.0):
    from sklearn.linear_model import Ridge

    Xtr, *Xtes = _standardise(Xtr, *Xtes)
    T = np.column_stack([Ytr[:, 0], Ytr[:, 1], Ytr[:, 0] - Ytr[:, 1]])
    m = Ridge(alpha=alpha).fit(Xtr, T)
    return [(p[:, :2], p[:, 2]) for p in (m.predict(X) for X in Xtes)]


MODELS = {"mlp": fit_predict_mlp, "linear": fit_predict_linear}


def metrics(pred_r: np.ndarray, pred_d: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    p, t = pred_r.ravel(), Y.ravel()
    true_d = Y[:, 0] - Y[:, 1]
    nz = np.abs(true_d) > 1e-9
    ok = np.std(p) > 1e-12 and np.std(t) > 1e-12
    return {"pearson": float(pearsonr(p, t)[0]) if ok else 0.0,
            "spearman": float(spearmanr(p, t)[0]) if ok else 0.0,
            "sign_acc": float(np.mean(np.sign(pred_d[nz]) == np.sign(true_d[nz]))) if nz.any() else float("nan"),
            "pearson_diff": float(pearsonr(pred_d, true_d)[0])
            if np.std(pred_d) > 1e-12 and np.std(true_d) > 1e-12 else 0.0}


def evaluate(data: dict[str, tuple[np.ndarray, np.ndarray]], seeds: list[int], models=("mlp", "linear"),
             test_frac: float = 0.2, epochs: int = 150) -> list[dict]:
    """``data``: generator name -> (X (n, 92), Y (n, 2)). Returns one row per (generator, model, test set,
    metric) with mean/std over seeds plus the per-seed values."""
    for name, (X, Y) in data.items():
        if len(X) < 5:
            raise AlignkitError(f"generator {name!r} has only {len(X)} CTEs; the proxy human needs at least 5 "
                                "(generate more with -n)")
    per: dict[tuple, list[float]] = {}
    for seed in seeds:
        splits, comb_X, comb_Y = _split(data, seed, test_frac)
        for name, (X, Y) in data.items():
            tr, te = splits[name]
            for model in models:
                fn = MODELS[model]
                kw = {"epochs": epochs} if model == "mlp" else {}
                outs = fn(X[tr], Y[tr], [X[te], comb_X], seed=seed, **kw)
                for test_name, (pr, pd), Yte in zip(("own", "combined"), outs, (Y[te], comb_Y)):
                    for k, v in metrics(pr, pd, Yte).items():
                        per.setdefault((name, model, test_name, k), []).append(v)
    rows = []
    for (name, model, test_name, k), vals in per.items():
        rows.append({"generator": name, "model": model, "test": test_name, "metric": k,
                     "mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)), "values": vals})
    return rows


N_TRAIN = (5, 10, 20, 50, 100, "all")
TARGETS = ("level+diff", "diff")
# citizens_start, dist_goal_start, dist_citizen_start, adjacent_citizens_start, start_row, start_col
START_FEATURES = [3, 7, 11, 15, 30, 31]


class DiffMLP(nn.Module):
    def __init__(self, n_in: int = 92):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 92), nn.ReLU(), nn.Linear(92, 92), nn.ReLU(), nn.Linear(92, 46),
                                 nn.ReLU(), nn.Linear(46, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def fit_predict_diff_mlp(Xtr, Ytr, Xte, seed: int, epochs: int = 150, batch: int = 32, lr: float = 1e-3):
    """MLP on the difference r_o - r_c only; returns the predicted differences on Xte."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        Xtr, Xte = _standardise(Xtr, Xte)
        D = Ytr[:, 0] - Ytr[:, 1]
        scale = D.std() or 1.0
        X, T = torch.as_tensor(Xtr, dtype=torch.float32), torch.as_tensor(D / scale, dtype=torch.float32)
        model = DiffMLP(X.shape[1])
        opt = _adam(model.parameters(), lr)
        g = torch.Generator().manual_seed(seed)
        for _ in range(_n_epochs(len(X), epochs, batch)):
            perm = torch.randperm(len(X), generator=g)
            for i in range(0, len(X), batch):
                idx = perm[i:i + batch]
                loss = ((model(X[idx]) - T[idx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            return model(torch.as_tensor(Xte, dtype=torch.float32)).numpy() * scale
    finally:
        torch.set_num_threads(threads)


def fit_predict_diff_linear(Xtr, Ytr, Xte, seed: int = 0, alpha: float = 1.0):
    from sklearn.linear_model import Ridge

    Xtr, Xte = _standardise(Xtr, Xte)
    return Ridge(alpha=alpha).fit(Xtr, Ytr[:, 0] - Ytr[:, 1]).predict(Xte)


def _pear(a, b) -> float:
    return float(pearsonr(a, b)[0]) if np.std(a) > 1e-12 and np.std(b) > 1e-12 else 0.0


def _sign(pred_d, Y) -> float:
    true_d = Y[:, 0] - Y[:, 1]
    nz = np.abs(true_d) > 1e-9
    return float(np.mean(np.sign(pred_d[nz]) == np.sign(true_d[nz]))) if nz.any() else float("nan")


def _fit_score(model: str, target: str, Xtr, Ytr, Xte, Yte, seed: int, epochs: int) -> tuple[float, float]:
    """(pearson, sign accuracy) of one proxy trained on (Xtr, Ytr) and tested on (Xte, Yte)."""
    if target == "level+diff":
        fn = MODELS[model]
        kw = {"epochs": epochs} if model == "mlp" else {}
        (pr, pd), = fn(Xtr, Ytr, [Xte], seed=seed, **kw)
        return _pear(pr.ravel(), Yte.ravel()), _sign(pd, Yte)
    if model == "mlp":
        pd = fit_predict_diff_mlp(Xtr, Ytr, Xte, seed=seed, epochs=epochs)
    else:
        pd = fit_predict_diff_linear(Xtr, Ytr, Xte)
    return _pear(pd, Yte[:, 0] - Yte[:, 1]), _sign(pd, Yte)


def ci95(vals) -> tuple[float, float, float]:
    """mean and a 95% t-interval over seeds."""
    from scipy.stats import t as student_t

    v = np.asarray([x for x in vals if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    h = float(student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - h, m + h


def _split(data, seed, test_frac):
    """Per generator a seeded (train, test) index split; the combined test set over all generators."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, (X, _) in data.items():
        perm = rng.permutation(len(X))
        n_te = max(1, int(round(test_frac * len(X))))
        splits[name] = (perm[n_te:], perm[:n_te])
    comb_X = np.concatenate([data[n][0][splits[n][1]] for n in data])
    comb_Y = np.concatenate([data[n][1][splits[n][1]] for n in data])
    return splits, comb_X, comb_Y


def _one_seed(data, seed, n_trains, models, targets, test_frac, epochs) -> list[tuple]:
    """All fits of one seed: [(key, pearson, sign accuracy, n), ...]."""
    out = []
    splits, comb_X, comb_Y = _split(data, seed, test_frac)
    for name, (X, Y) in data.items():
        order = np.random.default_rng(10_000 + seed).permutation(splits[name][0])
        for nt in n_trains:
            if nt != "all" and int(nt) > len(order):
                continue
            k = len(order) if nt == "all" else int(nt)
            sub = order[:k]
            for model in models:
                for target in targets:
                    for gen, cols in ((name, slice(None)), ("start-only", START_FEATURES)):
                        p, s = _fit_score(model, target, X[sub][:, cols], Y[sub], comb_X[:, cols], comb_Y,
                                          seed, epochs)
                        out.append(((gen, name, model, target, str(nt)), p, s, k))
    return out


def learning_curves(data: dict[str, tuple[np.ndarray, np.ndarray]], seeds: list[int],
                    n_trains=N_TRAIN, models=("mlp", "linear"), targets=TARGETS, test_frac: float = 0.2,
                    epochs: int = 150, progress=None, workers: int = 1) -> list[dict]:
    """``data``: generator -> (X (n, 92), Y (n, 2)). One row per (generator incl. ``start-only``, model,
    target, n_train) with mean and 95% band over seeds of Pearson and sign accuracy on the combined test
    set, plus the per-seed values and the actual training size. ``workers`` > 1 fits the seeds in that
    many processes (same results: every fit is seeded)."""
    for name, (X, Y) in data.items():
        if len(X) < 5:
            raise AlignkitError(f"generator {name!r} has only {len(X)} CTEs; the proxy human needs at least 5 "
                                "(generate more with -n)")
    args = (n_trains, models, targets, test_frac, epochs)
    if workers > 1 and len(seeds) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(seeds)), mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = [ex.submit(_one_seed, data, seed, *args) for seed in seeds]
            results = []
            for f in futures:
                results.append(f.result())
                if progress:
                    progress()
    else:
        results = []
        for seed in seeds:
            results.append(_one_seed(data, seed, *args))
            if progress:
                progress()
    per: dict[tuple, dict[str, list]] = {}
    for res in results:  # in seed order
        for key, p, s, k in res:
            d = per.setdefault(key, {"pearson": [], "sign_acc": [], "n": k})
            d["pearson"].append(p)
            d["sign_acc"].append(s)
    rows = []
    for (gen, source, model, target, nt), d in per.items():
        row = {"generator": gen, "trained_on": source, "model": model, "target": target, "n_train": nt,
               "n": d["n"]}
        for k in ("pearson", "sign_acc"):
            m, lo, hi = ci95(d[k])
            row[k] = {"mean": m, "lo": lo, "hi": hi, "values": d[k]}
        rows.append(row)
    # the baseline row: mean over the generators it was trained on
    base: dict[tuple, list] = {}
    for r in rows:
        if r["generator"] == "start-only":
            base.setdefault((r["model"], r["target"], r["n_train"]), []).append(r)
    out = [r for r in rows if r["generator"] != "start-only"]
    for (model, target, nt), rs in base.items():
        row = {"generator": "start-only", "trained_on": "mean over generators", "model": model, "target": target,
               "n_train": nt, "n": rs[0]["n"]}
        for k in ("pearson", "sign_acc"):
            vals = np.nanmean(np.array([r[k]["values"] for r in rs], dtype=float), axis=0).tolist()
            m, lo, hi = ci95(vals)
            row[k] = {"mean": m, "lo": lo, "hi": hi, "values": vals}
        out.append(row)
    return out
