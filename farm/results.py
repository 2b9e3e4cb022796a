"""A job's result as the worker measured it: typed, so its fields are checked where it is built.

`farm.db` maps it to the `result` row (one column per field); the spool writes it as JSON
(the raw samples base64-encoded), the same files as before it was typed, so a result spooled
by an older worker still loads.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class JobResult:
    """The summary, raw samples and everything the job ran with; one per job."""

    worker: str | None
    host: str | None
    tokens: int
    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    samples: bytes  # int64 nanoseconds per timed call (farm.stats.encode_samples)
    model_identity: dict[str, Any]
    environment: dict[str, Any]
    setup_s: float
    measure_s: float
    # Measurement you can trust: statistics with intervals, the verdict and its reasons.
    stats: dict[str, Any] | None = None
    verdict: str | None = None
    reasons: list[str] | None = None
    warmup_samples: bytes | None = None
    throughput: float | None = None
    first_call_ms: float | None = None
    peak_rss_mb: float | None = None
    output_check: dict[str, Any] | None = None
    # Efficiency (farm.flops): FLOPs per call, achieved GFLOP/s, the peak of the precision
    # the backend computes in and the % of it reached; null where not known.
    flops: float | None = None
    gflops: float | None = None
    peak_gflops: float | None = None
    efficiency_pct: float | None = None
    # text-generation (None otherwise): time to first token per timed call (int64 ns,
    # encoded as `samples`) and the summaries of farm.generation.generation_stats.
    ttft_samples: bytes | None = None
    ttft_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_ms: float | None = None
    tpot_p99_ms: float | None = None
    tokens_per_s: float | None = None

    BINARY = ("samples", "warmup_samples", "ttft_samples")  # bytes fields: base64 in JSON

    def columns(self) -> dict[str, Any]:
        """Field name → value, shallow (the row's columns have the same names)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: the bytes fields as base64 text."""
        return {
            k: base64.b64encode(v).decode() if k in self.BINARY and v else v
            for k, v in self.columns().items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        """The inverse of to_json; TypeError on a field it does not know or one it lacks."""
        decoded: dict[str, Any] = {
            k: base64.b64decode(v) if k in cls.BINARY and v else v for k, v in data.items()
        }
        return cls(**decoded)
