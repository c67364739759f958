"""Estimates with confidence intervals for the conditions (the interval itself: :func:`alignkit.stats.bootstrap_ci`)."""

from __future__ import annotations

import math
from typing import Sequence

from alignkit.conditions.schema import Estimate
from alignkit.stats import bootstrap_ci  # noqa: F401  (re-exported: the one definition)


def mean_estimate(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> Estimate:
    vals = [float(v) for v in values]
    if not vals:
        return Estimate(value=float("nan"), n=0)
    lo, hi = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
    return Estimate(value=sum(vals) / len(vals), lo=lo, hi=hi, n=len(vals))


def perplexity_estimate(nlls: Sequence[float], counts: Sequence[int], n_boot: int = 1000, seed: int = 0
                        ) -> Estimate:
    """Token-weighted perplexity exp(sum nll / sum tokens) with a bootstrap CI over texts.

    ``nlls[i]`` is the summed negative log-likelihood of text i, ``counts[i]`` its number of tokens."""
    pairs = [(float(a), int(b)) for a, b in zip(nlls, counts) if b > 0]
    if not pairs:
        return Estimate(value=float("nan"), n=0)

    def ppl(ps):
        return math.exp(sum(a for a, _ in ps) / max(1, sum(b for _, b in ps)))

    lo, hi = bootstrap_ci(pairs, stat=ppl, n_boot=n_boot, seed=seed)
    return Estimate(value=ppl(pairs), lo=lo, hi=hi, n=len(pairs))
