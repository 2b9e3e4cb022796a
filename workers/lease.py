"""A running job's lease: who holds it, a heartbeat while it runs, and a time limit.

The lease ("host:pid") lets a second delivery of the same job (Redis redelivers unacked
messages after its visibility timeout; a requeue after a crash) tell a live run from a
dead one: a dead pid on the same host ends it at once; otherwise the heartbeat's age
does, or the extension that covers a timed phase (during which nothing is written).
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


class Heartbeat:
    """Refresh the job's lease every `interval_s` from a thread, outside timed phases.

    `stop()` ends the thread (it must not wake while calls are timed: the caller extends
    the lease over the phase instead) and `start(now=True)` begins again with a beat at
    once. `lost` becomes True when a beat is refused: another attempt holds the job.
    """

    def __init__(self, store: JobStore, job_id: int, lease: str, interval_s: float) -> None:
        self.store, self.job_id, self.lease, self.interval_s = store, job_id, lease, interval_s
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, now: bool = False) -> None:
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(stop, now), name=f"farm-lease-{self.job_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Return once the thread has ended (a beat under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self, stop: threading.Event, now: bool) -> None:
        if not now and stop.wait(self.interval_s):
            return
        while True:
            try:
                if not self.store.heartbeat(self.job_id, self.lease):
                    self.lost = True
                    log.error("job %s: lease %s no longer holds the job", self.job_id, self.lease)
                    return
            except Exception as exc:  # a database blip must not kill the measurement
                log.warning("job %s heartbeat failed: %s", self.job_id, failure_name(exc))
            if stop.wait(self.interval_s):
                return

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


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
