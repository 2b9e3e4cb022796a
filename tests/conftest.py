"""Service fixtures: a private Redis per run and a fresh PostgreSQL database per test;
skipped locally with a reason, failed in CI (tests/support/services.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import RedisServer, postgres_database, redis_binary

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def run_spool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A spool folder of this run's own for every worker it starts: a worker flushes every
    spooled result it finds, and must not find another run's (FARM_SPOOL_DIR)."""
    before = os.environ.get("FARM_SPOOL_DIR")
    os.environ["FARM_SPOOL_DIR"] = str(tmp_path_factory.mktemp("spool"))
    yield
    if before is None:
        os.environ.pop("FARM_SPOOL_DIR", None)
    else:
        os.environ["FARM_SPOOL_DIR"] = before


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def migrated_pg(pg_url: str) -> str:
    from farm.db.migrate import upgrade

    upgrade(pg_url)
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'farm.db'}"


@pytest.fixture(scope="session")
def run_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This test run's own redis-server on a free loopback port (never the machine's 6379,
    which another run may be flushing), started on first use and killed at the end."""
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis") / "redis.log")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(run_redis: RedisServer) -> Iterator[str]:
    """The run's Redis, emptied before and after the test."""
    run_redis.flush()
    yield run_redis.url
    run_redis.flush()
