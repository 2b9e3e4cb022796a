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
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from farm.db import repo
from farm.db.session import transaction

log = logging.getLogger("farm.worker")


def my_lease() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_alive(lease: str) -> bool | None:
    """True/False for a lease of this host (does the pid exist?); None for other hosts."""
    host, _, pid = lease.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def heartbeat(
    factory: sessionmaker[Session], job_id: int, lease: str, interval_s: float
) -> Iterator[None]:
    """Refresh the job's heartbeat every `interval_s` from a thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                with transaction(factory) as session:
                    repo.heartbeat_job(session, job_id, lease)
            except Exception as exc:  # a database blip must not kill the measurement
                log.warning("job %s heartbeat failed: %s", job_id, type(exc).__name__)

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
