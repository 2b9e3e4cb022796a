"""Scaling a pool (issue 13 §5): workers started alike (`docker compose up --scale`) each
claim their own CPUs (`farm worker --claim 1`), and one too many says so and exits 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.harness import WorkerProcess, farm, farm_env, sql_rows

pytestmark = pytest.mark.acceptance


def test_replicas_claim_disjoint_cpus(migrated_pg: str, redis_url: str, tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two CPUs")
    cpus = f"{allowed[0]},{allowed[1]}"
    env = {**farm_env(migrated_pg, redis_url), "FARM_CPU_LOCK_DIR": str(tmp_path / "locks")}
    workers = [WorkerProcess("a", f"r{i}", env, tmp_path / f"r{i}.log", cpus=cpus,
                             extra=["--claim", "1"]) for i in (1, 2)]  # fmt: skip
    try:
        extra = farm("worker", "--pool", "a", "--name", "r3", "--cpus", cpus, "--claim", "1",
                     env=env, timeout=120)  # fmt: skip
        rows = dict(sql_rows(migrated_pg, "SELECT name, cpus FROM worker"))
    finally:
        for worker in workers:
            worker.stop()
    assert sorted(rows.values()) == [str(allowed[0]), str(allowed[1])], rows
    assert "r3" not in rows, "the surplus worker registered nothing"
    assert extra.returncode == 1
    shown = cpus if allowed[1] - allowed[0] > 1 else cpus.replace(",", "-")
    assert extra.stderr.strip().splitlines()[-1] == (
        f"Error: --claim 1: only 0 of CPUs {shown} are free (workers sharing "
        f"{tmp_path / 'locks'} hold the others); start fewer workers or give --cpus more CPUs"
    )
