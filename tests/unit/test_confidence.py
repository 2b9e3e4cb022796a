"""farm.stats intervals against known distributions: do the 95 % intervals cover ~95 %?

Each trial draws a fresh sample from a distribution whose true percentile (or mean) is
known in closed form and checks whether the interval Farm computes contains it. With
1,000 trials the observed coverage has a standard error of about 0.7 %, so [0.93, 0.99]
is a band a correct 95 % interval lands in and a broken one (a shifted rank, a z of 1,
a swapped bound) does not. Seeds are fixed: the test is deterministic.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from farm.stats import (
    NS_PER_MS,
    PERCENTILES,
    decode_samples,
    describe,
    encode_samples,
    mean_ci,
    percentile_ci,
    relative_ci_half_width,
)

TRIALS = 1000
MU, SIGMA = math.log(5.0), 0.4  # lognormal latencies around 5 ms, a long right tail


def lognormal_quantile(q: float) -> float:
    return math.exp(MU + SIGMA * NormalDist().inv_cdf(q / 100))


@pytest.mark.parametrize(("q", "n"), [(50, 50), (90, 200), (99, 1000)])
def test_percentile_ci_covers_the_true_percentile_about_95_percent(q: float, n: int) -> None:
    rng = np.random.default_rng(1000 + int(q))
    truth = lognormal_quantile(q)
    covered = 0
    for _ in range(TRIALS):
        values = np.sort(rng.lognormal(MU, SIGMA, n))
        interval = percentile_ci(values, q)
        assert interval is not None, f"p{q} should be supported at n={n}"
        lo, hi = interval
        assert lo <= float(np.percentile(values, q)) <= hi
        covered += lo <= truth <= hi
    assert 0.93 <= covered / TRIALS <= 0.99, f"p{q} n={n}: coverage {covered / TRIALS:.3f}"


@pytest.mark.parametrize("n", [20, 500])
def test_mean_ci_covers_the_true_mean_about_95_percent(n: int) -> None:
    rng = np.random.default_rng(n)
    true_mean, sd = 12.0, 3.0
    covered = 0
    for _ in range(TRIALS):
        interval = mean_ci(rng.normal(true_mean, sd, n))
        assert interval is not None
        covered += interval[0] <= true_mean <= interval[1]
    assert 0.93 <= covered / TRIALS <= 0.99, f"n={n}: coverage {covered / TRIALS:.3f}"


def test_mean_ci_uses_student_t_for_small_samples() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, sd sqrt(2.5), df 4: t = 2.776
    lo, hi = mean_ci(values)  # type: ignore[misc]
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((3 - half, 3 + half))
    assert mean_ci(np.array([4.0])) is None


def test_percentile_ci_unsupported_when_the_sample_is_too_small() -> None:
    values = np.arange(1.0, 101.0)
    assert percentile_ci(values, 99) is None  # n=100 cannot bracket p99
    assert percentile_ci(values, 99.9) is None
    assert percentile_ci(values, 50) is not None
    assert percentile_ci(np.arange(1.0, 1001.0), 99) is not None


def test_percentile_ci_ranks_on_a_known_sample() -> None:
    # n=50, p50: ranks floor(25 - 1.96*3.54) = 18 and ceil(25 + 6.93) = 32 (1-based).
    values = np.arange(1.0, 51.0)
    assert percentile_ci(values, 50) == (18.0, 32.0)


def test_relative_ci_half_width() -> None:
    samples = np.arange(1, 51, dtype=np.int64) * NS_PER_MS
    # interval (18, 32) ms around p50 = 25.5 ms: half-width 7 / 25.5
    assert relative_ci_half_width(samples, 50) == pytest.approx(7 / 25.5)
    assert relative_ci_half_width(samples, 99) is None


def test_describe_on_known_data() -> None:
    samples = np.arange(1, 101, dtype=np.int64) * NS_PER_MS  # 1..100 ms
    d = describe(samples[::-1], batch_size=8)  # order must not matter
    assert set(d) == {
        "n",
        "mean_ms",
        "std_ms",
        "min_ms",
        "max_ms",
        "cv",
        "percentiles_ms",
        "ci95_ms",
        "duration_s",
        "throughput_per_s",
    }
    assert d["n"] == 100
    assert d["mean_ms"] == pytest.approx(50.5)
    assert d["std_ms"] == pytest.approx(29.011491975882016)
    assert (d["min_ms"], d["max_ms"]) == (1.0, 100.0)
    assert d["cv"] == pytest.approx(29.011491975882016 / 50.5)
    assert set(d["percentiles_ms"]) == {f"p{q:g}" for q in PERCENTILES}
    assert d["percentiles_ms"]["p50"] == pytest.approx(50.5)
    assert d["percentiles_ms"]["p90"] == pytest.approx(90.1)
    assert d["percentiles_ms"]["p99"] == pytest.approx(99.01)
    # total 5,050 ms of timed calls; 8 items per call: 800 items / 5.05 s
    assert d["duration_s"] == pytest.approx(5.05)
    assert d["throughput_per_s"] == pytest.approx(8 * 100 / 5.05)
    ci = d["ci95_ms"]
    assert set(ci) == {"mean", *d["percentiles_ms"]}
    assert ci["mean"][0] < 50.5 < ci["mean"][1]
    assert ci["p50"][0] <= 50.5 <= ci["p50"][1]
    assert ci["p90"] is not None
    assert ci["p99"] is None and ci["p99.9"] is None  # not supported at n=100


def test_describe_throughput_uses_batch_and_total_time() -> None:
    d = describe([2 * NS_PER_MS] * 500, batch_size=1)  # 500 calls of 2 ms = 1 s
    assert d["throughput_per_s"] == pytest.approx(500.0)
    assert d["cv"] == 0.0 and d["std_ms"] == 0.0
    assert describe([2 * NS_PER_MS] * 500, batch_size=4)["throughput_per_s"] == pytest.approx(2000)


def test_describe_refuses_empty_samples() -> None:
    with pytest.raises(ValueError):
        describe([])


def test_encode_decode_round_trip() -> None:
    rng = np.random.default_rng(3)
    samples = rng.integers(1, 10**10, size=1234, dtype=np.int64)
    back = decode_samples(encode_samples(samples))
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, samples)
    assert decode_samples(encode_samples([])).size == 0
