"""Repository state changes against the real PostgreSQL (and SQLite for the embedded mode)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from farm.db import repo
from farm.db.models import Job, Result
from farm.db.session import session_factory, transaction
from farm.errors import NotFound
from farm.jobs import JobSpec, ModelSpec

pytestmark = pytest.mark.integration


def _spec(pool: str = "a", batch: int = 1) -> JobSpec:
    return JobSpec(
        model=ModelSpec(name="m"),
        input_name="short",
        input_text="hello",
        batch_size=batch,
        backend="pytorch",
        pool=pool,
    )


def _result() -> dict[str, object]:
    return dict(
        worker="w",
        host="h",
        tokens=3,
        n=2,
        mean_ms=1.0,
        std_ms=0.1,
        min_ms=0.9,
        max_ms=1.1,
        p50_ms=1.0,
        p90_ms=1.1,
        p99_ms=1.1,
        samples=b"F1",
        model_identity={},
        environment={},
        setup_s=0.0,
        measure_s=0.1,
    )


@pytest.mark.parametrize("url_fixture", ["migrated_pg", "sqlite_url"])
def test_job_lifecycle_writes_one_result(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    if url_fixture == "sqlite_url":
        from farm.db.migrate import upgrade

        upgrade(url)
    factory = session_factory(url)
    with transaction(factory) as s:
        campaign = repo.create_campaign(s, "c1", {}, [_spec("a"), _spec("b")])
        job_id = campaign.jobs[0].id
    with transaction(factory) as s:
        claim = repo.claim_job(s, job_id, "w1", lease="h:1")
    assert claim.spec == _spec("a") and claim.reason == "claimed"
    with transaction(factory) as s:
        assert repo.complete_job(s, job_id, _result()) is True
    with transaction(factory) as s:
        assert repo.complete_job(s, job_id, _result()) is False  # at most one result
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
        first = repo.create_campaign(s, "same", {}, [_spec()])
        second = repo.create_campaign(s, "same", {}, [_spec()])
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


def test_live_pools_follow_heartbeats(migrated_pg: str) -> None:
    factory = session_factory(migrated_pg)
    with transaction(factory) as s:
        repo.register_worker(
            s, name="w1", pool="icelake", hostname="h", pid=1, cpus="0", threads=1, fingerprint={}
        )
    with transaction(factory) as s:
        assert repo.live_pools(s, ttl_s=60) == {"icelake"}
        assert repo.live_pools(s, ttl_s=-1) == set()
