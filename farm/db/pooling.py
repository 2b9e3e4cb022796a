"""How a process holds its database connections (FARM_DB_POOL), and riding out a full server.

PostgreSQL serves at most `max_connections` (100 by default) clients at once, and every
worker is two processes (the supervisor and its pool child), each with a pool of its own:

- `queue` (the default): each process keeps its connections open (SQLAlchemy's QueuePool;
  one idle for a second or more is pinged before use). The fastest per job; a fleet of N
  workers holds up to 2 N idle connections, so this fits while that stays well under the
  server's limit.
- `null`: a connection per transaction, closed at its end (NullPool). A fleet then holds
  only the connections of the transactions in flight, whatever its size; each transaction
  pays a connect (a few ms on a LAN). For large fleets on one server, or behind PgBouncer.
- a number N: at most N open connections per process (QueuePool, no overflow).

Whatever the pool, a connection the server refuses for lack of slots ("too many clients",
or a database's or role's CONNECTION LIMIT) is retried with jittered backoff for
FARM_DB_CONNECT_RETRY seconds (30) before the error goes up: a full server makes a
worker wait, not fail its job.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

from farm.errors import ServiceUnavailable

log = logging.getLogger("farm.db")

POOL_ENV = "FARM_DB_POOL"
RETRY_ENV = "FARM_DB_CONNECT_RETRY"
DEFAULT_RETRY_S = 30.0
IDLE_PING_S = 1.0
# What PostgreSQL says when it refuses a connection for lack of slots (SQLSTATE 53300, which
# libpq does not expose on a failed connection: only the message tells).
NO_SLOT = (
    "too many clients",
    "too many connections",
    "remaining connection slots are reserved",
)


def pool_options(value: str) -> dict[str, Any]:
    """create_engine's pool arguments for a FARM_DB_POOL value ('' is the default)."""
    mode = value.strip().lower() or "queue"
    if mode == "queue":
        return {}
    if mode == "null":
        return {"poolclass": NullPool}
    if mode.isdigit() and 1 <= int(mode) <= 1000:
        return {"pool_size": int(mode), "max_overflow": 0}
    raise ServiceUnavailable(
        f"{POOL_ENV}={value!r} is not a pool: use queue (the default), null (a connection "
        "per transaction) or a number from 1 to 1000 (connections per process)"
    )


def retry_seconds(value: str) -> float:
    """FARM_DB_CONNECT_RETRY ('' is the default, 0 turns the retry off)."""
    try:
        seconds = float(value) if value.strip() else DEFAULT_RETRY_S
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ServiceUnavailable(
            f"{RETRY_ENV}={value!r} is not a number of seconds from 0 to 3600 (how long a "
            "connection refused for lack of slots is retried)"
        )
    return seconds


def no_slot(exc: BaseException) -> bool:
    """Was this connection refused because the server, database or role is full?"""
    text = str(exc).lower()
    return any(phrase in text for phrase in NO_SLOT)


def ping_when_idle(engine: Engine, idle_s: float = IDLE_PING_S) -> None:
    """Ping a pooled connection before use only when it sat idle for `idle_s` or more.

    SQLAlchemy's pool_pre_ping pings on every checkout: a round trip per transaction, three
    a job, on connections a worker used milliseconds before. One that sat idle (a database
    restart may have cut it) is still pinged, and replaced when the ping fails."""

    @event.listens_for(engine, "checkin")
    def checkin(_conn: Any, record: Any) -> None:
        record.info["farm_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checkout(conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("farm_used", -idle_s) < idle_s:
            return
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc


# The retry's clock, by name: a test replaces these, never the time module every thread uses.
_clock = time.monotonic
_sleep = time.sleep


def retry_when_full(engine: Engine, seconds: float) -> None:
    """Retry the engine's connects that the server refuses for lack of slots."""
    if seconds <= 0:
        return

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = _clock() + seconds
        delay, waited = 0.05, False
        while True:
            try:
                conn = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                pause = delay * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not crypto)
                if not no_slot(exc) or _clock() + pause > deadline:
                    raise
                if not waited:
                    reason = str(exc).rpartition("FATAL:")[2].strip().splitlines()[0][:120]
                    log.info("database full, retrying for up to %g s: %s", seconds, reason)
                    waited = True
                _sleep(pause)  # the jittered pause: the deadline holds whatever the draw
                delay = min(delay * 2, 1.0)
                continue
            return conn
