"""Cancel, retry, re-run and delete against the real PostgreSQL and SQLite (embedded mode)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from farm.broker import Message
from farm.db import bulk, campaigns, repo
from farm.db.models import Campaign, Job, Result
from farm.db.session import session_factory, transaction
from farm.errors import NotFound
from farm.jobs import JobSpec
from farm.reports.selectors import Filters
from tests.support.harness import job_spec, result_fields

pytestmark = pytest.mark.integration


@pytest.fixture(params=["migrated_pg", "sqlite_url"])
def factory(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    url = request.getfixturevalue(request.param)
    if request.param == "sqlite_url":
        from farm.db.migrate import upgrade

        upgrade(url)
    return session_factory(url)


def _campaign(
    factory: sessionmaker[Session], states: list[str], name: str = "c", priority: str = "normal"
) -> list[int]:
    """A campaign whose jobs (batch 1, 2, ...) are in the given states; returns job ids."""
    with transaction(factory) as s:
        specs = [job_spec(batch=i + 1) for i in range(len(states))]
        matrix = {"name": name, "pools": ["a"]}
        campaign = repo.create_campaign(s, name, matrix, specs, priority)
        for job, state in zip(campaign.jobs, states, strict=True):
            job.state = state
            job.attempts = 0 if state == "queued" else 1
            if state == "failed":
                job.error = f"ModelResolutionError: boom {job.id}"
            if state == "succeeded":
                s.add(Result(job_id=job.id, **result_fields()))
        return [job.id for job in campaign.jobs]


def _jobs(factory: sessionmaker[Session], ids: list[int]) -> list[Job]:
    with transaction(factory) as s:
        return [s.get_one(Job, i) for i in ids]


def test_cancel_marks_queued_jobs_and_leaves_the_rest(factory: sessionmaker[Session]) -> None:
    ids = _campaign(factory, ["queued", "queued", "running", "succeeded", "failed"])
    with transaction(factory) as s:
        done = campaigns.cancel_campaign(s, "c")
    assert (done.cancelled, done.running, done.name) == (2, 1, "c")
    jobs = _jobs(factory, ids)
    assert [j.state for j in jobs] == ["cancelled", "cancelled", "running", "succeeded", "failed"]
    assert jobs[0].finished_at is not None and "farm cancel" in (jobs[0].error or "")
    with transaction(factory) as s:
        again = campaigns.cancel_campaign(s, str(done.campaign_id))
    assert (again.cancelled, again.running) == (0, 1)


def test_cancel_with_filters_leaves_the_other_cells(factory: sessionmaker[Session]) -> None:
    ids = _campaign(factory, ["queued", "queued", "queued", "running"])  # batch 1 to 4
    with transaction(factory) as s:
        done = campaigns.cancel_campaign(s, "c", Filters(batches=(2, 3, 4)))
    assert (done.cancelled, done.running) == (2, 1)
    assert [j.state for j in _jobs(factory, ids)] == ["queued", "cancelled", "cancelled", "running"]
    with transaction(factory) as s:
        none = campaigns.cancel_campaign(s, "c", Filters(backends=("openvino",)))
    assert (none.cancelled, none.running) == (0, 0)
    assert [j.state for j in _jobs(factory, ids)][0] == "queued"


def test_retry_requeues_failed_jobs_keeping_the_reason(factory: sessionmaker[Session]) -> None:
    ids = _campaign(factory, ["failed", "succeeded", "failed", "cancelled"])
    with transaction(factory) as s:
        retried = campaigns.retry_campaign(s, "c")
    assert retried.messages == [Message(ids[0], "farm.a"), Message(ids[2], "farm.a")]
    jobs = _jobs(factory, ids)
    assert [j.state for j in jobs] == ["queued", "succeeded", "queued", "cancelled"]
    assert jobs[0].error == f"previous attempt: ModelResolutionError: boom {ids[0]}"
    assert jobs[0].attempts == 1 and jobs[0].finished_at is None
    # A second retry of the same reason does not stack prefixes.
    with transaction(factory) as s:
        job = s.get_one(Job, ids[0])
        job.state = "failed"
    with transaction(factory) as s:
        assert campaigns.retry_campaign(s, "c").messages == [Message(ids[0], "farm.a")]
    assert _jobs(factory, ids)[0].error == f"previous attempt: ModelResolutionError: boom {ids[0]}"


def test_undo_retry_restores_failed_jobs_not_taken(factory: sessionmaker[Session]) -> None:
    ids = _campaign(factory, ["failed", "failed"])
    before = _jobs(factory, ids)
    with transaction(factory) as s:
        retried = campaigns.retry_campaign(s, "c")
    with transaction(factory) as s:
        s.get_one(Job, ids[1]).state = "running"  # a message got through before the failure
    with transaction(factory) as s:
        assert campaigns.undo_retry(s, retried) == 1
    after = _jobs(factory, ids)
    assert (after[0].state, after[0].error) == ("failed", before[0].error)
    assert after[0].finished_at == before[0].finished_at
    assert after[1].state == "running"


def test_retry_counts_jobs_that_used_their_attempts(factory: sessionmaker[Session]) -> None:
    ids = _campaign(factory, ["failed", "failed"])
    with transaction(factory) as s:
        s.get_one(Job, ids[1]).attempts = 3
    with transaction(factory) as s:
        assert campaigns.retry_campaign(s, "c", max_attempts=3).exhausted == 1


def test_resends_carry_the_campaigns_priority(factory: sessionmaker[Session]) -> None:
    """Retry, re-run and recover's queued messages: at the priority it was submitted with."""
    ids = _campaign(factory, ["failed", "queued"], name="urgent", priority="high")
    _campaign(factory, ["queued"], name="later", priority="low")
    with transaction(factory) as s:
        assert campaigns.retry_campaign(s, "urgent").messages == [
            Message(ids[0], "farm.a", "high")
        ]
    with transaction(factory) as s:
        new, _ = campaigns.rerun_campaign(s, "urgent", "zen4")
        assert new.priority == "high"
        rerun_id = new.id
    with transaction(factory) as s:
        queued = campaigns.queued_messages(s, None)
    assert [m.priority for m in queued] == ["high", "high", "low", "high", "high"]
    assert {m.job_id for m in queued if m.priority == "low"} == {ids[1] + 1}
    store = campaigns.SqlCampaignStore(str(factory.kw["bind"].url))
    assert {m.priority for m in store.queued_messages(rerun_id)} == {"high"}


