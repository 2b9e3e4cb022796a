"""Pooled connections cut by the server (a database restart): one that sat idle is pinged and
replaced before use; one reused at once fails its call, and a job's claim retries it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.pooling import IDLE_PING_S
from farm.db.session import get_engine, session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol
from farm.settings import Settings
from farm.workers.execute import WorkerContext, execute_job
from tests.support.services import PG_ADMIN_URL

pytestmark = pytest.mark.integration


def _backend_pid(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()
    time.sleep(0.2)  # the backend is gone; the client's socket is closed under it


def test_a_connection_cut_while_idle_is_replaced_before_use(
    migrated_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_DB_POOL", raising=False)
    get_engine(migrated_pg).dispose()
    first = _backend_pid(migrated_pg)
    assert _backend_pid(migrated_pg) == first  # pooled: the same connection again
    _terminate(first)
    time.sleep(IDLE_PING_S)
    assert _backend_pid(migrated_pg) != first  # pinged, found dead, replaced: no error


def test_a_claim_on_a_connection_cut_just_before_is_retried(
    migrated_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_DB_POOL", raising=False)
    factory = session_factory(migrated_pg)
    spec = JobSpec(model=ModelSpec(name="m"), input_name="short", input_text="a b c",
                   batch_size=1, backend="selftest", pool="a",
                   backend_options={"work_ms": 1.0, "crash": False},
                   protocol=Protocol(warmup=1, iterations=3))  # fmt: skip
    with transaction(factory) as s:
        job_id = repo.create_campaign(s, "cut", {}, [spec]).jobs[0].id
    _terminate(_backend_pid(migrated_pg))  # used a moment ago: no ping before the claim
    ctx = WorkerContext("w", "h", {}, Settings(database_url=migrated_pg))
    assert execute_job(DbJobStore(factory), job_id, ctx) == "succeeded"
    with transaction(factory) as s:
        assert s.scalar(text("SELECT attempts FROM job WHERE id = :j"), {"j": job_id}) == 1
