"""Proxy-human evaluation: how much does a model learn about the reward from CTEs?

Each CTE becomes one example: input = the 46 features (:mod:`alignkit.cte.features`) of the original
and of the counterfactual (92 numbers, z-scored with training statistics); targets = the average learned
reward of each (r_o, r_c) and their difference r_o - r_c (targets scaled by the training std).

Two proxy humans:

* ``mlp``: a multi-task MLP, trunk 92-92-92-46 (ReLU) with two heads: (r_o, r_c) and (r_o - r_c);
  loss = MSE(rewards) + MSE(difference); Adam, minibatches of 32, early stop on nothing (fixed epochs);
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
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
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
        rng = np.random.default_rng(seed)
        splits = {}
        for name, (X, Y) in data.items():
            perm = rng.permutation(len(X))
            n_te = max(1, int(round(test_frac * len(X))))
            splits[name] = (perm[n_te:], perm[:n_te])
        comb_X = np.concatenate([data[n][0][splits[n][1]] for n in data])
        comb_Y = np.concatenate([data[n][1][splits[n][1]] for n in data])
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
