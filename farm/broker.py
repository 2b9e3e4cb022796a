"""The broker port: how the core sends jobs to workers, whatever carries the messages.

The database is the system of record; the broker only transports (job id, queue) messages,
so the use cases need just these operations (and one request that is no job: a worker's
GEMM peak, `farm calibrate --peak`). The Celery/Redis adapter lives in
farm.workers.broker; tests use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# (job id, queue name): one message asks a worker of that queue to run that job.
Message = tuple[int, str]


class Broker(Protocol):
    def check(self) -> None:
        """Raise ServiceUnavailable, before anything is written, if the broker is down."""

    def enqueue(self, messages: Sequence[Message]) -> int:
        """Send one message per (job id, queue); returns how many were sent."""

    def pending(self, queues: set[str]) -> set[int]:
        """Job ids with a message waiting in these queues (empty when it cannot tell)."""

    def request_peak(self, queue: str, request: str, sizes: list[int], repeats: int) -> None:
        """Ask the worker of `queue` to measure its GEMM peak and store it with `request`."""
