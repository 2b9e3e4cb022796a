"""Repository: every state change of campaigns, jobs, workers and results.

Each function takes a Session inside a transaction owned by the caller, so a job's
result and its `succeeded` state are written in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, object_session

from farm.broker import DEFAULT_PRIORITY
from farm.db.bulk import store_campaign
from farm.db.clock import db_now
from farm.db.models import (
    TERMINAL_STATES,
    Calibration,
    Campaign,
    Job,
    Result,
    Worker,
    as_utc,
    utcnow,
)
from farm.errors import NotFound
from farm.flops import peak_matches
from farm.jobs import JobSpec
from farm.results import JobResult
from farm.store import Claim, Completion, LeaseCheck

MAX_ERROR_CHARS = 4000


def create_campaign(
    session: Session,
    name: str,
    matrix: dict[str, Any],
    jobs: list[JobSpec],
    priority: str = DEFAULT_PRIORITY,
) -> Campaign:
    """The campaign and its jobs, all queued (`campaign.jobs` loads them when asked), in
    bulk (farm.db.bulk)."""
    return store_campaign(session, name, matrix, jobs, priority)[0]


def find_campaign(session: Session, ref: str | int | None) -> Campaign:
    """A campaign by id, or the newest one with that name; the newest of all when ref is None."""
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(1)
    if ref is None:
        found = session.scalars(stmt).first()
        if found is None:
            raise NotFound("no campaigns yet; submit one with `farm submit MATRIX`")
        return found
    text = str(ref)
    found = session.get(Campaign, int(text)) if text.isdigit() else None
    if found is None:
        found = session.scalars(stmt.where(Campaign.name == text)).first()
    if found is None:
        raise NotFound(f"unknown campaign {text!r}; `farm campaigns` lists them")
    return found


def _record(job: Job, error: str) -> None:
    """Append the ended attempt to the job's history; old reasons are never lost."""
    _history(job, job.attempts, job.worker, job.lease, error)


def _history(job: Job, attempt: int | None, worker: str | None, lease: str | None,
             error: str) -> None:  # fmt: skip
    session = object_session(job)
    at = db_now(session) if session is not None else utcnow()
    entry = {"attempt": attempt, "worker": worker, "lease": lease, "error": error,
             "at": at.isoformat()}  # fmt: skip
    job.history = [*(job.history or []), entry]


