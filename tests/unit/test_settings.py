"""farm.settings: environment + overrides, URL masking, CPU lists."""

from __future__ import annotations

import pytest

from farm.settings import (
    DEFAULT_BROKER_URL,
    DEFAULT_DATABASE_URL,
    Settings,
    mask_url,
    parse_cpu_list,
)

PG = "postgresql+psycopg://farm:pgsecret@db.example:5432/farm"
REDIS = "redis://:redissecret@broker.example:6379/0"


def test_defaults_from_an_empty_env() -> None:
    s = Settings.from_env({})
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.broker_url == DEFAULT_BROKER_URL
    assert s == Settings()
    assert s.visibility_timeout_s == 6 * 3600
    assert s.worker_ttl_s == 120


def test_env_is_read() -> None:
    s = Settings.from_env({"FARM_DATABASE_URL": PG, "FARM_BROKER_URL": REDIS})
    assert s.database_url == PG
    assert s.broker_url == REDIS


def test_explicit_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_DATABASE_URL", PG)
    monkeypatch.setenv("FARM_BROKER_URL", REDIS)
    s = Settings.from_env({})
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.broker_url == DEFAULT_BROKER_URL


def test_no_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_DATABASE_URL", PG)
    monkeypatch.delenv("FARM_BROKER_URL", raising=False)
    s = Settings.from_env()
    assert s.database_url == PG
    assert s.broker_url == DEFAULT_BROKER_URL


def test_empty_env_values_fall_back_to_defaults() -> None:
    s = Settings.from_env({"FARM_DATABASE_URL": "", "FARM_BROKER_URL": ""})
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.broker_url == DEFAULT_BROKER_URL


def test_timeouts_from_env() -> None:
    s = Settings.from_env({"FARM_VISIBILITY_TIMEOUT": "60", "FARM_WORKER_TTL": "30"})
    assert s.visibility_timeout_s == 60
    assert s.worker_ttl_s == 30


def test_overrides_beat_env() -> None:
    env = {"FARM_DATABASE_URL": PG, "FARM_BROKER_URL": REDIS}
    s = Settings.from_env(env, database_url="sqlite:///other.db", broker_url="redis://h:1/2")
    assert s.database_url == "sqlite:///other.db"
    assert s.broker_url == "redis://h:1/2"


def test_none_overrides_are_ignored() -> None:
    env = {"FARM_DATABASE_URL": PG, "FARM_BROKER_URL": REDIS}
    s = Settings.from_env(env, database_url=None, broker_url=None)
    assert s.database_url == PG
    assert s.broker_url == REDIS


def test_one_override_leaves_the_other_from_env() -> None:
    env = {"FARM_DATABASE_URL": PG, "FARM_BROKER_URL": REDIS}
    s = Settings.from_env(env, broker_url="redis://other:6379/1")
    assert s.database_url == PG
    assert s.broker_url == "redis://other:6379/1"


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.database_url = PG  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        (REDIS, "redissecret", "redis://:***@broker.example:6379/0"),
        ("redis://:secret@host:6379/0", "secret", "redis://:***@host:6379/0"),
        (PG, "pgsecret", "postgresql+psycopg://farm:***@db.example:5432/farm"),
        ("postgresql://u:p4ss@localhost/farm", "p4ss", "postgresql://u:***@localhost/farm"),
        ("redis://user:pw%40x@h:6380/3", "pw", "redis://user:***@h:6380/3"),
    ],
    ids=["redis", "redis-brief", "postgres", "postgres-no-port", "percent-encoded"],
)
def test_mask_url_hides_passwords(url: str, secret: str, expected: str) -> None:
    masked = mask_url(url)
    assert secret not in masked
    assert "***" in masked
    assert masked == expected


def test_mask_url_keeps_query_and_path() -> None:
    masked = mask_url("postgresql://u:secret@h:5432/db?sslmode=require")
    assert masked == "postgresql://u:***@h:5432/db?sslmode=require"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://user@host:6379/0",
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "sqlite:///farm.db",
        "sqlite:////tmp/x.db",
    ],
)
def test_mask_url_leaves_passwordless_urls_unchanged(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_never_raises_on_a_bad_port() -> None:
    masked = mask_url("postgresql://u:secret@host:notaport/db")
    assert "secret" not in masked


def test_mask_url_keeps_ipv6_brackets() -> None:
    assert mask_url("redis://:secret@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,6", {0, 1, 2, 3, 6}),
        ("0", {0}),
        ("5-5", {5}),
        ("0-1,1-2", {0, 1, 2}),
        (" 0-1 , 4 ", {0, 1, 4}),
        ("2,0", {0, 2}),
        ("0-3,", {0, 1, 2, 3}),
    ],
)
def test_parse_cpu_list(text: str, expected: set[int]) -> None:
    assert parse_cpu_list(text) == expected


@pytest.mark.parametrize("text", ["a", "3-1", "-1", "1-a", "1--2", "0-3,x", "1.5", "0-1-2"])
def test_parse_cpu_list_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list(text)


def test_parse_cpu_list_rejects_an_open_range() -> None:
    with pytest.raises(ValueError):
        parse_cpu_list("1-")
