"""A question-answering campaign through the ways jobs are stored: the bulk submit (COPY on
PostgreSQL, executemany on SQLite) and a bundle carried from SQLite to PostgreSQL keep each
job's context, in its spec and in its input hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from farm.app.bundles import export_bundle, push_bundle
from farm.db import bulk
from farm.db.bundles import SqlBundleStore
from farm.db.campaigns import cancel_campaign
from farm.db.migrate import upgrade
from farm.db.models import Campaign, Job
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec
from farm.matrix import Matrix, parse_matrix

pytestmark = pytest.mark.integration

QUESTION = "Who bought shoes?"
CONTEXTS = {"ann": "Ann bought shoes in May.", "bob": 'Bob bought\tshoes \\N in "June".'}


def qa_matrix() -> Matrix:
    return parse_matrix({
        "name": "qa",
        "task": "question-answering",
        "models": [{"name": "distilbert-base-uncased-distilled-squad", "layers": 1}],
        "inputs": {name: {"question": QUESTION, "context": c} for name, c in CONTEXTS.items()},
        "batch_sizes": [1, 2],
        "backends": ["pytorch"],
        "pools": ["qa"],
    })  # fmt: skip


@pytest.fixture(params=["migrated_pg", "sqlite_url"])
def factory(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    url = request.getfixturevalue(request.param)
    if request.param == "sqlite_url":
        upgrade(url)
    return session_factory(url)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - an identity, not a secret


def test_the_bulk_submit_stores_and_hashes_the_context(factory: sessionmaker[Session]) -> None:
    matrix = qa_matrix()
    specs = matrix.expand()
    with transaction(factory) as s:
        _, ids = bulk.store_campaign(s, "qa", matrix.to_json(), specs)
    with transaction(factory) as s:
        jobs = [s.get_one(Job, i) for i in ids]
        for job, spec in zip(jobs, specs, strict=True):
            assert job.spec["input_text"] == QUESTION
            assert job.spec["input_context"] == CONTEXTS[job.input_name]
            assert JobSpec.from_json(job.spec) == spec and job.cell_key == spec.cell_key()
            assert job.input_hash == md5(json.dumps([QUESTION, CONTEXTS[job.input_name]]))
            assert job.input_hash == Job(spec=spec.to_json()).input_hash  # as the ORM sets it
            assert job.task == "question-answering"
        # One question on two contexts: two inputs, told apart by their hash.
        assert len({j.input_hash for j in jobs}) == 2
        campaign = s.get_one(Campaign, jobs[0].campaign_id)
        pair = campaign.matrix["inputs"]["bob"]
        assert pair == {"question": QUESTION, "context": CONTEXTS["bob"]}


def test_a_bundle_carries_a_qa_campaign(sqlite_url: str, migrated_pg: str, tmp_path: Path) -> None:
    upgrade(sqlite_url)
    source = session_factory(sqlite_url)
    matrix = qa_matrix()
    with transaction(source) as s:
        campaign, _ = bulk.store_campaign(s, "qa", matrix.to_json(), matrix.expand())
        campaign_id = campaign.id
    with transaction(source) as s:  # ended, so it can be bundled
        assert cancel_campaign(s, str(campaign_id)).cancelled == 4
    path = tmp_path / "qa.farm"
    export_bundle(SqlBundleStore(sqlite_url), str(campaign_id), path)
    _, pushed = push_bundle(SqlBundleStore(migrated_pg), path)

    def jobs(factory: sessionmaker[Session], campaign: int) -> list[tuple[object, ...]]:
        with transaction(factory) as s:
            found = s.scalars(select(Job).where(Job.campaign_id == campaign).order_by(Job.id))
            return [(j.spec, j.input_hash, j.cell_key, j.input_name, j.state) for j in found]

    before = jobs(source, campaign_id)
    after = jobs(session_factory(migrated_pg), pushed.campaign_id)
    assert after == before and len(after) == 4
    for spec, *_ in after:
        assert isinstance(spec, dict)
        assert JobSpec.from_json(spec).input_context in CONTEXTS.values()