def claim_job(
    session: Session,
    job_id: int,
    worker: str,
    lease: str = "",
    ttl_s: float = 60,
    max_attempts: int = 3,
    lease_alive: LeaseCheck | None = None,
) -> Claim:
    """Mark a job running under this process's lease, or say why not.

    A job another live process holds is not run twice: its lease is alive when
    `lease_alive` says so (same host: the pid exists) or, when that cannot tell, when its
    heartbeat is younger than `ttl_s`. A job whose runs keep dying ends failed after
    `max_attempts`.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        return Claim(None, "unknown job")
    if job.state in TERMINAL_STATES:
        return Claim(None, f"already {job.state}")
    if job.state == "running" and job.lease and job.lease != lease:
        if lease_held(job, ttl_s, lease_alive, db_now(session)):
            return Claim(None, f"held by live lease {job.lease}")
        _record(job, f"worker lost while running it (lease {job.lease})")
    if job.attempts >= max_attempts:
        last = (job.history or [{}])[-1].get("error") or job.error or "unknown"
        job.state = "failed"
        job.error = f"gave up after {job.attempts} attempts; last: {last}"[:MAX_ERROR_CHARS]
        job.finished_at = db_now(session)
        job.lease = None
        return Claim(None, "gave up")
    job.state = "running"
    job.attempts += 1
    job.worker = worker
    job.lease = lease or None
    job.started_at = job.heartbeat_at = db_now(session)
    job.lease_until = None
    return Claim(JobSpec.from_json(job.spec), "claimed")


def lease_held(
    job: Job, ttl_s: float, lease_alive: LeaseCheck | None, now: datetime
) -> bool:
    """Is the process holding this running job still at it?

    A dead pid (this host can tell) ends the lease at once; otherwise it holds while its
    heartbeat is younger than `ttl_s` or its extension (a timed phase) has not run out, both
    by `now`, the database's clock (farm.db.clock). A live pid alone does not hold it: a
    process that spooled the job's result goes on to other jobs, and that job's lease must
    expire like any other.
    """
    if lease_alive and job.lease and lease_alive(job.lease) is False:
        return False
    if job.lease_until is not None and now < as_utc(job.lease_until):
        return True
    beat = as_utc(job.heartbeat_at) if job.heartbeat_at else None
    return beat is not None and (now - beat).total_seconds() < ttl_s


def _held_by(session: Session, job_id: int, lease: str) -> Job | None:
    job = session.get(Job, job_id, with_for_update=True)
    return job if job is not None and job.lease == lease and job.state == "running" else None


def heartbeat_job(session: Session, job_id: int, lease: str) -> bool:
    """Refresh the lease and end any extension; False if the job is no longer held by it."""
    job = _held_by(session, job_id, lease)
    if job is None:
        return False
    job.heartbeat_at = db_now(session)
    job.lease_until = None
    return True


def extend_lease(session: Session, job_id: int, lease: str, seconds: float) -> bool:
    """Hold the lease until `seconds` from now without heartbeats; False if not held by it."""
    job = _held_by(session, job_id, lease)
    if job is None:
        return False
    job.heartbeat_at = now = db_now(session)
    job.lease_until = now + timedelta(seconds=seconds)
    return True


def _holder(job: Job) -> str:
    """Who holds the job now, in the words of a refusal."""
    if job.lease:
        return f"attempt {job.attempts} (lease {job.lease}) holds the job"
    return f"the job is {job.state} with no lease"


def _refuse(job: Job, lease: str, what: str) -> str:
    """Record a refused late write in the job's history (as the writer's attempt)."""
    reason = _holder(job)
    attempt = next((h.get("attempt") for h in reversed(job.history or [])
                    if h.get("lease") == lease), None)  # fmt: skip
    _history(job, attempt, None, lease, f"{what} refused: {reason}")
    return reason


def complete_job(
    session: Session, job_id: int, result: JobResult, lease: str | None = None
) -> Completion:
    """Write the result and `succeeded` together, only while the job has no result and
    `lease` is the job's lease (its holder's, or its last holder's if it was re-queued and
    no other attempt claimed it since); None skips the lease check (legacy spool files).

    The typed result maps field for field onto the `result` row's columns."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    exists = session.scalar(select(func.count()).select_from(Result).where(Result.job_id == job_id))
    if exists:
        return Completion("duplicate")
    if lease is not None and (job.lease != lease or job.state not in ("running", "queued")):
        return Completion("refused", _refuse(job, lease, "result"))
    session.add(Result(job_id=job_id, **result.columns()))
    job.state = "succeeded"
    job.finished_at = db_now(session)
    job.error = None
    job.lease = job.lease_until = None
    return Completion("written")


def fail_job(session: Session, job_id: int, reason: str, lease: str | None = None) -> bool:
    """End the job failed (its attempt recorded), unless it already succeeded or, when
    `lease` is given, another attempt holds it (a late failure is refused like a result)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state == "succeeded":
        return False
    if lease is not None and job.lease != lease:
        _refuse(job, lease, "failure")
        return False
    _record(job, reason[:MAX_ERROR_CHARS])
    job.state = "failed"
    job.error = reason[:MAX_ERROR_CHARS]
    job.finished_at = db_now(session)
    job.lease = job.lease_until = None
    return True


def running_jobs(session: Session, campaign_id: int | None = None) -> list[Job]:
    """Running jobs, locked for update: recovery decides which leases are dead."""
    stmt = select(Job).where(Job.state == "running").order_by(Job.id)
    if campaign_id is not None:
        stmt = stmt.where(Job.campaign_id == campaign_id)
    return list(session.scalars(stmt.with_for_update()))


def expired_jobs(session: Session, ttl_s: float) -> list[Job]:
    """Running jobs whose lease ran out by the database's clock (no heartbeat for `ttl_s`,
    no extension left), locked; rows another transaction holds are skipped, not waited on,
    so the workers that all sweep now and then never queue up behind one another."""
    now = db_now(session)
    stale = now - timedelta(seconds=ttl_s)
    stmt = (
        select(Job)
        .where(
            Job.state == "running",
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
            or_(Job.lease_until.is_(None), Job.lease_until < now),
        )
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def requeue(session: Session, job: Job, why: str) -> None:
    """Back to `queued` (its attempts and history kept) so it can be sent again.

    The lease stays as the last holder's until another attempt claims the job, so that
    holder's late result is still welcome if nobody ran the job again meanwhile."""
    _record(job, why)
    job.state = "queued"
    job.heartbeat_at = job.lease_until = None


def queued_jobs(session: Session, campaign_id: int | None = None) -> list[Job]:
    stmt = select(Job).where(Job.state == "queued").order_by(Job.id)
    if campaign_id is not None:
        stmt = stmt.where(Job.campaign_id == campaign_id)
    return list(session.scalars(stmt))


