"""Repository state changes against the real PostgreSQL (and SQLite for the embedded mode)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from farm.db import repo
from farm.db.models import Job, Result
from farm.db.session import session_factory, transaction
from farm.errors import NotFound
from tests.support.harness import job_spec, result_fields

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
        assert repo.complete_job(s, job_id, result_fields()) is True
    with transaction(factory) as s:
        assert repo.complete_job(s, job_id, result_fields()) is False  # at most one result
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


def test_live_pools_follow_heartbeats(migrated_pg: str) -> None:
    factory = session_factory(migrated_pg)
    with transaction(factory) as s:
        repo.register_worker(
            s, name="w1", pool="icelake", hostname="h", pid=1, cpus="0", threads=1, fingerprint={}
        )
    with transaction(factory) as s:
        assert repo.live_pools(s, ttl_s=60) == {"icelake"}
        assert repo.live_pools(s, ttl_s=-1) == set()
