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

from farm.broker import Message
from farm.db import repo
from farm.db.clock import db_now
from farm.db.session import transaction
from farm.results import JobResult
from farm.store import Claim, Completion, LeaseCheck, Send, StoreUnavailable


class DbJobStore:
    """The job store over a session factory: each call is its own transaction."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
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

    def extend(self, job_id: int, lease: str, seconds: float) -> bool:
        with self._session() as session:
            return repo.extend_lease(session, job_id, lease, seconds)

    def complete(self, job_id: int, result: JobResult, lease: str | None) -> Completion:
        with self._session() as session:
            return repo.complete_job(session, job_id, result, lease)

    def fail(self, job_id: int, reason: str, lease: str) -> bool:
        with self._session() as session:
            return repo.fail_job(session, job_id, reason, lease)

    def requeue_dead(
        self, campaign_id: int | None, ttl_s: float, lease_alive: LeaseCheck | None = None
    ) -> int:
        requeued = 0
        with self._session() as session:
            now = db_now(session)
            for job in repo.running_jobs(session, campaign_id):
                if not repo.lease_held(job, ttl_s, lease_alive, now):
                    repo.requeue(session, job, f"recovered: lease {job.lease} is dead")
                    requeued += 1
        return requeued

    def requeue_expired(self, ttl_s: float, send: Send) -> list[Message]:
        with self._session() as session:
            jobs = repo.expired_jobs(session, ttl_s)
            for job in jobs:
                repo.requeue(session, job, f"recovered: lease {job.lease} expired")
            messages = [Message(job.id, job.queue, job.campaign.priority) for job in jobs]
            if messages:
                send(messages)  # before the commit: a failed send leaves them as they were
            return messages

    def register_worker(self, **fields: Any) -> None:
        with self._session() as session:
            repo.register_worker(session, **fields)

    def touch_worker(self, name: str) -> None:
        with self._session() as session:
            repo.touch_worker(session, name)

    def worker_stopped(self, name: str) -> None:
        with self._session() as session:
            repo.worker_stopped(session, name)

    def drain_requested(self, name: str) -> bool:
        with self._session() as session:
            return repo.drain_requested(session, name)

    def worker_peak(self, name: str) -> dict[str, Any] | None:
        with self._session() as session:
            return repo.worker_peak(session, name)

    def record_peak(self, name: str, peak: dict[str, Any]) -> None:
        with self._session() as session:
            repo.record_peak(session, name, peak)
