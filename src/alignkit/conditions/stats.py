"""Small statistics helpers shared by the conditions: bootstrap confidence intervals."""

from __future__ import annotations

import math
import random
from typing import Callable, Optional, Sequence

from alignkit.conditions.schema import Estimate


def bootstrap_ci(values: Sequence[float], stat: Callable[[Sequence[float]], float] | None = None,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[Optional[float], Optional[float]]:
    """Percentile bootstrap CI of ``stat`` (default: mean) over ``values``; (None, None) when empty."""
    vals = list(values)
    if not vals:
        return None, None
    stat = stat or (lambda v: sum(v) / len(v))
    if len(vals) == 1:
        v = float(stat(vals))
        return v, v
    rng = random.Random(seed)
    n = len(vals)
    boots = sorted(stat([vals[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
    a = (1 - level) / 2
    lo = boots[int(math.floor(a * (n_boot - 1)))]
    hi = boots[int(math.ceil((1 - a) * (n_boot - 1)))]
    return float(lo), float(hi)


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
