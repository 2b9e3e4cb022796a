"""Many workers, few database connections: real `farm worker` processes with FARM_DB_POOL=null
drain a campaign through a database that admits only 3 connections at a time, and a worker
whose jobs need no model never loads torch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.fleet import Fleet, selftest_campaign
from tests.support.harness import farm, farm_env
from tests.support.services import PG_ADMIN_URL

pytestmark = pytest.mark.acceptance

LIMIT = 3


@pytest.fixture
def three_connection_pg(migrated_pg: str) -> Iterator[str]:
    """The migrated database as a role of its own (not a superuser: PostgreSQL exempts
    those from connection limits), with the database's CONNECTION LIMIT set to 3."""
    role = f"farm_fleet_{uuid.uuid4().hex[:8]}"
    database = migrated_pg.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    owner = create_engine(migrated_pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'ALTER DATABASE "{database}" CONNECTION LIMIT {LIMIT}'))
    with owner.connect() as conn:
        for grant in ("USAGE ON SCHEMA public",
                      "SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public",
                      "USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public"):  # fmt: skip
            conn.execute(text(f'GRANT {grant} TO "{role}"'))
    try:
        yield migrated_pg.replace("//postgres@", f"//{role}@", 1)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE usename = :r"), {"r": role})  # fmt: skip
        with owner.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        owner.dispose()
        admin.dispose()


def test_six_workers_drain_a_campaign_through_three_connections(
    three_connection_pg: str, migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    url = three_connection_pg  # the workers and `farm submit`; the test reads as postgres
    assert "//postgres@" not in url, f"the test needs {PG_ADMIN_URL} to name user postgres"
    env = farm_env(url, redis_url) | {"FARM_DB_POOL": "null", "FARM_WORKER_HEARTBEAT": "1"}
    jobs = 60
    matrix = selftest_campaign(tmp_path / "m.yaml", jobs, work_ms=2.0, warmup=1, iterations=5)
    with Fleet(6, [0, 1], env, tmp_path) as fleet:
        fleet.start(timeout=180)
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        rows = fleet.drain(migrated_pg, int(sub.stdout.strip().splitlines()[-1]), timeout=300)
        dead = fleet.dead()
        torch_in = fleet.torch_imported()
    logs = "".join(log.read_text() for _, _, log in fleet.procs)
    assert not dead, f"workers died: {dead}\n{logs[-3000:]}"
    failed = [(r["id"], r["error"]) for r in rows if r["state"] != "succeeded"]
    assert len(rows) == jobs and not failed, failed
    assert all(r["attempts"] == 1 for r in rows), "a job was run twice"
    refused = [line for line in logs.splitlines() if "too many connections" in line]
    unridden = [line for line in refused if "database full, retrying" not in line]
    assert not unridden, unridden[:5]
    print(f"{len(refused)} connect(s) found the database full and were retried")
    assert not torch_in, f"processes {torch_in} loaded torch for selftest jobs"


def test_a_selftest_worker_never_loads_torch(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = selftest_campaign(tmp_path / "m.yaml", 5, work_ms=1.0)
    with Fleet(1, [0], env, tmp_path) as fleet:
        fleet.start(timeout=120)
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        rows = fleet.drain(migrated_pg, int(sub.stdout.strip().splitlines()[-1]), timeout=120)
        assert [r["state"] for r in rows] == ["succeeded"] * 5
        pids = fleet.pids()
        assert len(pids) == 2, "a worker is its supervising process and one pool child"
        assert fleet.torch_imported() == [], "a selftest worker loaded torch"
