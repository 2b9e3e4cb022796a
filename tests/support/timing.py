"""A bare timing loop for benchmarks that compare callables in one process."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def time_calls(fn: Callable[[], Any], calls: int) -> list[float]:
    """`calls` latencies of `fn` in ms, perf_counter_ns around each, GC off as Farm times."""
    out = []
    gc.disable()
    try:
        for _ in range(calls):
            start = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        gc.enable()
    return out
