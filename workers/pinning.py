"""Pinning a measuring process: its CPUs and thread count, set before torch is imported."""

from __future__ import annotations

import os


def pin(cpus: set[int] | None, threads: int | None) -> int:
    """Apply affinity and thread count before torch is imported; returns the thread count."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    count = threads or len(os.sched_getaffinity(0))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(count)
    return count
