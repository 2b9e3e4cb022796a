"""A running job's lease: who holds it, a heartbeat while it runs, and a time limit.

The lease ("host:pid") lets a second delivery of the same job (Redis redelivers unacked
messages after its visibility timeout; a requeue after a crash) tell a live run from a
dead one: on the same host the pid says, elsewhere the heartbeat's age does.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from farm.store import JobStore, failure_name

log = logging.getLogger("farm.worker")


def my_lease() -> str:
    """host:pid@start — the start time tells a reused pid from the process that held it."""
    return f"{socket.gethostname()}:{os.getpid()}@{_stat(os.getpid())[1]}"


def lease_alive(lease: str) -> bool | None:
    """True/False for a lease of this host (is that process still running?); None elsewhere."""
    host, _, proc = lease.rpartition(":")
    pid, _, started = proc.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    state, start = _stat(int(pid))
    if state is None:
        return False  # no such process
    if state in ("Z", "X"):
        return False  # killed, not yet reaped: a zombie still answers kill(pid, 0)
    return not started or start == started


def _stat(pid: int) -> tuple[str | None, str]:
    """(state, start time in clock ticks) of a process from /proc, (None, "") if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None, ""
    except OSError:
        return "?", ""  # no /proc here: assume alive rather than steal a live job
    return fields[0], fields[19]


@contextmanager
def heartbeat(store: JobStore, job_id: int, lease: str, interval_s: float) -> Iterator[None]:
    """Refresh the job's heartbeat every `interval_s` from a thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                store.heartbeat(job_id, lease)
            except Exception as exc:  # a database blip must not kill the measurement
                log.warning("job %s heartbeat failed: %s", job_id, failure_name(exc))

    thread = threading.Thread(target=beat, name=f"farm-lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


class JobTimeout(Exception):
    """The job ran past its protocol's timeout_s."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise JobTimeout in this (main) thread after `seconds`; no-op when None."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise JobTimeout(f"timeout: the job ran past its limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
