"""The job store port: what a worker does to the system of record, one call per step.

Each call is one transaction of its own, owned by the adapter (`farm.db.jobstore.DbJobStore`
for SQL), so the worker modules name no database and a job goes claim → heartbeats →
complete or fail without the caller holding a session in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from farm.broker import Message
from farm.jobs import JobSpec
from farm.results import JobResult

# lease → True/False when this host can tell whether its process lives, None when it cannot.
LeaseCheck = Callable[[str], bool | None]
# Sends messages to the broker; raises when it cannot.
Send = Callable[[list[Message]], object]


class StoreUnavailable(Exception):
    """The store could not be reached or refused the write; its message names the cause."""


def failure_name(exc: BaseException) -> str:
    """What logs call a failure: the store's underlying error type (e.g. OperationalError),
    as they did before the port, else the exception's own type."""
    return str(exc) if isinstance(exc, StoreUnavailable) else type(exc).__name__


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to start a job: its spec, or why it is not ours to run."""

    spec: JobSpec | None
    reason: str


@dataclass(frozen=True)
class Completion:
    """What became of a result write: `written`; `duplicate` (the job already has its
    result); or `refused` (the writer's lease no longer holds the job; `reason` says who
    does, e.g. "attempt 2 (lease h:12@345) holds the job")."""

    outcome: str
    reason: str = ""


@runtime_checkable
class JobStore(Protocol):
    """A worker's side of the job store; each method commits on its own."""

    def claim(
        self,
        job_id: int,
        worker: str,
        lease: str,
        ttl_s: float,
        max_attempts: int,
        lease_alive: LeaseCheck | None = None,
    ) -> Claim:
        """Mark the job running under `lease` (and the worker seen), or say why not."""
        ...

    def heartbeat(self, job_id: int, lease: str) -> bool:
        """Refresh the lease (ending any extension); False if the job is no longer held by it."""
        ...

    def extend(self, job_id: int, lease: str, seconds: float) -> bool:
        """Hold the lease `seconds` from now with no heartbeat (a timed phase writes nothing);
        False if the job is no longer held by it."""
        ...

    def complete(self, job_id: int, result: JobResult, lease: str | None) -> Completion:
        """Write the result and `succeeded` together, only while the job has no result and
        `lease` is its lease (expired or not: no other attempt took the job over).

        `lease` None is only for a spool file written before results carried their lease.
        Raises farm.errors.NotFound for a job that is gone, StoreUnavailable when the
        store is away (the caller spools the result)."""
        ...

    def fail(self, job_id: int, reason: str, lease: str) -> bool:
        """End the job failed with `reason`, unless it already succeeded or another lease
        holds it (then False)."""
        ...

    def requeue_dead(
        self, campaign_id: int | None, ttl_s: float, lease_alive: LeaseCheck | None = None
    ) -> int:
        """Put running jobs whose lease is dead back to `queued`; how many."""
        ...

    def requeue_expired(self, ttl_s: float, send: Send) -> list[Message]:
        """Put running jobs of every campaign whose lease ran out (by the store's clock) back
        to `queued` and `send` their (job id, queue) messages before committing, so a send
        that fails changes nothing (the next sweep tries again) and a commit that fails
        leaves messages whose delivery takes the expired job over (claim). Each message keeps
        its campaign's priority. Returns them."""
        ...

    def register_worker(self, **fields: Any) -> None:
        """Record (or refresh) a worker process: its pool, host, pinning and queues."""
        ...

    def touch_worker(self, name: str) -> None:
        """The worker is alive now."""
        ...

    def worker_stopped(self, name: str) -> None:
        """The worker exited cleanly (SIGTERM or a drain): no longer live."""
        ...

    def drain_requested(self, name: str) -> bool:
        """`farm hosts drain` asked this worker to finish its job in hand and exit."""
        ...

    def worker_peak(self, name: str) -> dict[str, Any] | None:
        """The worker's stored GEMM peak (farm.workers.peak), None when none holds."""
        ...

    def record_peak(self, name: str, peak: dict[str, Any]) -> None:
        """Store the worker's measured peak (it replaces the previous one)."""
        ...
