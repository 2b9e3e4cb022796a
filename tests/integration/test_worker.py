"""A real `farm worker` subprocess takes a job from Redis and writes its result to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from farm.stats import Summary, decode_samples
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix

pytestmark = pytest.mark.integration


def test_worker_measures_job_from_redis_into_postgres(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(tmp_path / "m.yaml", batch_sizes=[1], pools=["icelake"])
    worker = WorkerProcess("icelake", "w-icelake", env, tmp_path / "worker.log")
    try:
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        wait_for(
            lambda: all(s == "succeeded" for _, s, _ in job_states(migrated_pg, campaign).values()),
            120,
        )
    finally:
        worker.stop()
    engine = create_engine(migrated_pg)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT r.n, r.tokens, r.worker, r.samples, r.mean_ms, r.p99_ms, j.attempts, "
                "w.pool, w.threads FROM result r JOIN job j ON j.id = r.job_id "
                "JOIN worker w ON w.name = r.worker WHERE j.campaign_id = :c"
            ),
            {"c": campaign},
        ).one()
    engine.dispose()
    n, tokens, worker_name, samples, mean_ms, p99_ms, attempts, pool, threads = row
    assert (n, tokens, worker_name, attempts, pool, threads) == (
        5,
        18,
        "w-icelake",
        1,
        "icelake",
        1,
    )
    recomputed = Summary.from_ns(decode_samples(samples))
    assert recomputed.n == 5
    assert recomputed.mean_ms == pytest.approx(mean_ms)
    assert recomputed.p99_ms == pytest.approx(p99_ms)
