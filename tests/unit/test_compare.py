"""farm.significance: Mann-Whitney U (against scipy when it is installed) and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.significance import (
    FASTER,
    SAME,
    SLOWER,
    compare_samples,
    mann_whitney_u,
    rank_with_ties,
    statistic,
    verdict,
)


def _scipy() -> object:
    """scipy is a dev dependency; without it only the scipy cross-checks skip."""
    return pytest.importorskip("scipy.stats")


@pytest.mark.parametrize(
    ("n1", "n2", "ties"),
    [(5, 7, False), (30, 30, True), (200, 150, True), (1000, 1000, False), (3, 1000, True)],
)
def test_mann_whitney_matches_scipy(n1: int, n2: int, ties: bool) -> None:
    stats = _scipy()
    rng = np.random.default_rng(n1 * 1000 + n2)
    a = rng.lognormal(0.0, 0.3, n1)
    b = rng.lognormal(0.05, 0.3, n2)
    if ties:  # timings are integers of ns: round hard so many values tie
        a, b = np.round(a, 1), np.round(b, 1)
    ours = mann_whitney_u(a, b)
    theirs = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")  # type: ignore[attr-defined]
    assert ours.u == pytest.approx(theirs.statistic)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


def test_ranks_average_ties_like_scipy() -> None:
    stats = _scipy()
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0, 7.0])
    ranks, tie_term = rank_with_ties(values)
    assert ranks.tolist() == stats.rankdata(values).tolist()  # type: ignore[attr-defined]
    assert ranks.tolist() == [5.0, 1.5, 5.0, 3.0, 5.0, 1.5, 7.0]
    assert tie_term == (3**3 - 3) + (2**3 - 2)


def test_hand_computed_u_without_ties() -> None:
    # Every value of a is below every value of b: U(a) = 0, U(b) = n1·n2 = 9.
    result = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert result.u == 0.0
    # z = (9 - 4.5 - 0.5) / sqrt(3·3·7/12) = 4 / 2.2913
    assert result.z == pytest.approx(4 / math.sqrt(21 / 4))
    assert result.p == pytest.approx(math.erfc(result.z / math.sqrt(2)))


def test_identical_samples_are_not_different() -> None:
    result = mann_whitney_u([5, 5, 5], [5, 5, 5, 5])
    assert result.p == 1.0


def test_empty_or_nan_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_u([1.0, float("nan")], [1.0])


def test_known_shift_is_faster_or_slower() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(100.0, 5.0, 1000)
    b = rng.normal(90.0, 5.0, 1000)  # 10 % less time
    faster = compare_samples(a, b)
    assert faster.verdict == FASTER
    assert faster.ratio == pytest.approx(0.9, abs=0.01)
    assert faster.test.p < 1e-10
    assert faster.speedup == pytest.approx(1 / faster.ratio)
    slower = compare_samples(b, a)
    assert slower.verdict == SLOWER
    assert slower.change == pytest.approx(1 / 0.9 - 1, abs=0.015)


def test_no_shift_is_no_significant_difference() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(100.0, 5.0, 1000)
    b = rng.normal(100.0, 5.0, 1000)
    result = compare_samples(a, b)
    assert result.test.p > 0.01
    assert result.verdict == SAME


def test_significant_but_tiny_effect_needs_the_threshold() -> None:
    # 200,000 samples: a 1 % shift gives p ≈ 0, but 1 % is below the 3 % threshold.
    rng = np.random.default_rng(3)
    a = rng.normal(100.0, 2.0, 100_000)
    b = rng.normal(101.0, 2.0, 100_000)
    result = compare_samples(a, b)
    assert result.test.p < 1e-100
    assert result.verdict == SAME
    assert compare_samples(a, b, threshold=0.005).verdict == SLOWER


def test_verdict_rule_edges() -> None:
    assert verdict(0.5, 0.02, 0.03) == SAME  # large effect, p not small enough
    assert verdict(0.5, 0.001, 0.03) == FASTER
    assert verdict(1.03, 0.001, 0.03) == SAME  # exactly at the threshold: not above it
    assert verdict(1.031, 0.001, 0.03) == SLOWER
    assert verdict(math.inf, 0.0, 0.03) == SAME
    assert verdict(0.9, 0.001, 0.2) == SAME  # a noisy host's calibrated floor


def test_statistic_matches_numpy() -> None:
    values = np.arange(1.0, 101.0)
    assert statistic(values, "mean") == 50.5
    assert statistic(values, "p99") == pytest.approx(99.01)
    assert statistic(values, "p50") == 50.5
    assert statistic(values, "min") == 1.0 and statistic(values, "max") == 100.0
    with pytest.raises(ValueError, match="unknown metric"):
        statistic(values, "median")


def test_compare_on_p99() -> None:
    a = np.concatenate([np.full(990, 10.0), np.full(10, 100.0)])
    b = np.concatenate([np.full(990, 10.0), np.full(10, 50.0)])
    result = compare_samples(a, b, metric="p99")
    assert result.a == pytest.approx(np.percentile(a, 99))
    assert result.b == pytest.approx(np.percentile(b, 99))
