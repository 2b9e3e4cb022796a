"""The database's clock: every host judges leases, heartbeats and "last seen" by one clock.

A worker whose own clock is minutes off must neither look dead nor keep a dead lease, so
no time a lease or liveness decision compares is taken from the host that writes it.
SQLite is the embedded single-host mode: its host's clock is the only one there is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db.models import as_utc, utcnow


def db_now(session: Session) -> datetime:
    """The database server's current time (UTC), read in the caller's transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return utcnow()
    if dialect in ("mysql", "mariadb"):
        naive = session.execute(select(func.utc_timestamp(6))).scalar_one()
        return naive.replace(tzinfo=UTC)
    # clock_timestamp(), not now(): now() is the transaction's start, and a claim may wait
    # on a row lock first.
    value = session.execute(select(func.clock_timestamp())).scalar_one()
    return as_utc(value).astimezone(UTC)
