"""Leases: a job a live process holds is not run twice; a dead one's job is taken over."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from farm.db import repo
from farm.db.clock import db_now
from farm.db.jobstore import DbJobStore
from farm.db.migrate import upgrade
from farm.db.models import Job, Result, utcnow
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from farm.results import JobResult
from farm.workers import spool
from farm.workers.lease import lease_alive, my_lease
from tests.support.harness import job_result

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
        assert repo.lease_held(job, 60, None, db_now(s))
    _age_heartbeat(factory, job_id, 61)
    with transaction(factory) as s:
        (job,) = repo.running_jobs(s)
        assert not repo.lease_held(job, 60, None, db_now(s))
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


# --- a run that lost its lease cannot write (issue 12, defect 4) ---------------------------


def _result(worker: str) -> JobResult:
    return replace(job_result(), worker=worker)


def _taken_over(factory) -> tuple[DbJobStore, int]:  # type: ignore[no-untyped-def]
    """Attempt A (lease hostA:1) claims; its lease expires; the job is requeued and attempt
    B (lease hostB:2) claims it."""
    store = DbJobStore(factory)
    job_id = _job(factory)
    assert store.claim(job_id, "wA", "hostA:1", ttl_s=60, max_attempts=3).reason == "claimed"
    _age_heartbeat(factory, job_id, 61)
    assert store.requeue_dead(None, ttl_s=60) == 1
    assert store.claim(job_id, "wB", "hostB:2", ttl_s=60, max_attempts=3).reason == "claimed"
    return store, job_id


def _only_result(factory, job_id: int) -> tuple[Job, list[Result]]:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        rows = list(s.scalars(select(Result).where(Result.job_id == job_id)))
        s.expunge_all()
    return job, rows


def test_a_late_write_of_a_taken_over_run_is_refused(factory) -> None:  # type: ignore[no-untyped-def]
    store, job_id = _taken_over(factory)
    assert store.heartbeat(job_id, "hostA:1") is False
    late = store.complete(job_id, _result("wA"), "hostA:1")
    assert late.outcome == "refused", late
    assert late.reason == "attempt 2 (lease hostB:2) holds the job"
    assert store.fail(job_id, "RuntimeError: late", "hostA:1") is False  # nor a late failure
    assert store.complete(job_id, _result("wB"), "hostB:2").outcome == "written"
    job, rows = _only_result(factory, job_id)
    assert [r.worker for r in rows] == ["wB"]
    assert job.state == "succeeded" and job.attempts == 2 and job.error is None
    # attempt 1 (lease hostA:1) recorded as lost, then both its late writes as refused
    assert [(h["attempt"], h["lease"]) for h in job.history] == [(1, "hostA:1")] * 3
    assert [h["error"] for h in job.history] == [
        "recovered: lease hostA:1 is dead",
        "result refused: attempt 2 (lease hostB:2) holds the job",
        "failure refused: attempt 2 (lease hostB:2) holds the job",
    ]


def test_a_spooled_result_of_a_taken_over_run_is_refused(factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path / "spool"
    store = DbJobStore(factory)
    job_id = _job(factory)
    store.claim(job_id, "wA", "hostA:1", ttl_s=60, max_attempts=3)
    spool.save(str(tmp_path), job_id, "hostA:1", _result("wA"))  # the database was away
    _age_heartbeat(factory, job_id, 61)  # a spooled job's lease expires like any other
    assert store.requeue_dead(None, ttl_s=60) == 1
    assert store.claim(job_id, "wB", "hostB:2", ttl_s=60, max_attempts=3).reason == "claimed"
    assert spool.flush(store, str(tmp_path)) == (0, 0)
    assert [p.name for p in tmp_path.iterdir()] == [f"job-{job_id}.refused"]
    assert store.complete(job_id, _result("wB"), "hostB:2").outcome == "written"
    job, rows = _only_result(factory, job_id)
    assert [r.worker for r in rows] == ["wB"] and job.state == "succeeded"
    assert job.history[-1]["error"].startswith("result refused: attempt 2 (lease hostB:2)")


def test_an_expired_lease_nobody_took_over_still_writes(factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path / "spool"
    store = DbJobStore(factory)
    late, requeued, spooled = _job(factory), _job(factory), _job(factory)
    for job_id in (late, requeued, spooled):
        store.claim(job_id, "wA", "hostA:1", ttl_s=60, max_attempts=3)
        _age_heartbeat(factory, job_id, 600)
    assert store.complete(late, _result("wA"), "hostA:1").outcome == "written"
    assert store.requeue_dead(None, ttl_s=60) == 2  # requeued, but no other attempt claimed
    assert store.complete(requeued, _result("wA"), "hostA:1").outcome == "written"
    spool.save(str(tmp_path), spooled, "hostA:1", _result("wA"))
    assert spool.flush(store, str(tmp_path)) == (1, 0)
    for job_id in (late, requeued, spooled):
        job, rows = _only_result(factory, job_id)
        assert job.state == "succeeded" and [r.worker for r in rows] == ["wA"]
    again = store.complete(late, _result("wA"), "hostA:1")
    assert again.outcome == "duplicate"  # at most one result


def test_a_spooled_job_of_a_live_process_expires_by_ttl(factory) -> None:  # type: ignore[no-untyped-def]
    """The process that spooled a result lives on (it runs the next job): its pid alone must
    not hold the job for ever; without heartbeats the lease expires after the TTL."""
    store = DbJobStore(factory)
    job_id = _job(factory)
    store.claim(job_id, "w", my_lease(), ttl_s=60, max_attempts=3)
    assert store.requeue_dead(None, ttl_s=60, lease_alive=lease_alive) == 0  # fresh
    _age_heartbeat(factory, job_id, 61)
    assert store.requeue_dead(None, ttl_s=60, lease_alive=lease_alive) == 1


def test_an_extended_lease_holds_without_heartbeats(factory) -> None:  # type: ignore[no-untyped-def]
    """A timed phase extends the lease once instead of beating; the next beat ends it."""
    store = DbJobStore(factory)
    job_id = _job(factory)
    store.claim(job_id, "w", "hostA:1", ttl_s=60, max_attempts=3)
    assert store.extend(job_id, "hostB:2", 600) is False  # not its lease
    assert store.extend(job_id, "hostA:1", 600) is True
    _age_heartbeat(factory, job_id, 120)
    assert store.requeue_dead(None, ttl_s=60) == 0  # held through the phase
    claim = store.claim(job_id, "w2", "hostB:2", ttl_s=60, max_attempts=3)
    assert claim.reason == "held by live lease hostA:1"
    assert store.heartbeat(job_id, "hostA:1")  # the phase is over: beats judge it again
    _age_heartbeat(factory, job_id, 61)
    assert store.requeue_dead(None, ttl_s=60) == 1
