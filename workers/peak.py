"""The host's roof: a measured square GEMM, fp32 and bf16, in this process's pinning.

A result's % of peak (farm.flops) is read against what a large matmul reaches with the same
CPUs and torch threads the jobs use, the best of a few runs over a few sizes. bf16 is
measured only where the CPU computes it natively (AVX-512 BF16 or AMX): elsewhere torch
emulates it and the figure would be no roof at all, so bf16 results there get no %.
torch is imported inside the function, as every heavy import on a worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from farm.hardware import native_bf16
from farm.store import JobStore

if TYPE_CHECKING:
    from farm.workers.execute import WorkerContext

log = logging.getLogger("farm.worker")


def gemm_gflops(size: int, dtype: str, repeats: int) -> float:
    """Best GFLOP/s of `repeats` timed products of two size × size matrices (after one warm)."""
    import torch

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(kind)
    b = torch.randn(size, size, generator=gen).to(kind)
    out = torch.empty(size, size, dtype=kind)
    with torch.inference_mode():
        torch.mm(a, b, out=out)  # warm: oneDNN/BLAS picks its kernel, pages are touched
        best = float("inf")
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def measure_peak(flags: Mapping[str, bool], sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    """fp32 and (natively supported) bf16 peak of this process, with how it was measured."""
    import torch

    by_size: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}}
    dtypes = ["fp32", "bf16"] if native_bf16(flags) else ["fp32"]
    for dtype in dtypes:
        for size in sizes:
            by_size[dtype][str(size)] = round(gemm_gflops(size, dtype, repeats), 3)
    best = {d: max(v.values()) if v else None for d, v in by_size.items()}
    return {
        "fp32_gflops": best["fp32"],
        "bf16_gflops": best["bf16"],
        "bf16": None if "bf16" in dtypes else "not native on this CPU (no AVX-512 BF16 or AMX)",
        "by_size": by_size,
        "sizes": list(sizes),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "cpus": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
        "torch": torch.__version__,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def valid_request(sizes: Any, repeats: Any) -> str | None:
    """Why a peak request's parameters are refused (they come off the broker), or None."""
    if not isinstance(sizes, list) or not 1 <= len(sizes) <= 8:
        return "sizes must be a list of 1 to 8 matrix sizes"
    if not all(isinstance(n, int) and not isinstance(n, bool) and 8 <= n <= 16384 for n in sizes):
        return "each size must be an integer from 8 to 16384"
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 100:
        return "repeats must be an integer from 1 to 100"
    return None


def refresh_peak(
    store: JobStore,
    ctx: WorkerContext,
    sizes: Sequence[int],
    repeats: int,
    request: str | None = None,
) -> dict[str, Any]:
    """Measure this worker's peak, store it for its name and use it for the next results.

    `request` (from `farm calibrate --peak`) is stored with it, so the caller knows that
    its own request was answered, whatever the hosts' clocks say."""
    peak = measure_peak(ctx.fingerprint.get("flags") or {}, sizes, repeats)
    peak |= {"hostname": ctx.host, "request": request}
    store.record_peak(ctx.name, peak)
    ctx.peak = peak
    return peak


def ensure_peak(store: JobStore, ctx: WorkerContext) -> None:
    """Measure and store the peak once per host, CPUs and threads (a worker's child at
    start, `farm run` before its first job): without one, results have no % of peak."""
    if ctx.peak is not None:
        return
    peak = refresh_peak(store, ctx, ctx.settings.peak_sizes, ctx.settings.peak_repeats)
    log.info("measured this host's peak: fp32 %s, bf16 %s GFLOP/s",
             peak["fp32_gflops"], peak["bf16_gflops"])  # fmt: skip
