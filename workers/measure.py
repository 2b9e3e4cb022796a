"""The measuring loop: warm-up, then timed calls, nothing else inside the timed region."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class Measurement:
    warmup_ns: npt.NDArray[np.int64]
    samples_ns: npt.NDArray[np.int64]
    wall_s: float


def measure(fn: Callable[[], Any], warmup: int, iterations: int) -> Measurement:
    """Time `fn` with perf_counter_ns; garbage collection is off while timing."""
    warm = np.empty(warmup, dtype=np.int64)
    samples = np.empty(iterations, dtype=np.int64)
    clock = time.perf_counter_ns
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        for i in range(warmup):
            t0 = clock()
            fn()
            warm[i] = clock() - t0
        for i in range(iterations):
            t0 = clock()
            fn()
            samples[i] = clock() - t0
    finally:
        if was_enabled:
            gc.enable()
    return Measurement(warm, samples, time.perf_counter() - start)
