"""FARM_DB_POOL and the retry of connections a full server refuses (farm/db/pooling.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool, QueuePool

from farm.db import pooling
from farm.db.session import get_engine
from farm.errors import ServiceUnavailable

FULL = 'connection failed: ... FATAL:  sorry, too many clients already'


@pytest.mark.parametrize(
    ("value", "pool", "size"),
    [("", QueuePool, 5), ("queue", QueuePool, 5), (" NULL ", NullPool, None), ("1", QueuePool, 1)],
)
def test_pool_modes(value: str, pool: type, size: int | None) -> None:
    engine = create_engine("postgresql+psycopg://u@h/db", **pooling.pool_options(value))
    assert type(engine.pool) is pool
    if size is not None:
        assert engine.pool.size() == size  # type: ignore[attr-defined]
    if value.strip() == "1":
        assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["nul", "0", "-1", "1001", "queue,null"])
def test_a_bad_pool_is_one_clear_line(value: str) -> None:
    with pytest.raises(ServiceUnavailable, match="FARM_DB_POOL=.*use queue .*null .*number"):
        pooling.pool_options(value)


def test_get_engine_reads_the_pool_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://u@h/pooling_test"
    monkeypatch.setenv("FARM_DB_POOL", "null")
    assert type(get_engine(url).pool) is NullPool
    monkeypatch.setenv("FARM_DB_POOL", "queue")
    assert type(get_engine(url).pool) is QueuePool
    monkeypatch.setenv("FARM_DB_POOL", "bogus")
    with pytest.raises(ServiceUnavailable, match="FARM_DB_POOL='bogus'"):
        get_engine(url)


@pytest.mark.parametrize(("value", "seconds"), [("", 30.0), ("0", 0.0), ("2.5", 2.5)])
def test_retry_seconds(value: str, seconds: float) -> None:
    assert pooling.retry_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "4000"])
def test_a_bad_retry_is_one_clear_line(value: str) -> None:
    with pytest.raises(ServiceUnavailable, match="FARM_DB_CONNECT_RETRY=.*seconds from 0"):
        pooling.retry_seconds(value)


@pytest.mark.parametrize(
    "message",
    [FULL, 'FATAL:  too many connections for database "farm"',
     'FATAL:  too many connections for role "farm"',
     "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"],
)  # fmt: skip
def test_no_slot_messages(message: str) -> None:
    assert pooling.no_slot(Exception(message))


def test_other_refusals_are_not_retried() -> None:
    assert not pooling.no_slot(Exception('FATAL:  password authentication failed for user "u"'))
    assert not pooling.no_slot(Exception("Connection refused"))


class FakeError(Exception):
    pass


class FakeDialect:
    """Refuses the first `full` connects for lack of slots, then connects."""

    class loaded_dbapi:  # noqa: N801 (the DBAPI module's attribute name)
        OperationalError = FakeError

    def __init__(self, full: int, error: str = FULL) -> None:
        self.full, self.error, self.calls = full, error, 0

    def connect(self, *_: Any, **__: Any) -> str:
        self.calls += 1
        if self.calls <= self.full:
            raise FakeError(self.error)
        return "connection"


def _connect_fn(seconds: float) -> Any:
    """The do_connect listener retry_when_full installs on an engine."""
    engine = create_engine("postgresql+psycopg://u@h/db", poolclass=NullPool)
    pooling.retry_when_full(engine, seconds)
    listeners = list(engine.dialect.dispatch.do_connect)
    assert len(listeners) == 1
    return listeners[0]


def test_a_full_server_is_retried_until_a_slot_frees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pooling, "_sleep", lambda _s: None)
    dialect = FakeDialect(full=5)
    assert _connect_fn(30)(dialect, None, (), {}) == "connection"
    assert dialect.calls == 6


def test_the_retry_gives_up_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(pooling, "_clock", lambda: clock[0])
    monkeypatch.setattr(pooling, "_sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(50):  # whatever the jitter draws, the deadline holds
        clock[0] = 0.0
        dialect = FakeDialect(full=10_000)
        with pytest.raises(FakeError, match="too many clients"):
            _connect_fn(3)(dialect, None, (), {})
        assert 3 < dialect.calls < 100 and clock[0] <= 3


def test_other_errors_are_not_retried() -> None:
    dialect = FakeDialect(full=1, error="FATAL:  database \"x\" does not exist")
    with pytest.raises(FakeError, match="does not exist"):
        _connect_fn(30)(dialect, None, (), {})
    assert dialect.calls == 1


def test_no_retry_when_turned_off() -> None:
    engine = create_engine("postgresql+psycopg://u@h/db", poolclass=NullPool)
    pooling.retry_when_full(engine, 0)
    assert not list(engine.dialect.dispatch.do_connect)
