"""The SQL adapter of the job store port (farm/store.py): one transaction per call.

The SQL itself stays in farm/db/repo.py (functions on a caller's session); this adapter
owns the transactions around them and turns a database error into StoreUnavailable, so
the worker never sees SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from farm.db import repo
from farm.db.session import transaction
from farm.results import JobResult
from farm.store import Claim, JobStore, LeaseCheck, StoreUnavailable

# What callers that predate the port still hand the worker: a session factory, or a
# session whose transaction they own (see job_store).
SessionSource = sessionmaker[Session] | Session


class DbJobStore:
    """The job store over a session factory (each call its own transaction), or over one
    open session whose transaction the caller owns (`bound`: nothing is committed here)."""

    def __init__(self, factory: sessionmaker[Session] | None = None, bound: Session | None = None):
        if (factory is None) == (bound is None):
            raise ValueError("DbJobStore needs a session factory or a bound session, not both")
        self._factory, self._bound = factory, bound

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            if self._bound is not None:
                yield self._bound
                return
            assert self._factory is not None
            with transaction(self._factory) as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def claim(
        self,
        job_id: int,
        worker: str,
        lease: str,
        ttl_s: float,
        max_attempts: int,
        lease_alive: LeaseCheck | None = None,
    ) -> Claim:
        with self._session() as session:
            claim = repo.claim_job(session, job_id, worker, lease, ttl_s, max_attempts, lease_alive)
            repo.touch_worker(session, worker)
            return claim

    def heartbeat(self, job_id: int, lease: str) -> bool:
        with self._session() as session:
            return repo.heartbeat_job(session, job_id, lease)

    def complete(self, job_id: int, result: JobResult) -> bool:
        with self._session() as session:
            return repo.complete_job(session, job_id, result)

    def fail(self, job_id: int, reason: str) -> None:
        with self._session() as session:
            repo.fail_job(session, job_id, reason)

    def requeue_dead(
        self, campaign_id: int | None, ttl_s: float, lease_alive: LeaseCheck | None = None
    ) -> int:
        requeued = 0
        with self._session() as session:
            for job in repo.running_jobs(session, campaign_id):
                if not repo.lease_held(job, ttl_s, lease_alive):
                    repo.requeue(session, job, f"recovered: lease {job.lease} is dead")
                    requeued += 1
        return requeued

    def register_worker(self, **fields: Any) -> None:
        with self._session() as session:
            repo.register_worker(session, **fields)

    def touch_worker(self, name: str) -> None:
        with self._session() as session:
            repo.touch_worker(session, name)


def job_store(source: JobStore | SessionSource) -> JobStore:
    """The store for `source`: itself, or a DbJobStore over a session factory or session.

    Transitional: `farm run` (cli/commands.py) and `farm recover` (workers/recover.py)
    still pass a session factory or an open session; once they pass a JobStore, drop this.
    """
    if isinstance(source, Session):
        return DbJobStore(bound=source)
    if isinstance(source, sessionmaker):
        return DbJobStore(factory=source)
    return source
