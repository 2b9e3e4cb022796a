"""What the use cases need from the job store, named as ports (the core imports no SQL).

Rows come back as read-only views: the SQLAlchemy adapter (farm.db.campaigns) returns its
mapped objects, loaded before its transaction ends; a test may pass any object with these
attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from farm.broker import DEFAULT_PRIORITY, Message
from farm.jobs import JobSpec
from farm.reports.selectors import Filters


class CampaignRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def priority(self) -> str: ...


class ResultRow(Protocol):
    @property
    def mean_ms(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...


class JobRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def input_name(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def pool(self) -> str: ...
    @property
    def worker(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def result(self) -> ResultRow | None: ...


class WorkerRow(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def pool(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def hardware_class(self) -> str | None: ...
    @property
    def queues(self) -> list[str] | None: ...
    @property
    def cpus(self) -> str | None: ...
    @property
    def fingerprint(self) -> dict[str, Any]: ...
    @property
    def peak(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Stored:
    """A campaign just written, with the messages that make its jobs run."""

    campaign_id: int
    name: str
    messages: list[Message]


@dataclass(frozen=True)
class Cancelled:
    campaign_id: int
    name: str
    cancelled: int
    running: int


@dataclass(frozen=True)
class Retried:
    """Jobs put back to `queued`, the (job id, queue) messages to send, and what to restore."""

    campaign_id: int
    name: str
    messages: list[Message]
    previous: dict[int, tuple[str | None, datetime | None]] = field(repr=False)
    # Jobs that already used `max_attempts`: a worker's claim gives up on them at once.
    exhausted: int = 0


@dataclass(frozen=True)
class Summary:
    campaign_id: int
    name: str
    jobs: int
    running: int
    results: int


@dataclass(frozen=True)
class Snapshot:
    """One campaign's state, read in one transaction: what `farm status` shows."""

    campaign: CampaignRow
    counts: dict[tuple[str, str], int]  # (pool, state) -> jobs
    live_workers: list[WorkerRow]
    waiting: dict[tuple[str, str, str], int]  # (pool, queue, backend) -> queued or running
    failed: list[JobRow]  # the first FAILED_SHOWN failed jobs, in job order


# `farm status` names this many failed jobs (their count is in `counts`).
FAILED_SHOWN = 20


@dataclass(frozen=True)
class NoiseFloor:
    pool: str
    worker: str
    host: str
    mean_noise: float
    p99_noise: float
    jobs: list[int]


class CampaignStore(Protocol):
    """The campaign side of the job store; each call is its own transaction."""

    def create_campaign(
        self,
        name: str,
        matrix: dict[str, Any],
        jobs: list[JobSpec],
        priority: str = DEFAULT_PRIORITY,
    ) -> Stored:
        """Store a campaign and its jobs, all `queued`, at `priority` (default normal)."""

    def delete_campaign(self, campaign_id: int) -> None:
        """The campaign, its jobs and their results."""

    def find_campaign(self, ref: str | None) -> CampaignRow:
        """By id or newest of that name; the newest of all for None (NotFound otherwise)."""

    def progress(self, campaign_id: int) -> tuple[int, int]:
        """(jobs ended, jobs failed) of the campaign."""

    def snapshot(self, ref: str | None, worker_ttl_s: int) -> Snapshot: ...

    def campaign_jobs(self, campaign_id: int) -> list[JobRow]:
        """Every job of the campaign, with its result loaded."""

    def queued_messages(self, campaign_id: int | None) -> list[Message]: ...

    def list_campaigns(self, limit: int) -> list[tuple[CampaignRow, dict[str, int]]]: ...

    def live_workers(self, ttl_s: int) -> list[WorkerRow]: ...

    def cancel(self, ref: str, filters: Filters | None = None) -> Cancelled: ...

    def retry(self, ref: str, max_attempts: int) -> Retried: ...

    def undo_retry(self, retried: Retried) -> int: ...

    def rerun(self, ref: str, pool: str) -> tuple[Stored, int]:
        """The same cells on `pool` as a new campaign; returns it and the re-run's id."""

    def describe(self, ref: str) -> Summary: ...

    def record_calibrations(self, calibrations: Sequence[NoiseFloor]) -> None: ...


class LocalRunner(Protocol):
    """Runs jobs in this process (`farm run`): the worker side, wired in by the CLI."""

    def prepare(self, allocator: str, cpus: set[int] | None, threads: int | None) -> str | None:
        """Preload the allocator, pin, migrate the database and register this host; returns
        the software stack this process runs in (None: unknown, jobs keep theirs)."""

    def run(self, job_id: int) -> None: ...


class Reclaimer(Protocol):
    """The worker-side half of `farm recover`: spooled results and dead leases."""

    def __call__(self, campaign_id: int | None) -> tuple[int, int]:
        """Write spooled results, re-queue jobs under dead leases: (written, re-queued)."""


# Called with (campaign id, jobs ended, jobs failed, total) while a campaign is awaited.
OnProgress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class Pushed:
    """A bundle's campaign in this database: just written, or found from an earlier push."""

    campaign_id: int
    name: str
    jobs: int
    results: int
    already: bool  # an earlier push wrote it; this one wrote nothing


class BundleStore(Protocol):
    """Campaigns out of one database and into another as bundle payloads (JSON values:
    farm.app.bundlefile.Bundle.payload), for hosts with no route to the farm."""

    def export_campaign(self, ref: str, new_id: str) -> dict[str, Any]:
        """The ended campaign, its jobs, results and the workers they name; the campaign
        keeps the bundle id it has, else gets `new_id` (its payload row carries it)."""

    def import_campaign(self, payload: dict[str, Any], source: str) -> Pushed:
        """One transaction: a new campaign with new ids, or, when a campaign already has
        this payload's bundle id, that one (already=True); BundleError naming `source`
        when a row does not fit this database."""
