"""The broker port: how the core sends jobs to workers, whatever carries the messages.

The database is the system of record; the broker only transports (job id, queue, priority)
messages, so the use cases need just these operations (and one request that is no job: a worker's
GEMM peak, `farm calibrate --peak`). The Celery/Redis adapter lives in
farm.workers.broker; tests use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

# A campaign's priority, highest first: a worker takes every waiting message of a higher
# priority before any of a lower one (`farm submit --priority`).
PRIORITIES = ("high", "normal", "low")
DEFAULT_PRIORITY = "normal"


class Message(NamedTuple):
    """One message asks a worker of `queue` to run the job, at its campaign's priority."""

    job_id: int
    queue: str
    priority: str = DEFAULT_PRIORITY


class Broker(Protocol):
    def check(self) -> None:
        """Raise ServiceUnavailable, before anything is written, if the broker is down."""

    def enqueue(self, messages: Sequence[Message]) -> int:
        """Send one message per (job id, queue, priority); returns how many were sent."""

    def pending(self, queues: set[str]) -> set[int]:
        """Job ids with a message waiting in these queues (empty when it cannot tell)."""

    def request_peak(self, queue: str, request: str, sizes: list[int], repeats: int) -> None:
        """Ask the worker of `queue` to measure its GEMM peak and store it with `request`."""
