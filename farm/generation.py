"""Text generation's metrics, each from the raw per-call samples (numpy only).

One timed call is one `generate` call of exactly `new_tokens` new tokens for the whole batch.
TTFT (time to first token) is the prefill and the first token; TPOT (time per output token)
is the rest of the call over the other new_tokens − 1 steps; tokens/s counts the batch's new
tokens over the timed calls' total time. Means and p99s are of the per-call values, never
of other summaries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from farm.stats import NS_PER_MS

# The result's (and report JSON's) generation keys, beside n / mean_ms / p99_ms.
GENERATION_KEYS = ("ttft_ms", "ttft_p99_ms", "tpot_ms", "tpot_p99_ms", "tokens_per_s")


def tpot_ns(
    samples_ns: npt.NDArray[np.int64], ttft_ns: npt.NDArray[np.int64], new_tokens: int
) -> npt.NDArray[np.float64] | None:
    """Per call: (end-to-end − TTFT) / (new_tokens − 1); None for one new token."""
    if new_tokens < 2:
        return None
    rest = np.asarray(samples_ns, dtype=np.float64) - np.asarray(ttft_ns, dtype=np.float64)
    return rest / (new_tokens - 1)


def generation_stats(
    samples_ns: npt.NDArray[np.int64],
    ttft_ns: npt.NDArray[np.int64],
    batch_size: int,
    new_tokens: int,
) -> dict[str, float | None]:
    """The generation keys (GENERATION_KEYS) from per-call end-to-end and TTFT samples."""
    samples = np.asarray(samples_ns, dtype=np.int64)
    ttft = np.asarray(ttft_ns, dtype=np.int64)
    if samples.size == 0 or ttft.shape != samples.shape:
        raise ValueError(
            f"{ttft.size} TTFT samples for {samples.size} timed calls: one per call is needed"
        )
    ttft_ms = ttft.astype(np.float64) / NS_PER_MS
    per_token = tpot_ns(samples, ttft, new_tokens)
    total_s = float(samples.sum()) / 1e9
    out: dict[str, float | None] = {
        "ttft_ms": float(ttft_ms.mean()),
        "ttft_p99_ms": float(np.percentile(ttft_ms, 99)),
        "tpot_ms": None,
        "tpot_p99_ms": None,
        "tokens_per_s": batch_size * new_tokens * samples.size / total_s if total_s else None,
    }
    if per_token is not None:
        tpot_ms = per_token / NS_PER_MS
        out["tpot_ms"] = float(tpot_ms.mean())
        out["tpot_p99_ms"] = float(np.percentile(tpot_ms, 99))
    return out


def generation_summary(result: Any) -> dict[str, Any]:
    """The generation keys of a stored result (attributes or a mapping), None where unset."""
    get = result.get if isinstance(result, dict) else lambda k: getattr(result, k, None)
    return {key: get(key) for key in GENERATION_KEYS}
