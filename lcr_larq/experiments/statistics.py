"""How certain a difference is: Student-t intervals and paired tests, as pure functions.

* :func:`summary` — n, mean, sample standard deviation and the two-sided
  confidence interval of the mean (Student t with n − 1 degrees of freedom).
* :func:`paired` — the per-seed differences of an arm against the control:
  their summary and the two-sided paired t-test's p-value.
* :func:`rank_correlation` — Spearman's ρ and its p-value.

Degenerate cases are defined, not NaN: one value has no interval (None); no
spread gives an interval of width 0, and a paired test on identical nonzero
differences has p = 0 (p = 1 when they are all 0).

Example:
    >>> s = summary([0.90, 0.92, 0.94])
    >>> s["n"], round(s["mean"], 4), round(s["std"], 4)
    (3, 0.92, 0.02)
    >>> [round(v, 4) for v in s["ci"]]
    [0.8703, 0.9697]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CONFIDENCE",
    "paired",
    "paired_p_value",
    "rank_correlation",
    "summary",
    "t_quantile",
]

CONFIDENCE = 0.95


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(probability, dof))


def summary(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """``{"n", "mean", "std", "ci"}`` of ``values``: the sample standard
    deviation (ddof 1) and the Student-t interval ``mean ± t·std/√n``
    (``ci`` None for fewer than two values)."""
    x = np.asarray(list(values), np.float64)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "ci": None}
    std = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half]}


def paired(
    arm: dict[int, float], control: dict[int, float], confidence: float = CONFIDENCE
) -> dict:
    """Arm minus control, seed by seed, over the seeds both have.

    Returns ``{"seeds", "differences", "n", "mean", "std", "ci", "p_value"}``:
    the summary of the differences and the two-sided paired t-test (H0: the
    mean difference is 0).

    Example:
        >>> r = paired({0: 0.95, 1: 0.93, 2: 0.96}, {0: 0.90, 1: 0.91, 2: 0.90})
        >>> r["seeds"], [round(d, 2) for d in r["differences"]], round(r["p_value"], 4)
        ([0, 1, 2], [0.05, 0.02, 0.06], 0.0691)
    """
    seeds = sorted(set(arm) & set(control))
    differences = [arm[s] - control[s] for s in seeds]
    result = {"seeds": seeds, "differences": differences, **summary(differences, confidence)}
    result["p_value"] = paired_p_value(differences)
    return result


def paired_p_value(differences: Sequence[float]) -> float | None:
    """Two-sided p-value of the one-sample t-test of ``differences`` against 0
    (the paired t-test); None for fewer than two."""
    d = np.asarray(list(differences), np.float64)
    if len(d) < 2:
        return None
    std = d.std(ddof=1)
    if std == 0:
        return 1.0 if d.mean() == 0 else 0.0
    from scipy import stats

    t = d.mean() / (std / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman's ρ of paired values and the two-sided p-value of ρ = 0 (scipy's
    t approximation); ``(None, None)`` for fewer than three pairs or a
    constant side.

    Example:
        >>> [round(v, 6) for v in rank_correlation([1, 2, 3, 4], [10, 30, 20, 40])]
        [0.8, 0.2]
        >>> rank_correlation([1, 2], [3, 4]), rank_correlation([1, 2, 3], [5, 5, 5])
        ((None, None), (None, None))
    """
    x, y = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    from scipy import stats

    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)
