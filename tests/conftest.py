"""Service fixtures: real PostgreSQL and Redis; skipped locally with a reason, failed in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get(
    "FARM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FARM_TEST_REDIS", "redis://127.0.0.1:6379/14")
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def unavailable(service: str, reason: object) -> None:
    message = f"{service} is not reachable ({reason}); start it to run this test"
    if IN_CI:
        pytest.fail(f"{message} -- CI must provide it")
    pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from farm.db.session import get_engine

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        conn = admin.connect()
    except OperationalError as exc:
        unavailable("PostgreSQL", str(exc.orig).splitlines()[0])
    name = f"farm_test_{uuid.uuid4().hex[:12]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.close()
        admin.dispose()


@pytest.fixture
def migrated_pg(pg_url: str) -> str:
    from farm.db.migrate import upgrade

    upgrade(pg_url)
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'farm.db'}"


def redis_database(index: int | None = None) -> Iterator[str]:
    """Yield the URL of a Redis database (REDIS_URL's, or `index`), emptied before and after.

    Tests whose queued messages must survive another test run's FLUSHDB use an index of
    their own.
    """
    import redis

    url = REDIS_URL if index is None else f"{REDIS_URL.rsplit('/', 1)[0]}/{index}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own (index 14 by default), emptied before and after."""
    yield from redis_database()