def test_store_campaign_returns_ids_in_the_order_of_its_jobs(
    factory: sessionmaker[Session],
) -> None:
    """The bulk insert (COPY on PostgreSQL) writes every column Job(spec=...) would."""
    specs = [job_spec(batch=b) for b in (8, 1, 4, 2)]
    # COPY's text format escapes tabs, newlines and backslashes; JSON its own escapes.
    specs[2] = specs[2].model_copy(update={"input_text": 'tab\there\nnew \\N "q" \u00fc'})
    with transaction(factory) as s:
        campaign, ids = bulk.store_campaign(s, "bulk", {}, specs, "low")
    with transaction(factory) as s:
        jobs = [s.get_one(Job, i) for i in ids]
        assert [j.batch_size for j in jobs] == [8, 1, 4, 2]
        assert jobs[2].spec["input_text"] == 'tab\there\nnew \\N "q" \u00fc'
        for job, spec in zip(jobs, specs, strict=True):
            orm = Job(spec=spec.to_json())  # what the validator sets
            for column in ("batching", "allocator", "options", "mode", "measure", "input_hash",
                           "stack", "instances", "cores_per_instance"):  # fmt: skip
                assert getattr(job, column) == getattr(orm, column), column
            assert (job.state, job.attempts, job.queue, job.cell_key) == (
                "queued", 0, spec.queue, spec.cell_key()
            )
            assert JobSpec.from_json(job.spec) == spec
        assert s.get_one(Campaign, campaign.id).priority == "low"


