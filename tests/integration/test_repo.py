"""Repository state changes against the real PostgreSQL (and SQLite for the embedded mode)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.models import Job, Result
from farm.db.session import session_factory, transaction
from farm.errors import NotFound
from farm.workers import spool
from tests.support.harness import job_result, job_spec, result_fields

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("url_fixture", ["migrated_pg", "sqlite_url"])
def test_job_lifecycle_writes_one_result(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    if url_fixture == "sqlite_url":
        from farm.db.migrate import upgrade

        upgrade(url)
    factory = session_factory(url)
    with transaction(factory) as s:
        campaign = repo.create_campaign(s, "c1", {}, [job_spec("a"), job_spec("b")])
        job_id = campaign.jobs[0].id
    with transaction(factory) as s:
        claim = repo.claim_job(s, job_id, "w1", lease="h:1")
    assert claim.spec == job_spec("a") and claim.reason == "claimed"
    with transaction(factory) as s:
        assert repo.complete_job(s, job_id, job_result(), "h:1").outcome == "written"
    with transaction(factory) as s:
        again = repo.complete_job(s, job_id, job_result(), "h:1")
        assert again.outcome == "duplicate"  # at most one result
        again = repo.claim_job(s, job_id, "w2")  # a finished job is not run again
        assert again.spec is None and again.reason == "already succeeded"
        job = s.get(Job, job_id)
        assert job is not None and job.state == "succeeded" and job.attempts == 1
        assert s.scalar(select(func.count()).select_from(Result)) == 1
        counts = repo.state_counts(s, campaign.id)
    assert counts == {("a", "succeeded"): 1, ("b", "queued"): 1}


def test_fail_and_find(migrated_pg: str) -> None:
    factory = session_factory(migrated_pg)
    with transaction(factory) as s:
        first = repo.create_campaign(s, "same", {}, [job_spec()])
        second = repo.create_campaign(s, "same", {}, [job_spec()])
        job_id = second.jobs[0].id
    with transaction(factory) as s:
        repo.claim_job(s, job_id, "w")
        repo.fail_job(s, job_id, "RuntimeError: boom")
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "failed" and job.error == "RuntimeError: boom"
        assert repo.find_campaign(s, "same").id == second.id  # newest with that name
        assert repo.find_campaign(s, str(first.id)).id == first.id
        assert repo.find_campaign(s, None).id == second.id
        with pytest.raises(NotFound, match="unknown campaign 'nope'"):
            repo.find_campaign(s, "nope")


def test_live_workers_follow_heartbeats(migrated_pg: str) -> None:
    factory = session_factory(migrated_pg)
    with transaction(factory) as s:
        repo.register_worker(
            s, name="w1", pool="icelake", hostname="h", pid=1, cpus="0", threads=1, fingerprint={}
        )
    with transaction(factory) as s:
        assert {w.pool for w in repo.live_workers(s, ttl_s=60)} == {"icelake"}
        assert repo.live_workers(s, ttl_s=-1) == []


def test_the_job_store_writes_a_spooled_result_once(tmp_path: Path, sqlite_url: str) -> None:
    """A spool file in the format older workers wrote (base64 samples, the row's keys) goes
    through the store: written once; a second flusher finds it there; a gone job's file is
    set aside."""
    from farm.db.migrate import upgrade

    upgrade(sqlite_url)
    factory = session_factory(sqlite_url)
    store = DbJobStore(factory)
    with transaction(factory) as s:
        job_id = repo.create_campaign(s, "c1", {}, [job_spec()]).jobs[0].id
    assert store.claim(job_id, "w1", "h:1", ttl_s=60, max_attempts=3).reason == "claimed"
    old = {**result_fields(), "samples": base64.b64encode(b"F1").decode(),
           "warmup_samples": None, "verdict": "valid", "reasons": []}  # fmt: skip
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / f"job-{job_id}.json").write_text(json.dumps({"job_id": job_id, "result": old}))
    (folder / "job-999.json").write_text(json.dumps({"job_id": 999, "result": old}))
    assert spool.load(folder / f"job-{job_id}.json")[1:] == (None, replace(
        job_result(), verdict="valid", reasons=[]
    ))  # an older worker's file has no lease: written while the job has no result
    assert spool.flush(store, str(folder)) == (1, 0)
    assert sorted(p.name for p in folder.iterdir()) == ["job-999.orphan"]
    spool.save(str(folder), job_id, "h:1", job_result())
    assert spool.flush(store, str(folder)) == (0, 1)  # at most one result
    with transaction(factory) as s:
        row = s.scalars(select(Result).where(Result.job_id == job_id)).one()
        job = s.get(Job, job_id)
        assert row.samples == b"F1" and row.verdict == "valid" and row.worker == "w"
        assert job is not None and job.state == "succeeded"


def test_a_workers_peak_is_kept_only_while_host_cpus_and_threads_stay(sqlite_url: str) -> None:
    """`farm calibrate --peak` stores it; a restart with other CPUs or threads drops it, so
    no result is read against a roof measured under another pinning."""
    from farm.db.migrate import upgrade

    upgrade(sqlite_url)
    store = DbJobStore(session_factory(sqlite_url))
    fields = dict(name="w1", pool="p", hostname="h", pid=1, cpus="0,1", threads=2, fingerprint={})
    store.register_worker(**fields)
    assert store.worker_peak("w1") is None
    peak = {"fp32_gflops": 90.0, "bf16_gflops": None, "hostname": "h", "cpus": "0,1", "threads": 2}
    store.record_peak("w1", peak)
    store.register_worker(**fields)  # a restart, same pinning: the peak holds
    assert store.worker_peak("w1") == peak
    store.register_worker(**{**fields, "threads": 1})
    assert store.worker_peak("w1") is None
    store.record_peak("w1", {**peak, "threads": 1})
    store.register_worker(**{**fields, "threads": 1, "cpus": "1"})
    assert store.worker_peak("w1") is None
    with pytest.raises(NotFound, match="not registered"):
        store.record_peak("nobody", peak)