def campaign_jobs(session: Session, campaign_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.campaign_id == campaign_id).order_by(Job.id)))


def state_counts(session: Session, campaign_id: int) -> dict[tuple[str, str], int]:
    """(pool, state) → number of jobs."""
    rows = session.execute(
        select(Job.pool, Job.state, func.count())
        .where(Job.campaign_id == campaign_id)
        .group_by(Job.pool, Job.state)
    )
    return {(pool, state): n for pool, state, n in rows}


def list_campaigns(session: Session, limit: int = 50) -> list[tuple[Campaign, dict[str, int]]]:
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)))
    counts: dict[int, dict[str, int]] = {c.id: {} for c in campaigns}
    if campaigns:
        rows = session.execute(
            select(Job.campaign_id, Job.state, func.count())
            .where(Job.campaign_id.in_(counts))
            .group_by(Job.campaign_id, Job.state)
        )
        for cid, state, n in rows:
            counts[cid][state] = n
    return [(c, counts[c.id]) for c in campaigns]


def register_worker(session: Session, **fields: Any) -> Worker:
    worker = session.get(Worker, fields["name"])
    now = db_now(session)
    if worker is None:
        worker = Worker(**fields, started_at=now, last_seen=now)
        session.add(worker)
    else:
        for key, value in fields.items():
            setattr(worker, key, value)
        worker.started_at = now
        worker.last_seen = now
        worker.drain_requested_at = worker.stopped_at = None  # started again: serves
        if not peak_matches(worker.peak, worker.hostname, worker.cpus, worker.threads or 0):
            worker.peak = None  # measured with other CPUs, threads or on another host
    return worker


def touch_worker(session: Session, name: str) -> None:
    """One UPDATE: a job's claim touches it, and loading the row would decode its JSON."""
    session.execute(update(Worker).where(Worker.name == name).values(last_seen=db_now(session)))


def worker_peak(session: Session, name: str) -> dict[str, Any] | None:
    worker = session.get(Worker, name)
    return dict(worker.peak) if worker is not None and worker.peak else None


def record_peak(session: Session, name: str, peak: dict[str, Any]) -> None:
    worker = session.get(Worker, name)
    if worker is None:
        raise NotFound(f"worker {name!r} is not registered")
    worker.peak = dict(peak)


def request_drain(session: Session, name: str) -> list[Worker]:
    """Ask the worker called `name`, or else every worker of the host `name`, to finish its
    job in hand and exit; the workers marked (NotFound when none has that name or host)."""
    workers = [w] if (w := session.get(Worker, name)) is not None else list(
        session.scalars(select(Worker).where(Worker.hostname == name).order_by(Worker.name))
    )
    if not workers:
        raise NotFound(f"no worker or host named {name!r}; `farm hosts` lists them")
    now = db_now(session)
    for worker in workers:
        worker.drain_requested_at = worker.drain_requested_at or now
    return workers


def worker_stopped(session: Session, name: str) -> None:
    worker = session.get(Worker, name)
    if worker is not None:
        worker.stopped_at = db_now(session)


def drain_requested(session: Session, name: str) -> bool:
    worker = session.get(Worker, name)
    return worker is not None and worker.drain_requested_at is not None


def list_workers(session: Session) -> list[Worker]:
    return list(session.scalars(select(Worker).order_by(Worker.pool, Worker.name)))


def live_workers(session: Session, ttl_s: int) -> list[Worker]:
    """Workers seen within `ttl_s` (by the database's clock) and not stopped — or holding a
    job in a timed phase: its supervising process sleeps through the phase and stops
    beating, and the job's lease extension is then what says the worker is at work."""
    now = db_now(session)
    in_phase = (
        select(Job.id)
        .where(Job.worker == Worker.name, Job.state == "running", Job.lease_until > now)
        .exists()
    )
    seen = or_(Worker.last_seen >= now - timedelta(seconds=ttl_s), in_phase)
    return list(session.scalars(select(Worker).where(seen, Worker.stopped_at.is_(None))))


def waiting_by_queue(session: Session, campaign_id: int) -> dict[tuple[str, str, str], int]:
    """(pool, queue, backend) → jobs queued or running there."""
    rows = session.execute(
        select(Job.pool, Job.queue, Job.backend, func.count())
        .where(Job.campaign_id == campaign_id, Job.state.in_(("queued", "running")))
        .group_by(Job.pool, Job.queue, Job.backend)
    )
    return {(pool, queue, backend): n for pool, queue, backend, n in rows}


def record_calibration(session: Session, **fields: Any) -> Calibration:
    row = Calibration(**fields)
    session.add(row)
    return row
