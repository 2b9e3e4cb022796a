"""Comparing two sets of latency samples: Mann–Whitney U and a verdict (numpy only).

Timing samples are large and autocorrelated, so a p-value alone calls nearly every
difference "significant". As asv does, a verdict needs both a small p-value *and* an
effect above a threshold (3 % by default, or the hosts' calibrated noise floor):

    faster                     p < alpha and the metric of B is below A by more than the threshold
    slower                     p < alpha and the metric of B is above A by more than the threshold
    no significant difference  anything else
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_THRESHOLD = 0.03
DEFAULT_ALPHA = 0.01

FASTER = "faster"
SLOWER = "slower"
SAME = "no significant difference"

ArrayLike = Sequence[float] | Sequence[int] | npt.NDArray[np.floating] | npt.NDArray[np.integer]


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann–Whitney U test, normal approximation with tie and continuity correction.

    `u` is the statistic of the first sample (scipy's `statistic`); `z` the standardised
    larger U; `p` the two-sided p-value.
    """

    u: float
    z: float
    p: float
    n1: int
    n2: int


def rank_with_ties(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """Average ranks (1-based) and the tie term Σ(t³ − t) over groups of equal values."""
    n = values.size
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.empty(n, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    average = starts + (counts + 1.0) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = average[np.cumsum(first) - 1]
    return ranks, float(np.sum(counts**3 - counts))


def mann_whitney_u(a: ArrayLike, b: ArrayLike, continuity: bool = True) -> MannWhitney:
    """Two-sided Mann–Whitney U test of `a` against `b` (scipy's `method="asymptotic"`)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("the Mann-Whitney U test needs at least one sample on each side")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("samples contain NaN")
    ranks, ties = rank_with_ties(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    u2 = n1 * n2 - u1
    n = n1 + n2
    mu = n1 * n2 / 2.0
    variance = n1 * n2 / 12.0 * ((n + 1) - (ties / (n * (n - 1)) if n > 1 else 0.0))
    if variance <= 0:  # every value equal: nothing tells the samples apart
        return MannWhitney(u=u1, z=0.0, p=1.0, n1=n1, n2=n2)
    z = (max(u1, u2) - mu - (0.5 if continuity else 0.0)) / math.sqrt(variance)
    p = min(1.0, max(0.0, math.erfc(z / math.sqrt(2.0))))  # 2 · sf(z)
    return MannWhitney(u=u1, z=z, p=p, n1=n1, n2=n2)


def verdict(ratio: float, p: float, threshold: float, alpha: float = DEFAULT_ALPHA) -> str:
    """B against A from `ratio` = metric(B) / metric(A) (a latency: lower is better)."""
    if not math.isfinite(ratio) or p >= alpha:
        return SAME
    if ratio < 1.0 - threshold:
        return FASTER
    if ratio > 1.0 + threshold:
        return SLOWER
    return SAME


def statistic(samples_ms: npt.NDArray[np.float64], metric: str) -> float:
    """mean, std, min, max or pNN (numpy's linear interpolation, as farm.stats) of samples."""
    if samples_ms.size == 0:
        raise ValueError("no samples")
    if metric == "mean":
        return float(samples_ms.mean())
    if metric == "std":
        return float(samples_ms.std(ddof=1)) if samples_ms.size > 1 else 0.0
    if metric == "min":
        return float(samples_ms.min())
    if metric == "max":
        return float(samples_ms.max())
    if metric.startswith("p"):
        return float(np.percentile(samples_ms, float(metric[1:])))
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True)
class Comparison:
    """One cell compared: the metric on each side, their ratio, the test and the verdict."""

    a: float
    b: float
    ratio: float  # b / a: below 1 means B is faster
    test: MannWhitney
    threshold: float
    alpha: float
    verdict: str

    @property
    def change(self) -> float:
        """Relative change of B against A: −0.25 is 25 % less time."""
        return self.ratio - 1.0

    @property
    def speedup(self) -> float:
        """A / B: how many times faster B is (the blog's "3× faster")."""
        return self.a / self.b if self.b > 0 else math.inf


def compare_samples(
    a_ms: ArrayLike,
    b_ms: ArrayLike,
    metric: str = "mean",
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare two latency samples (ms) on `metric`, with the U test on the raw samples."""
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    va, vb = statistic(a, metric), statistic(b, metric)
    ratio = vb / va if va > 0 else math.inf
    test = mann_whitney_u(a, b)
    return Comparison(
        a=va,
        b=vb,
        ratio=ratio,
        test=test,
        threshold=threshold,
        alpha=alpha,
        verdict=verdict(ratio, test.p, threshold, alpha),
    )
