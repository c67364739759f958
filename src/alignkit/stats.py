"""The one bootstrap confidence interval of the project (attack curves, harmfulness evaluations, conditions)."""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Optional, Sequence


def bootstrap_ci(values: Sequence[Any], stat: Callable[[Sequence[Any]], float] | None = None, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[Optional[float], Optional[float]]:
    """Percentile bootstrap interval of ``stat`` (default: the mean) over ``values``, deterministic for a seed.

    Defined on every input: no values -> ``(None, None)`` (there is no interval); one value, or values that are
    all equal -> ``(stat, stat)``; otherwise ``n_boot`` resamples with replacement and the ``(1 - level) / 2``
    and ``(1 + level) / 2`` percentiles of the resampled statistic."""
    vals = list(values)
    if not vals:
        return None, None
    stat = stat or (lambda v: sum(float(x) for x in v) / len(v))
    if len(vals) == 1 or all(v == vals[0] for v in vals):
        x = float(stat(vals))
        return x, x
    rng = random.Random(seed)
    n = len(vals)
    boots = sorted(stat([vals[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
    alpha = 1 - level
    lo = boots[max(0, int(math.floor(alpha / 2 * n_boot)))]
    hi = boots[min(n_boot - 1, int(math.ceil((1 - alpha / 2) * n_boot)) - 1)]
    return float(lo), float(hi)