def test_retry_with_nothing_failed(factory: sessionmaker[Session]) -> None:
    _campaign(factory, ["succeeded", "queued"])
    with transaction(factory) as s:
        assert campaigns.retry_campaign(s, "c").messages == []


def test_rerun_copies_the_cells_onto_another_pool(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as s:
        specs = [job_spec("a", 1), job_spec("b", 1), job_spec("a", 8)]
        old = repo.create_campaign(s, "study", {"name": "study", "pools": ["a", "b"]}, specs)
        s.add(Result(job_id=old.jobs[0].id, **result_fields()))
        old.jobs[0].state = "succeeded"
        old_id = old.id
    with transaction(factory) as s:
        new, source = campaigns.rerun_campaign(s, "study", "zen4")
        new_id = new.id
    assert source == old_id and new_id != old_id
    with transaction(factory) as s:
        found = s.get_one(Campaign, new_id)
        jobs = repo.campaign_jobs(s, new_id)
        assert found.name == "study"
        assert found.matrix == {"name": "study", "pools": ["zen4"], "rerun_of": old_id}
        # Cells that differed only by pool collapse: batch 1 on a and b is one cell on zen4.
        assert [(j.pool, j.batch_size, j.state, j.queue) for j in jobs] == [
            ("zen4", 1, "queued", "farm.zen4"),
            ("zen4", 8, "queued", "farm.zen4"),
        ]
        assert [j.cell_key for j in jobs] == [
            job_spec("zen4", 1).cell_key(),
            job_spec("zen4", 8).cell_key(),
        ]
        assert [JobSpec.from_json(j.spec) for j in jobs] == [
            job_spec("zen4", 1),
            job_spec("zen4", 8),
        ]
        assert len(repo.campaign_jobs(s, old_id)) == 3  # the original is untouched


def test_delete_removes_the_campaign_its_jobs_and_results(factory: sessionmaker[Session]) -> None:
    keep = _campaign(factory, ["succeeded"], name="keep")
    _campaign(factory, ["succeeded", "running", "queued"], name="gone")
    with transaction(factory) as s:
        summary = campaigns.describe(s, "gone")
    assert (summary.jobs, summary.running, summary.results) == (3, 1, 1)
    with transaction(factory) as s:
        campaigns.delete_campaign(s, summary.campaign_id)
    with transaction(factory) as s:
        assert s.get(Campaign, summary.campaign_id) is None
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert s.scalar(select(func.count()).select_from(Result)) == 1
        assert [j.id for j in repo.campaign_jobs(s, repo.find_campaign(s, "keep").id)] == keep
        with pytest.raises(NotFound):
            repo.find_campaign(s, "gone")


@pytest.mark.parametrize("action", ["cancel", "retry", "rerun", "describe"])
def test_unknown_campaign(factory: sessionmaker[Session], action: str) -> None:
    calls = {
        "cancel": lambda s: campaigns.cancel_campaign(s, "nope"),
        "retry": lambda s: campaigns.retry_campaign(s, "nope"),
        "rerun": lambda s: campaigns.rerun_campaign(s, "nope", "a"),
        "describe": lambda s: campaigns.describe(s, "nope"),
    }
    with transaction(factory) as s, pytest.raises(NotFound, match="unknown campaign 'nope'"):
        calls[action](s)


def test_status_snapshot_names_the_first_failed_jobs_and_counts_them_all(
    factory: sessionmaker[Session],
) -> None:
    """`farm status` on a large campaign reads aggregates and FAILED_SHOWN failed jobs, never
    every job as an object."""
    from farm.app.ports import FAILED_SHOWN

    states = ["failed"] * (FAILED_SHOWN + 5) + ["queued", "succeeded"]
    ids = _campaign(factory, states, priority="low")
    store = campaigns.SqlCampaignStore(str(factory.kw["bind"].url))
    snap = store.snapshot("c", 60)
    assert [j.id for j in snap.failed] == ids[:FAILED_SHOWN]
    assert snap.counts == {("a", "failed"): FAILED_SHOWN + 5, ("a", "queued"): 1,
                           ("a", "succeeded"): 1}  # fmt: skip
    assert snap.campaign.priority == "low"
