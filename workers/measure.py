"""The measuring loop: warm-up, then timed calls, nothing else inside the timed region.

Between calls (outside the timed region) the loop decides whether to stop: the minimum
count and duration met, a cap hit, or — in adaptive mode — the chosen percentile's
confidence interval tight enough. Garbage collection is off while timing.

Each measurement starts with a collection, so no garbage of setup is collected inside the
timed calls. The long-lived heap (imports, a loaded runner) is frozen once (`settle_heap`),
so that collection scans only what came since: a full one costs 60-200 ms with torch
loaded, which would be most of a short job's time, paid on every job.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.protocol import Protocol
from farm.stats import relative_ci_half_width
from farm.verdict import min_samples

NS = 1_000_000_000
Clock = Callable[[], int]
# Entered after the warm-up (given its samples), left after the last timed call: the
# caller quiets everything else in the process for the timed phase (workers/quiet.py).
TimedPhase = Callable[[npt.NDArray[np.int64]], AbstractContextManager[object]]


@dataclass
class Measurement:
    warmup_ns: npt.NDArray[np.int64]
    samples_ns: npt.NDArray[np.int64]
    wall_s: float
    stop_reason: str
    timed_s: float = 0.0  # wall time of the timed phase, bookkeeping between calls included
    # clock() at the end of each timed call, when asked (throughput mode's common window).
    ends_ns: npt.NDArray[np.int64] | None = None

    @property
    def first_call_ms(self) -> float:
        """Latency of the very first call after setup (a cold start)."""
        first = self.warmup_ns[0] if self.warmup_ns.size else self.samples_ns[0]
        return float(first) / 1e6


def settle_heap() -> None:
    """Collect, then freeze what survives (gc.freeze): the caller's long-lived objects are
    no longer scanned by the collection each measurement starts with. Called once a
    runner is loaded; `release_heap` first when one is dropped, so its cycles are freed."""
    gc.collect()
    gc.freeze()


def release_heap() -> None:
    """Unfreeze (gc.unfreeze) so the next collection may free what was frozen."""
    gc.unfreeze()


def _warm_up(fn: Callable[[], Any], protocol: Protocol, clock: Clock) -> npt.NDArray[np.int64]:
    times: list[int] = []
    deadline = clock() + int(protocol.warmup_s * NS)
    while len(times) < protocol.warmup or (protocol.warmup_s and clock() < deadline):
        t0 = clock()
        fn()
        times.append(clock() - t0)
        if len(times) >= 1_000_000:
            break
    return np.asarray(times, dtype=np.int64)


def _timed(
    fn: Callable[[], Any],
    protocol: Protocol,
    clock: Clock,
    ends: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], str]:
    """Timed calls until the protocol says stop; returns the samples and why it stopped.

    With `ends` (an array of the cap's size), each call's end time is kept there too,
    after the call's own reading, outside its sample."""
    cap = protocol.call_cap
    min_ns = int(protocol.min_duration_s * NS)
    max_ns = int(protocol.max_duration_s * NS) if protocol.max_duration_s else None
    samples = np.empty(min(cap, max(protocol.iterations, 1024)), dtype=np.int64)
    # An adaptive stop needs enough samples for its percentile to be supported at all.
    next_check = max(protocol.iterations, min_samples(protocol.target_percentile))
    n = 0
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples[n] = t1 - t0
        if ends is not None:
            ends[n] = t1
        n += 1
        if n >= cap:
            return samples[:n], "iterations" if cap == protocol.iterations else "call cap reached"
        if max_ns is not None and t1 - start >= max_ns:
            return samples[:n], "max duration reached"
        if n >= protocol.iterations and t1 - start >= min_ns:
            if protocol.target_ci is None:
                return samples[:n], "iterations" if not min_ns else "minimum duration met"
            if n >= next_check:  # never before the percentile is supported
                width = relative_ci_half_width(samples[:n], protocol.target_percentile)
                if width is not None and width <= protocol.target_ci:
                    return samples[:n], "target reached"
                next_check = n + max(50, n // 10)
        if n == samples.size:
            samples = np.resize(samples, min(cap, 2 * n))


def measure(
    fn: Callable[[], Any],
    protocol: Protocol,
    clock: Clock = time.perf_counter_ns,
    phase: TimedPhase | None = None,
    keep_ends: bool = False,
) -> Measurement:
    """Warm up, then time `fn` with `clock` (perf_counter_ns) until the protocol says stop,
    inside `phase(warm-up samples)` when given.

    The stopping rules read only `clock`, so a test can drive them with a scripted one and
    get the same samples on any host, loaded or idle. Throughput mode's copies wait for
    their barrier in `phase`; `keep_ends` records each timed call's end time.
    """
    ends = np.empty(protocol.call_cap, dtype=np.int64) if keep_ends else None
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        warm = _warm_up(fn, protocol, clock)
        with phase(warm) if phase is not None else nullcontext():
            timed_start = time.perf_counter()
            samples, reason = _timed(fn, protocol, clock, ends)
            end = time.perf_counter()
    finally:
        if was_enabled:
            gc.enable()
    kept = None if ends is None else ends[: samples.size].copy()
    return Measurement(warm, samples, end - start, reason, end - timed_start, kept)
