"""Engine and session factory; connection failures become one clear line."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib.resources import files

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from farm.db.pooling import (
    POOL_ENV,
    RETRY_ENV,
    ping_when_idle,
    pool_options,
    retry_seconds,
    retry_when_full,
)
from farm.errors import ServiceUnavailable
from farm.settings import mask_url

HINT = (
    "start PostgreSQL (or fix FARM_DATABASE_URL / --database-url); "
    "the embedded default is a SQLite file: sqlite:///farm.db"
)


def get_engine(url: str) -> Engine:
    """The process's engine for `url`, pooled as FARM_DB_POOL says (farm/db/pooling.py)."""
    return _engine(url, os.environ.get(POOL_ENV, ""), os.environ.get(RETRY_ENV, ""))


@lru_cache(maxsize=8)
def _engine(url: str, pool: str, retry: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            options = pool_options(pool)
            engine = create_engine(url, connect_args=_connect_args(url), **options)
            if options.get("poolclass") is not NullPool:
                ping_when_idle(engine)
            retry_when_full(engine, retry_seconds(retry))
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ServiceUnavailable(f"invalid database URL {mask_url(url)}: {exc}") from None
    return engine


# No call may hang on a link that went down silently (a partition drops packets, it sends no
# reset): libpq gives up connecting after 4 s, on data unacknowledged for 4 s
# (tcp_user_timeout) and on an idle socket whose keepalives go unanswered for 4 + 3 x 1 s.
# The server ends a transaction whose client went quiet for 10 s, so a partitioned worker
# cannot keep row locks that every other worker waits on, and no lock wait exceeds 8 s.
PG_CONNECT_ARGS: dict[str, object] = {
    "connect_timeout": 4,
    "keepalives": 1,
    "keepalives_idle": 4,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 4000,
    "options": "-c lock_timeout=8000 -c idle_in_transaction_session_timeout=10000",
}


def _connect_args(url: str) -> dict[str, object]:
    if url.startswith("postgresql"):
        return dict(PG_CONNECT_ARGS)
    return {"connect_timeout": 5}


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def check_database(url: str, need_schema: bool = True) -> None:
    """Fail fast with a clear message when the database is down or not migrated."""
    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            at = (conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                  if "alembic_version" in tables else None)  # fmt: skip
    except (OperationalError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        raise ServiceUnavailable(
            f"database {mask_url(url)} is unreachable ({reason}); {HINT}"
        ) from None
    if need_schema and not {"campaign", "job", "result", "worker"} <= tables:
        raise ServiceUnavailable(
            f"database {mask_url(url)} has no Farm schema; run `farm db upgrade` first"
        )
    if need_schema and at != schema_head():
        fix = ("run `farm db upgrade`" if at in schema_revisions()
               else "a newer Farm migrated it: upgrade Farm")  # fmt: skip
        raise ServiceUnavailable(
            f"database {mask_url(url)} is at schema revision {at}, this Farm needs "
            f"{schema_head()}: {fix}"
        )


_REVISION = re.compile(r"""^revision(?:: str)? = ['"]([^'"]+)['"]""", re.M)


@lru_cache(maxsize=1)
def schema_revisions() -> tuple[str, ...]:
    """The revisions this Farm ships, oldest first: files `NNNN_*.py`, one linear chain in
    the order of their names (tests/integration/test_migrations.py holds Alembic to it);
    each file's `revision = "..."` line is read as text, so a command's check needs no
    Alembic import."""
    versions = files("farm.migrations") / "versions"
    paths = sorted((p for p in versions.iterdir() if p.name[:4].isdigit()
                    and p.name.endswith(".py")), key=lambda p: p.name)  # fmt: skip
    return tuple(m.group(1) for p in paths if (m := _REVISION.search(p.read_text())))


def schema_head() -> str:
    return schema_revisions()[-1]
