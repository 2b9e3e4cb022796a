"""Bad input and dead services: one clear message, non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import count_rows, farm, farm_env, write_matrix

pytestmark = pytest.mark.acceptance


def test_redis_down_writes_nothing(migrated_pg: str, tmp_path: Path) -> None:
    env = farm_env(migrated_pg, "redis://:s3cret@127.0.0.1:1/0")
    result = farm("submit", str(write_matrix(tmp_path / "m.yaml")), env=env)
    assert result.returncode != 0
    assert "broker redis://:***@127.0.0.1:1/0 is unreachable" in result.stderr
    assert "start Redis" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert count_rows(migrated_pg, "campaign") == 0
    assert count_rows(migrated_pg, "job") == 0


def test_invalid_matrix_names_the_field(migrated_pg: str, redis_url: str, tmp_path: Path) -> None:
    env = farm_env(migrated_pg, redis_url)
    bad = write_matrix(
        tmp_path / "m.yaml", backends=[{"name": "pytorch", "options": {"dtype": "int4"}}]
    )
    result = farm("submit", str(bad), env=env)
    assert result.returncode != 0
    assert "backends.0" in result.stderr and "dtype" in result.stderr
    bad_pool = write_matrix(tmp_path / "p.yaml", pools=["ice lake"])
    result = farm("submit", str(bad_pool), env=env)
    assert result.returncode != 0 and "pools.0" in result.stderr
    assert count_rows(migrated_pg, "campaign") == 0


def test_database_down_is_one_clear_line(tmp_path: Path) -> None:
    env = farm_env("postgresql+psycopg://farm:hunter2@127.0.0.1:1/farm")
    result = farm("submit", str(write_matrix(tmp_path / "m.yaml")), env=env)
    assert result.returncode != 0
    assert "database postgresql+psycopg://farm:***@127.0.0.1:1/farm is unreachable" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_unmigrated_database_and_unknown_campaign(pg_url: str, sqlite_url: str) -> None:
    result = farm("status", env=farm_env(pg_url))
    assert result.returncode != 0 and "farm db upgrade" in result.stderr
    up = farm("db", "upgrade", env=farm_env(sqlite_url))
    assert up.returncode == 0, up.stderr
    result = farm("report", "nope", env=farm_env(sqlite_url))
    assert result.returncode != 0 and "unknown campaign 'nope'" in result.stderr
