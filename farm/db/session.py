"""Engine and session factory; connection failures become one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from farm.errors import ServiceUnavailable
from farm.settings import mask_url

HINT = (
    "start PostgreSQL (or fix FARM_DATABASE_URL / --database-url); "
    "the embedded default is a SQLite file: sqlite:///farm.db"
)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ServiceUnavailable(f"invalid database URL {mask_url(url)}: {exc}") from None
    return engine


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
    except (OperationalError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        raise ServiceUnavailable(
            f"database {mask_url(url)} is unreachable ({reason}); {HINT}"
        ) from None
    if need_schema and not {"campaign", "job", "result", "worker"} <= tables:
        raise ServiceUnavailable(
            f"database {mask_url(url)} has no Farm schema; run `farm db upgrade` first"
        )
