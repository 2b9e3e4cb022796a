"""Campaign administration: cancel, retry, re-run and delete.

Each function runs inside the caller's transaction and changes rows only; sending
messages is the caller's business, after commit, so a worker never receives a message
for a row it cannot see yet. A retry that cannot be sent is undone with `undo_retry`.
`SqlCampaignStore` is the application's campaign store port over them, one transaction
per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from farm.app.ports import (
    FAILED_SHOWN,
    CampaignRow,
    Cancelled,
    JobRow,
    NoiseFloor,
    Retried,
    Snapshot,
    Stored,
    Summary,
    WorkerRow,
)
from farm.broker import DEFAULT_PRIORITY, Message
from farm.db import bulk, repo
from farm.db.models import TERMINAL_STATES, Campaign, Job, Result, utcnow
from farm.db.reports.cells import filter_conditions
from farm.db.session import session_factory, transaction
from farm.errors import FarmError
from farm.jobs import JobSpec, queue_for
from farm.reports.selectors import Filters

PREVIOUS = "previous attempt: "


def _queue(job: Job) -> str:
    # Jobs stored before the queue column have "": their pool's queue.
    return job.queue or queue_for(job.pool)


def _count(session: Session, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Job).where(*where)) or 0)


def cancel_campaign(session: Session, ref: str, filters: Filters | None = None) -> Cancelled:
    """Queued jobs become `cancelled`; running ones finish (a worker refuses terminal jobs).
    `filters` (the reports' --model/--input/... ) narrow it to some cells, e.g. the ones
    that turned out too slow to wait for.

    One UPDATE ... WHERE state = 'queued': a job a worker claims meanwhile is locked by the
    claim and re-checked after it, so it stays running rather than being cancelled mid-run.
    """
    campaign = repo.find_campaign(session, ref)
    cells = filter_conditions([campaign.id], filters or Filters())
    done = session.execute(
        update(Job)
        .where(*cells, Job.state == "queued")
        .values(state="cancelled", finished_at=utcnow(), error="cancelled by `farm cancel`")
        .execution_options(synchronize_session=False)
    )
    cancelled = cast(CursorResult[Any], done).rowcount
    running = _count(session, *cells, Job.state == "running")
    return Cancelled(campaign.id, campaign.name, cancelled, running)


def retry_campaign(session: Session, ref: str, max_attempts: int | None = None) -> Retried:
    """Failed jobs back to `queued`; attempts are kept and the last reason is kept as
    "previous attempt: ..." in `error` until the next attempt ends (the job's history
    keeps every attempt's reason)."""
    campaign = repo.find_campaign(session, ref)
    failed = session.scalars(
        select(Job)
        .where(Job.campaign_id == campaign.id, Job.state == "failed")
        .order_by(Job.id)
        .with_for_update()
    ).all()
    previous: dict[int, tuple[str | None, datetime | None]] = {}
    for job in failed:
        previous[job.id] = (job.error, job.finished_at)
        reason = (job.error or "unknown").removeprefix(PREVIOUS)
        job.state = "queued"
        job.error = (PREVIOUS + reason)[: repo.MAX_ERROR_CHARS]
        job.finished_at = None
    exhausted = sum(1 for j in failed if max_attempts is not None and j.attempts >= max_attempts)
    messages = [Message(j.id, _queue(j), campaign.priority) for j in failed]
    return Retried(campaign.id, campaign.name, messages, previous, exhausted)


def undo_retry(session: Session, retried: Retried) -> int:
    """Put jobs of a retry whose messages could not be sent back to `failed`, as they were.

    A job a worker already took (a message did get through) is left alone.
    """
    restored = 0
    for job_id, (error, finished_at) in retried.previous.items():
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None and job.state == "queued":
            job.state, job.error, job.finished_at = "failed", error, finished_at
            restored += 1
    return restored


def rerun_campaign(session: Session, ref: str, pool: str) -> tuple[Campaign, int]:
    """A new campaign with the same cells on `pool` (cells that differed only by pool
    collapse) and the same priority; returns it and the id of the campaign it re-runs."""
    old = repo.find_campaign(session, ref)
    specs: dict[str, JobSpec] = {}
    rows = session.execute(
        select(Job.id, Job.spec).where(Job.campaign_id == old.id).order_by(Job.id)
    )  # two columns, not an object per job
    for job_id, stored in rows:
        try:
            spec = JobSpec.model_validate({**stored, "pool": pool})
        except ValidationError as exc:
            raise FarmError(
                f"job {job_id} of campaign {old.id} cannot be re-run: its stored spec does not "
                f"validate ({exc.errors()[0]['msg']}); was it written by another Farm version?"
            ) from None
        specs.setdefault(spec.cell_key(), spec)
    matrix = {**old.matrix, "pools": [pool], "rerun_of": old.id}
    new = repo.create_campaign(session, old.name, matrix, list(specs.values()), old.priority)
    return new, old.id


def describe(session: Session, ref: str) -> Summary:
    campaign = repo.find_campaign(session, ref)
    in_campaign = Job.campaign_id == campaign.id
    results = session.scalar(select(func.count()).select_from(Result).join(Job).where(in_campaign))
    return Summary(
        campaign.id,
        campaign.name,
        _count(session, in_campaign),
        _count(session, in_campaign, Job.state == "running"),
        int(results or 0),
    )


def delete_campaign(session: Session, campaign_id: int) -> None:
    """The campaign, its jobs and their results; a message still queued for one of its jobs
    is dropped by the worker (unknown job)."""
    jobs = select(Job.id).where(Job.campaign_id == campaign_id)
    for stmt in (
        delete(Result).where(Result.job_id.in_(jobs)),
        delete(Job).where(Job.campaign_id == campaign_id),
        delete(Campaign).where(Campaign.id == campaign_id),
    ):
        session.execute(stmt.execution_options(synchronize_session=False))


def _stored(session: Session, campaign: Campaign) -> Stored:
    """Its messages from two columns of its jobs, not from ORM objects (10,000 of them)."""
    rows = session.execute(
        select(Job.id, Job.queue).where(Job.campaign_id == campaign.id).order_by(Job.id)
    )
    return Stored(campaign.id, campaign.name, [Message(i, q, campaign.priority) for i, q in rows])


def failed_jobs(session: Session, campaign_id: int, limit: int) -> list[Job]:
    """The first `limit` failed jobs: never every job of a 100,000-job campaign as objects."""
    stmt = select(Job).where(Job.campaign_id == campaign_id, Job.state == "failed")
    return list(session.scalars(stmt.order_by(Job.id).limit(limit)))


def queued_messages(session: Session, campaign_id: int | None) -> list[Message]:
    """Every queued job's message, at its campaign's priority (what `farm recover` re-sends)."""
    stmt = (
        select(Job.id, Job.queue, Job.pool, Campaign.priority)
        .join(Campaign, Campaign.id == Job.campaign_id)
        .where(Job.state == "queued")
        .order_by(Job.id)
    )
    if campaign_id is not None:
        stmt = stmt.where(Job.campaign_id == campaign_id)
    return [Message(i, q or queue_for(pool), p) for i, q, pool, p in session.execute(stmt)]


class SqlCampaignStore:
    """farm.app.ports.CampaignStore on SQLAlchemy; the engine is made on first use."""

    def __init__(self, url: str) -> None:
        self.url = url

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return session_factory(self.url)

    def transaction(self) -> AbstractContextManager[Session]:
        """For the CLI's own reads and writes outside the use cases (pools, hosts)."""
        return transaction(self.factory)

    def create_campaign(
        self,
        name: str,
        matrix: dict[str, Any],
        jobs: list[JobSpec],
        priority: str = DEFAULT_PRIORITY,
    ) -> Stored:
        with transaction(self.factory) as session:
            campaign, ids = bulk.store_campaign(session, name, matrix, jobs, priority)
            messages = [Message(i, s.queue, priority) for i, s in zip(ids, jobs, strict=True)]
            return Stored(campaign.id, campaign.name, messages)

    def delete_campaign(self, campaign_id: int) -> None:
        with transaction(self.factory) as session:
            delete_campaign(session, campaign_id)

    def find_campaign(self, ref: str | None) -> CampaignRow:
        with transaction(self.factory) as session:
            return repo.find_campaign(session, ref)

    def progress(self, campaign_id: int) -> tuple[int, int]:
        with transaction(self.factory) as session:
            counts = repo.state_counts(session, campaign_id)
        done = sum(n for (_, state), n in counts.items() if state in TERMINAL_STATES)
        return done, sum(n for (_, state), n in counts.items() if state == "failed")

    def snapshot(self, ref: str | None, worker_ttl_s: int) -> Snapshot:
        with transaction(self.factory) as session:
            found = repo.find_campaign(session, ref)
            return Snapshot(
                campaign=found,
                counts=repo.state_counts(session, found.id),
                live_workers=list(repo.live_workers(session, worker_ttl_s)),
                waiting=repo.waiting_by_queue(session, found.id),
                failed=[job for job in failed_jobs(session, found.id, FAILED_SHOWN)],
            )

    def campaign_jobs(self, campaign_id: int) -> list[JobRow]:
        stmt = (
            select(Job)
            .where(Job.campaign_id == campaign_id)
            .order_by(Job.id)
            .options(selectinload(Job.result))
        )
        with transaction(self.factory) as session:
            return list(session.scalars(stmt))

    def queued_messages(self, campaign_id: int | None) -> list[Message]:
        with transaction(self.factory) as session:
            return queued_messages(session, campaign_id)

    def list_campaigns(self, limit: int) -> list[tuple[CampaignRow, dict[str, int]]]:
        with transaction(self.factory) as session:
            return list(repo.list_campaigns(session, limit))

    def live_workers(self, ttl_s: int) -> list[WorkerRow]:
        with transaction(self.factory) as session:
            return list(repo.live_workers(session, ttl_s))

    def cancel(self, ref: str, filters: Filters | None = None) -> Cancelled:
        with transaction(self.factory) as session:
            return cancel_campaign(session, ref, filters)

    def retry(self, ref: str, max_attempts: int) -> Retried:
        with transaction(self.factory) as session:
            return retry_campaign(session, ref, max_attempts)

    def undo_retry(self, retried: Retried) -> int:
        with transaction(self.factory) as session:
            return undo_retry(session, retried)

    def rerun(self, ref: str, pool: str) -> tuple[Stored, int]:
        with transaction(self.factory) as session:
            new, old_id = rerun_campaign(session, ref, pool)
            return _stored(session, new), old_id

    def describe(self, ref: str) -> Summary:
        with transaction(self.factory) as session:
            return describe(session, ref)

    def record_calibrations(self, calibrations: Sequence[NoiseFloor]) -> None:
        with transaction(self.factory) as session:
            for c in calibrations:
                repo.record_calibration(
                    session, pool=c.pool, worker=c.worker, host=c.host,
                    mean_noise=c.mean_noise, p99_noise=c.p99_noise, jobs=c.jobs,
                )  # fmt: skip
