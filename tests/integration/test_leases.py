"""Leases: a job a live process holds is not run twice; a dead one's job is taken over."""

from __future__ import annotations

from datetime import timedelta

import pytest

from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.migrate import upgrade
from farm.db.models import Job, utcnow
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec

pytestmark = pytest.mark.integration


@pytest.fixture(params=["migrated_pg", "sqlite_url"])
def factory(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    url = request.getfixturevalue(request.param)
    upgrade(url)
    return session_factory(url)


def _job(factory) -> int:  # type: ignore[no-untyped-def]
    spec = JobSpec(
        model=ModelSpec(name="m"),
        input_name="i",
        input_text="x",
        batch_size=1,
        backend="selftest",
        pool="a",
    )
    with transaction(factory) as s:
        return repo.create_campaign(s, "c", {}, [spec]).jobs[0].id


def _age_heartbeat(factory, job_id: int, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        job.heartbeat_at = utcnow() - timedelta(seconds=seconds)


def test_a_fresh_lease_of_another_host_is_respected(factory) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(factory)
    with transaction(factory) as s:
        assert repo.claim_job(s, job_id, "w1", "hostA:10").reason == "claimed"
    with transaction(factory) as s:
        claim = repo.claim_job(s, job_id, "w2", "hostB:20", ttl_s=60)
    assert claim.spec is None and claim.reason == "held by live lease hostA:10"
    _age_heartbeat(factory, job_id, 120)
    with transaction(factory) as s:
        claim = repo.claim_job(s, job_id, "w2", "hostB:20", ttl_s=60)
    assert claim.reason == "claimed"
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job.attempts == 2 and job.lease == "hostB:20" and job.worker == "w2"
        assert job.history[0]["error"].startswith("worker lost while running it (lease hostA:10)")


def test_a_dead_pid_on_this_host_is_taken_over_at_once(factory) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(factory)
    with transaction(factory) as s:
        repo.claim_job(s, job_id, "w1", "me:1")
    with transaction(factory) as s:
        held = repo.claim_job(s, job_id, "w1", "me:2", lease_alive=lambda lease: True)
        assert held.spec is None
    with transaction(factory) as s:
        taken = repo.claim_job(s, job_id, "w1", "me:2", lease_alive=lambda lease: False)
    assert taken.reason == "claimed"


def test_a_job_that_keeps_killing_its_worker_gives_up(factory) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(factory)
    for pid in range(3):
        with transaction(factory) as s:
            claim = repo.claim_job(
                s, job_id, "w", f"me:{pid}", max_attempts=3, lease_alive=lambda lease: False
            )
            assert claim.reason == "claimed"
    with transaction(factory) as s:
        claim = repo.claim_job(
            s, job_id, "w", "me:9", max_attempts=3, lease_alive=lambda lease: False
        )
    assert claim.reason == "gave up"
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job.state == "failed" and job.attempts == 3
        assert job.error.startswith("gave up after 3 attempts; last: worker lost")


def test_recover_queries_find_dead_leases(factory) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(factory)
    with transaction(factory) as s:
        repo.claim_job(s, job_id, "w", "elsewhere:1")
    with transaction(factory) as s:
        (job,) = repo.running_jobs(s)
        assert repo.lease_held(job, ttl_s=60)
    _age_heartbeat(factory, job_id, 61)
    with transaction(factory) as s:
        (job,) = repo.running_jobs(s)
        assert not repo.lease_held(job, ttl_s=60)
        repo.requeue(s, job, "recovered")
    with transaction(factory) as s:
        assert [j.id for j in repo.queued_jobs(s)] == [job_id]
        assert repo.heartbeat_job(s, job_id, "elsewhere:1") is False


def test_the_store_requeues_only_dead_leases(factory) -> None:  # type: ignore[no-untyped-def]
    store = DbJobStore(factory)
    dead, live = _job(factory), _job(factory)
    store.claim(dead, "w", "elsewhere:1", ttl_s=60, max_attempts=3)
    store.claim(live, "w", "elsewhere:2", ttl_s=60, max_attempts=3)
    assert store.heartbeat(live, "elsewhere:2") and not store.heartbeat(live, "elsewhere:1")
    _age_heartbeat(factory, dead, 61)
    assert store.requeue_dead(None, ttl_s=60) == 1
    with transaction(factory) as s:
        assert [j.id for j in repo.queued_jobs(s)] == [dead]
        job = s.get(Job, dead)
        assert job is not None
        assert job.history[-1]["error"] == "recovered: lease elsewhere:1 is dead"
