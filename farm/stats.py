"""Latency statistics computed from raw per-call samples (numpy only, no torch).

Samples are kept in nanoseconds so any statistic can be recomputed later; aggregation
across jobs pools raw samples rather than averaging percentiles.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

NS_PER_MS = 1_000_000
_SAMPLES_FORMAT = b"F1"  # version tag of the compact encoding


@dataclass(frozen=True)
class Summary:
    """Summary of one set of latency samples, all times in milliseconds."""

    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | npt.NDArray[np.int64]) -> Summary:
        return cls.from_ms(np.asarray(samples_ns, dtype=np.float64) / NS_PER_MS)

    @classmethod
    def from_ms(cls, values: npt.NDArray[np.float64]) -> Summary:
        if values.size == 0:
            raise ValueError("no samples to summarise")
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            n=int(values.size),
            mean_ms=float(values.mean()),
            std_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
            min_ms=float(values.min()),
            max_ms=float(values.max()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
        )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def encode_samples(samples_ns: Sequence[int] | npt.NDArray[np.int64]) -> bytes:
    """Compact, lossless encoding: version tag + zlib of little-endian int64 nanoseconds."""
    arr = np.asarray(samples_ns, dtype="<i8")
    return _SAMPLES_FORMAT + zlib.compress(arr.tobytes(), level=6)


def decode_samples(blob: bytes) -> npt.NDArray[np.int64]:
    if not blob.startswith(_SAMPLES_FORMAT):
        raise ValueError("unknown samples encoding")
    try:
        raw = zlib.decompress(blob[len(_SAMPLES_FORMAT) :])
        return np.frombuffer(raw, dtype="<i8").astype(np.int64)
    except zlib.error as exc:
        raise ValueError(f"corrupt samples blob: {exc}") from None


# --- confidence -------------------------------------------------------------------------

Z95 = 1.959963984540054
# Student t quantiles (0.975) for 1..29 degrees of freedom; the normal one beyond.
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045,
)  # fmt: skip
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def percentile_key(q: float) -> str:
    return f"p{q:g}"


def t975(n: int) -> float:
    """Two-sided 95 % Student t quantile for n samples (normal from 31 on)."""
    return T975[n - 2] if 2 <= n <= 30 else Z95


def mean_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """95 % interval of a mean from its summary (a single sample: the mean itself)."""
    if n < 2:
        return mean, mean
    half = t975(n) * std / math.sqrt(n)
    return mean - half, mean + half


def mean_ci(values_ms: npt.NDArray[np.float64]) -> tuple[float, float] | None:
    """95 % interval of the mean of raw samples (None below two samples)."""
    n = values_ms.size
    if n < 2:
        return None
    return mean_interval(float(values_ms.mean()), float(values_ms.std(ddof=1)), n)


def percentile_ci(sorted_ms: npt.NDArray[np.float64], q: float) -> tuple[float, float] | None:
    """Distribution-free 95 % interval of the q-th percentile from order statistics.

    The number of samples below the true percentile is Binomial(n, q/100); the ranks that
    bracket its central 95 % (normal approximation) give the interval. None when the
    sample is too small for the interval to exist (the percentile is not supported).
    """
    n = sorted_ms.size
    p = q / 100.0
    sd = np.sqrt(n * p * (1 - p))
    lo = int(np.floor(n * p - Z95 * sd))  # 1-based ranks
    hi = int(np.ceil(n * p + Z95 * sd))
    if lo < 1 or hi > n:
        return None
    return float(sorted_ms[lo - 1]), float(sorted_ms[hi - 1])


def describe(
    samples_ns: Sequence[int] | npt.NDArray[np.int64], batch_size: int = 1
) -> dict[str, Any]:
    """Every statistic Farm reports, with 95 % intervals, as a JSON-ready dict (ms)."""
    values = np.sort(np.asarray(samples_ns, dtype=np.float64) / NS_PER_MS)
    if values.size == 0:
        raise ValueError("no samples to describe")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    pcts = np.percentile(values, PERCENTILES)
    ci: dict[str, list[float] | None] = {}
    m = mean_ci(values)
    ci["mean"] = list(m) if m else None
    for q in PERCENTILES:
        interval = percentile_ci(values, q)
        ci[percentile_key(q)] = list(interval) if interval else None
    total_s = float(values.sum()) / 1000.0
    return {
        "n": int(values.size),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(values[0]),
        "max_ms": float(values[-1]),
        "cv": std / mean if mean > 0 else 0.0,
        "percentiles_ms": {
            percentile_key(q): float(v) for q, v in zip(PERCENTILES, pcts, strict=True)
        },
        "ci95_ms": ci,
        "duration_s": total_s,
        "throughput_per_s": batch_size * values.size / total_s if total_s > 0 else 0.0,
    }


def relative_ci_half_width(samples_ns: npt.NDArray[np.int64], q: float) -> float | None:
    """Half-width of the q-th percentile's 95 % interval relative to the percentile."""
    values = np.sort(samples_ns.astype(np.float64))
    interval = percentile_ci(values, q)
    if interval is None:
        return None
    centre = float(np.percentile(values, q))
    return (interval[1] - interval[0]) / 2 / centre if centre > 0 else None
