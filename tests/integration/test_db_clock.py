"""Leases and liveness by the database's clock, and the sweep every live worker runs.

A host whose clock is minutes off writes heartbeats and `last_seen` in the database's time,
so it is neither declared dead nor allowed to keep a dead lease; `requeue_expired` is what
each worker's supervising process runs now and then (workers/recover.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from farm.broker import Message
from farm.db import models, repo
from farm.db.jobstore import DbJobStore
from farm.db.models import Job, utcnow
from farm.db.session import session_factory, transaction
from tests.support.harness import job_spec

pytestmark = pytest.mark.integration

SKEW = timedelta(minutes=5)


@pytest.fixture
def factory(migrated_pg: str):  # type: ignore[no-untyped-def]
    return session_factory(migrated_pg)


@pytest.fixture
def skewed_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's clock runs 5 minutes behind (as far as Farm's code can read it)."""

    def behind() -> datetime:
        return utcnow() - SKEW

    monkeypatch.setattr(models, "utcnow", behind)
    monkeypatch.setattr(repo, "utcnow", behind)
    yield


def _job(factory) -> int:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        return repo.create_campaign(s, "c", {}, [job_spec()]).jobs[0].id


def _server_now(factory) -> datetime:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        return s.execute(text("SELECT now()")).scalar_one()


def _age(factory, job_id: int, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        s.execute(
            text("UPDATE job SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": job_id},
        )


def test_a_skewed_host_beats_and_is_seen_in_the_databases_time(factory, skewed_host) -> None:  # type: ignore[no-untyped-def]
    store = DbJobStore(factory)
    store.register_worker(name="w", pool="a", hostname="h", pid=1, cpus="0", threads=1,
                          fingerprint={}, queues=[], allocator="default",
                          hardware_class="x")  # fmt: skip
    job_id = _job(factory)
    assert store.claim(job_id, "w", "skewed:1", ttl_s=60, max_attempts=3).reason == "claimed"
    assert store.heartbeat(job_id, "skewed:1")
    now = _server_now(factory)
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.heartbeat_at is not None
        assert abs((job.heartbeat_at - now).total_seconds()) < 5, "heartbeat in the host's time"
        assert [w.name for w in repo.live_workers(s, ttl_s=120)] == ["w"], "declared dead"


def test_a_skewed_host_cannot_keep_a_dead_lease(factory, skewed_host) -> None:  # type: ignore[no-untyped-def]
    """Its lease expires TTL after its last beat by the database's clock, not 5 min later."""
    store = DbJobStore(factory)
    job_id = _job(factory)
    store.claim(job_id, "w", "skewed:1", ttl_s=60, max_attempts=3)
    store.extend(job_id, "skewed:1", 30)
    _age(factory, job_id, 61)
    with transaction(factory) as s:  # the extension (30 s from the claim) still holds
        s.execute(text("UPDATE job SET lease_until = now() - interval '1 second'"))
    sent: list[list[tuple[int, str]]] = []
    assert store.requeue_expired(60, sent.append) == [Message(job_id, "farm.a")]
    assert sent == [[Message(job_id, "farm.a")]]
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "queued"
        assert job.history[-1]["error"] == "recovered: lease skewed:1 expired"


def test_the_sweep_leaves_live_and_extended_leases_alone(factory) -> None:  # type: ignore[no-untyped-def]
    store = DbJobStore(factory)
    fresh, extended = _job(factory), _job(factory)
    store.claim(fresh, "w", "h:1", ttl_s=60, max_attempts=3)
    store.claim(extended, "w", "h:2", ttl_s=60, max_attempts=3)
    store.extend(extended, "h:2", 600)
    _age(factory, extended, 61)
    assert store.requeue_expired(60, lambda m: None) == []
    _age(factory, fresh, 61)
    assert [m.job_id for m in store.requeue_expired(60, lambda m: None)] == [fresh]


def test_a_send_that_fails_changes_nothing(factory) -> None:  # type: ignore[no-untyped-def]
    store = DbJobStore(factory)
    job_id = _job(factory)
    store.claim(job_id, "w", "h:1", ttl_s=60, max_attempts=3)
    _age(factory, job_id, 61)

    def broker_down(messages: list[tuple[int, str]]) -> None:
        raise ConnectionError("broker away")

    with pytest.raises(ConnectionError):
        store.requeue_expired(60, broker_down)
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "running" and len(job.history or []) == 0
    assert [m for m in store.requeue_expired(60, lambda m: None)] == [Message(job_id, "farm.a")]


def test_sessions_cannot_hold_locks_or_wait_on_them_for_long(migrated_pg: str) -> None:
    """A worker cut off mid-transaction must not keep row locks every other worker waits on."""
    from farm.db.session import get_engine

    with get_engine(migrated_pg).connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "10s"
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "8s"


def test_a_worker_in_a_timed_phase_stays_live_without_beats(factory) -> None:  # type: ignore[no-untyped-def]
    """Its supervising process sleeps through the phase; the job's extension speaks for it."""
    store = DbJobStore(factory)
    store.register_worker(name="w", pool="a", hostname="h", pid=1, cpus="0", threads=1,
                          fingerprint={}, queues=[], allocator="default",
                          hardware_class="x")  # fmt: skip
    job_id = _job(factory)
    store.claim(job_id, "w", "h:1", ttl_s=60, max_attempts=3)
    store.extend(job_id, "h:1", 600)
    with transaction(factory) as s:
        s.execute(text("UPDATE worker SET last_seen = now() - interval '300 seconds'"))
    with transaction(factory) as s:
        assert [w.name for w in repo.live_workers(s, ttl_s=120)] == ["w"]
    with transaction(factory) as s:  # the phase is over and no beat came: not live
        s.execute(text("UPDATE job SET lease_until = now() - interval '1 second'"))
    with transaction(factory) as s:
        assert repo.live_workers(s, ttl_s=120) == []
