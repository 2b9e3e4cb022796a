"""Two workers in two pools: each runs exactly its pool's jobs; a pool with no worker waits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix

pytestmark = pytest.mark.acceptance


def test_jobs_reach_only_their_pools_workers(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(tmp_path / "m.yaml", pools=["icelake", "zen4"])
    workers = [WorkerProcess("icelake", "w-ice", env, tmp_path / "ice.log", cpus="0")]
    try:
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])

        def pool_done(pool: str) -> bool:
            return all(
                s == "succeeded"
                for p, s, _ in job_states(migrated_pg, campaign).values()
                if p == pool
            )

        wait_for(lambda: pool_done("icelake"), 120)
        states = job_states(migrated_pg, campaign)
        assert sorted(s for p, s, _ in states.values() if p == "zen4") == ["queued", "queued"]
        status = farm("status", str(campaign), env=env)
        assert status.returncode == 0
        assert "no live worker serves that pool" in status.stdout and "'zen4'" in status.stdout

        workers.append(WorkerProcess("zen4", "w-zen", env, tmp_path / "zen.log", cpus="1"))
        wait_for(lambda: pool_done("zen4"), 120)
    finally:
        for w in workers:
            w.stop()
    states = job_states(migrated_pg, campaign)
    assert len(states) == 4
    for pool, state, worker in states.values():
        assert state == "succeeded"
        assert worker == {"icelake": "w-ice", "zen4": "w-zen"}[pool]
    report = farm("report", str(campaign), "--format", "json", env=env)
    rows = json.loads(report.stdout)
    assert {r["pool"]: r["worker"] for r in rows} == {"icelake": "w-ice", "zen4": "w-zen"}
    for key in (
        "campaign",
        "job",
        "state",
        "model",
        "input",
        "tokens",
        "batch_size",
        "backend",
        "pool",
        "host",
        "worker",
        "n",
        "mean_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
    ):
        assert all(key in r for r in rows), key
    hosts = farm("hosts", env=env)
    assert "w-ice" in hosts.stdout and "w-zen" in hosts.stdout
