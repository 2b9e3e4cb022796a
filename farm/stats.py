"""Latency statistics computed from raw per-call samples (numpy only, no torch).

Samples are kept in nanoseconds so any statistic can be recomputed later; aggregation
across jobs pools raw samples rather than averaging percentiles.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

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
        values = np.asarray(samples_ns, dtype=np.float64) / NS_PER_MS
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


def pooled(blobs: Sequence[bytes]) -> Summary:
    """Summary of several jobs' samples pooled together (never averaged percentiles)."""
    return Summary.from_ns(np.concatenate([decode_samples(b) for b in blobs]))
