"""The timed phase of a job: nothing else in Farm runs while calls are timed.

Before the first timed call the measuring process stops its lease heartbeat thread (so no
thread of ours wakes beside the timed calls), extends the job's lease once over the
phase's bound instead, and takes the worker's phase lock; the worker's supervising
process takes that lock around its own periodic work (touching `last_seen`, flushing the
spool), so that work sleeps in the kernel until the phase ends. After the last timed
call the lock is let go and the heartbeat beats again (at once, which ends the extension,
when the phase ended well before its bound).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import numpy.typing as npt

from farm.protocol import Protocol
from farm.store import StoreUnavailable, failure_name
from farm.workers.lease import Heartbeat

log = logging.getLogger("farm.worker")

NS = 1_000_000_000
# How much slower than the slowest steady warm-up call a timed call may be before the
# extension runs out (then the lease falls back on heartbeats, and a late write is refused
# only if another attempt took the job over meanwhile).
MARGIN = 2.0


class LeaseLost(Exception):
    """Another attempt holds the job: this run stops and writes nothing."""


def phase_bound(
    protocol: Protocol, warm_ns: npt.NDArray[np.int64], elapsed_s: float, fallback_s: float
) -> float:
    """The longest the timed phase can last, in seconds; the least of:

    - what is left of the job's `timeout_s` (the job is stopped then anyway);
    - `max_duration_s` plus MARGIN calls;
    - MARGIN × the calls at the slowest warm-up call after the first (the first is the cold
      start): `iterations` calls or `min_duration_s`, whichever is longer, when fixed; the
      call cap when adaptive.

    Without a warm-up or a limit, `fallback_s` (the visibility timeout: no job may run
    longer, or Redis delivers it again).
    """
    steady = warm_ns[1:] if warm_ns.size > 1 else warm_ns
    call_s = float(steady.max()) / NS if steady.size else None
    bounds: list[float] = []
    if protocol.timeout_s:
        bounds.append(max(protocol.timeout_s - elapsed_s, 0.0))
    if call_s is not None:
        cap_s = protocol.call_cap * call_s
        if protocol.target_ci is None:  # fixed: the count, or the minimum duration
            cap_s = min(cap_s, max(protocol.iterations * call_s, protocol.min_duration_s + call_s))
        bounds.append(MARGIN * cap_s)
        if protocol.max_duration_s:
            bounds.append(protocol.max_duration_s + MARGIN * call_s)
    elif protocol.max_duration_s:
        bounds.append(MARGIN * protocol.max_duration_s)
    return min(bounds) if bounds else fallback_s


def phase_lock_file() -> str:
    """A fresh lock file for one worker (its supervising process and its pool child)."""
    fd, path = tempfile.mkstemp(prefix="farm-worker-", suffix=".phase")
    os.close(fd)
    return path


@contextmanager
def _flock(path: str | None, mode: int) -> Iterator[None]:
    """Hold `path` locked with `mode` (blocking); no-op without a path or when it is gone.

    Each call opens the file anew: flock locks belong to an open file description, and a
    forked child must not share its parent's."""
    if path is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.warning("phase lock %s unavailable (%s); going on without it", path, exc)
        yield
        return
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def timing(path: str | None) -> AbstractContextManager[None]:
    """The measuring child, through a timed phase: waits for the supervisor's work to end."""
    return _flock(path, fcntl.LOCK_EX)


def between_phases(path: str | None) -> AbstractContextManager[None]:
    """The supervising process, around its periodic work: sleeps while a phase runs."""
    return _flock(path, fcntl.LOCK_SH)


@contextmanager
def quiet_phase(beat: Heartbeat, bound: float, ttl: float, lock: str | None) -> Iterator[None]:
    """The timed phase: heartbeat thread ended, lease extended `bound` + `ttl` seconds (the
    phase's bound, then a lease's life), phase lock held.

    Afterwards the heartbeat beats at once (ending the extension) only when more of the
    bound is left unused than one heartbeat interval: a short phase's extension then lapses
    no later than regular heartbeats would let a lease lapse, and the job's next write
    (its result, usually) is not queued behind a beat of its own on the job's row.
    """
    beat.stop()
    started = time.monotonic()
    try:
        held = beat.store.extend(beat.job_id, beat.lease, bound + ttl)
    except StoreUnavailable as exc:  # measure anyway; a takeover would refuse the result
        log.warning("job %s: lease not extended over the timed phase: %s", beat.job_id,
                    failure_name(exc))  # fmt: skip
        held = True
    if not held or beat.lost:
        beat.lost = True
        raise LeaseLost(f"lease {beat.lease} no longer holds job {beat.job_id}")
    try:
        with timing(lock):
            yield
    finally:
        beat.start(now=bound - (time.monotonic() - started) > beat.interval_s)
