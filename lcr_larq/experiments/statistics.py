"""How certain a difference is: Student-t intervals and paired tests, as pure functions.

* :func:`summary` — n, mean, sample standard deviation and the two-sided
  confidence interval of the mean (Student t with n − 1 degrees of freedom).
* :func:`paired` — the per-seed differences of an arm against the control:
  their summary and the two-sided paired t-test's p-value.
* :func:`rank_correlation` — Spearman's ρ and its p-value;
* :func:`paired_power`, :func:`detectable_difference`, :func:`seeds_needed`
  and :func:`sensitivity` — how large a paired difference a study could
  detect, and how many seeds a given one needs: the power of the two-sided
  paired t-test, ``P(|T| > t(1 − α/2, n − 1))`` with ``T`` noncentral t of
  n − 1 degrees of freedom and noncentrality ``δ·√n / σ``, taking the
  observed standard deviation of the paired differences for σ.

Degenerate cases are defined, not NaN: one value has no interval (None); no
spread gives an interval of width 0, and a paired test on identical nonzero
differences has p = 0 (p = 1 when they are all 0).

Example:
    >>> round(paired_power(0.5, 1.0, 34), 4)  # G*Power, matched pairs: d_z = 0.5, N = 34
    0.8078
    >>> seeds_needed(0.5, 1.0)
    34
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
#: The power a study is planned for: the chance of a significant paired test
#: when the true difference is the one asked about.
POWER = 0.80
#: The most seeds :func:`seeds_needed` counts to.
MOST_SEEDS = 100_000


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


def paired_power(difference: float, sd: float, n: int, confidence: float = CONFIDENCE) -> float:
    """The power of the two-sided paired t-test at level ``1 − confidence``
    over ``n`` pairs to detect a true mean difference ``difference`` when the
    paired differences have standard deviation ``sd``: the chance that
    ``|T| > t(1 − α/2, n − 1)`` for ``T`` noncentral t with ``n − 1``
    degrees of freedom and noncentrality ``difference·√n / sd``.

    Example:
        >>> round(paired_power(0.0, 1.0, 10), 6)  # no difference: the test's level
        0.05
    """
    from scipy import stats

    if n < 2:
        raise ValueError("a paired t-test needs at least two pairs")
    alpha = 1.0 - confidence
    dof = n - 1
    critical = stats.t.ppf(1.0 - alpha / 2, dof)
    noncentrality = abs(difference) * math.sqrt(n) / sd
    # The lower tail P(T < −t) as P(−T > t), −T noncentral t of −noncentrality:
    # scipy's cdf far in a tail returns NaN where its sf returns 0.
    return float(stats.nct.sf(critical, dof, noncentrality)
                 + stats.nct.sf(critical, dof, -noncentrality))


def detectable_difference(sd: float | None, n: int, power: float = POWER,
                          confidence: float = CONFIDENCE) -> float | None:
    """The smallest true mean difference that ``n`` pairs with paired
    differences of standard deviation ``sd`` detect with probability
    ``power`` (the two-sided paired t-test at level ``1 − confidence``); None
    for fewer than two pairs, 0 when the differences do not vary.

    Example:
        >>> round(detectable_difference(1.0, 34), 3)  # d_z of 0.5 at 34 pairs: 80 % power
        0.495
    """
    from scipy import optimize

    if sd is None or n < 2:
        return None
    if sd == 0:
        return 0.0
    high = sd
    while paired_power(high, sd, n, confidence) < power:
        high *= 2.0
    return float(optimize.brentq(
        lambda d: paired_power(d, sd, n, confidence) - power, 0.0, high, xtol=1e-12 * sd))


def seeds_needed(difference: float, sd: float | None, power: float = POWER,
                 confidence: float = CONFIDENCE) -> int | None:
    """The fewest pairs (seeds) whose paired t-test detects a true mean
    difference ``difference`` with probability ``power``, when the paired
    differences have standard deviation ``sd``; None without an ``sd`` or
    past :data:`MOST_SEEDS`, 2 when the differences do not vary.

    Starts from the normal approximation ``((z(1 − α/2) + z(power))·sd/difference)²``,
    which the t-test needs at least, and counts up.

    Example:
        >>> seeds_needed(0.8, 1.0), seeds_needed(0.2, 1.0)  # G*Power: 15 and 199
        (15, 199)
    """
    from scipy import stats

    if sd is None or difference == 0:
        return None
    if sd == 0:
        return 2
    alpha = 1.0 - confidence
    normal = ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * sd / difference) ** 2
    if normal > MOST_SEEDS:
        return None
    n = max(2, math.floor(normal))
    while n > 2 and paired_power(difference, sd, n - 1, confidence) >= power:
        n -= 1
    while paired_power(difference, sd, n, confidence) < power:
        n += 1
        if n > MOST_SEEDS:
            return None
    return n


def sensitivity(differences: Sequence[float], unit: float | None = None,
                power: float = POWER, confidence: float = CONFIDENCE) -> dict:
    """How sensitive a paired comparison over ``differences`` was, and what
    a difference of ``unit`` would need.

    Returns ``{"n", "sd", "power", "detectable_difference", "unit",
    "seeds_for_unit"}``: the standard deviation of the differences, the
    smallest true difference its paired t-test detects with ``power``
    (:func:`detectable_difference`) and the seeds a true difference of
    ``unit`` needs at that spread (:func:`seeds_needed`; None without a unit).

    Example:
        >>> s = sensitivity([0.02, -0.01, 0.03, 0.00], unit=0.01)
        >>> s["n"], round(s["sd"], 4), round(s["detectable_difference"], 4), s["seeds_for_unit"]
        (4, 0.0183, 0.0389, 29)
    """
    d = np.asarray(list(differences), np.float64)
    sd = float(d.std(ddof=1)) if len(d) > 1 else None
    return {
        "n": len(d),
        "sd": sd,
        "power": power,
        "detectable_difference": detectable_difference(sd, len(d), power, confidence),
        "unit": unit,
        "seeds_for_unit": None if unit is None else seeds_needed(unit, sd, power, confidence),
    }
