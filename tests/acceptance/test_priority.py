"""Priorities with a real worker (issue 13 §4): a high campaign submitted while a normal one
is running jumps the normal one's queued jobs; `farm campaigns` and `farm status` say which
priority each has; `farm recover` re-sends at the campaign's priority."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import WorkerProcess, farm, farm_env, sql_rows, wait_for, write_matrix

pytestmark = pytest.mark.acceptance


def selftest(path: Path, name: str, jobs: int, work_ms: float, iterations: int) -> Path:
    return write_matrix(
        path,
        name=name,
        models=["selftest"],
        inputs={f"in{i}": f"priority input {i}" for i in range(jobs)},
        batch_sizes=[1],
        backends=[{"name": "selftest", "options": {"work_ms": work_ms}}],
        pools=["a"],
        protocol={"warmup": 0, "iterations": iterations},
    )


def submit(env: dict[str, str], matrix: Path, *extra: str) -> int:
    out = farm("submit", str(matrix), *extra, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def jobs(db: str, campaign: int) -> list[Any]:
    return sql_rows(db, "SELECT id, state, started_at FROM job WHERE campaign_id = :c "
                        "ORDER BY id", c=campaign)  # fmt: skip


def test_high_priority_jobs_run_before_queued_normal_ones(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    worker = WorkerProcess("a", "w-a", env, tmp_path / "worker.log")
    try:
        normal = submit(env, selftest(tmp_path / "n.yaml", "normal", 6, 75, 20))  # ~1.5 s each
        wait_for(lambda: any(s == "running" for _, s, _ in jobs(migrated_pg, normal)), 60, 0.05)
        high = submit(env, selftest(tmp_path / "h.yaml", "high", 3, 5, 2), "--priority", "high")
        waiting = [j for j, s, _ in jobs(migrated_pg, normal) if s == "queued"]
        wait_for(lambda: all(s == "succeeded" for _, s, _ in
                             jobs(migrated_pg, normal) + jobs(migrated_pg, high)), 120)  # fmt: skip
    finally:
        worker.stop()
    assert len(waiting) >= 2, "the normal campaign ran too fast to be overtaken"
    started = {j: at for j, _, at in jobs(migrated_pg, normal) + jobs(migrated_pg, high)}
    last_high = max(at for _, _, at in jobs(migrated_pg, high))
    first_waiting = min(started[j] for j in waiting)
    assert last_high < first_waiting, (
        f"high jobs started up to {last_high}, but queued normal ones from {first_waiting}:\n"
        + (tmp_path / "worker.log").read_text()[-3000:]
    )

    listed = farm("campaigns", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines()
            if line.count("│") > 3 and line.split("│")[1].strip().isdigit()}  # fmt: skip
    assert "high" in rows[str(high)] and "normal" in rows[str(normal)]
    shown = farm("status", str(high), env=env)
    assert shown.returncode == 0 and "high priority" in shown.stdout, shown.stdout


def test_recover_resends_at_the_campaigns_priority(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    """A broker that lost its messages: recover sends each queued job into its priority's list."""
    import redis

    env = farm_env(migrated_pg, redis_url)
    low = submit(env, selftest(tmp_path / "l.yaml", "low", 2, 1, 1), "--priority", "low")
    high = submit(env, selftest(tmp_path / "h.yaml", "high", 1, 1, 1), "--priority", "high")
    client = redis.Redis.from_url(redis_url)
    lengths = {k.decode(): client.llen(k) for k in client.keys("farm.a*")
               if client.type(k) == b"list"}  # fmt: skip
    assert lengths == {"farm.a": 1, "farm.a\x06\x166": 2}
    client.flushdb()
    out = farm("recover", env=env)
    assert out.returncode == 0, out.stderr
    lengths = {k.decode(): client.llen(k) for k in client.keys("farm.a*")
               if client.type(k) == b"list"}  # fmt: skip
    assert lengths == {"farm.a": 1, "farm.a\x06\x166": 2}
    again = farm("recover", env=env)  # every queued job has its message pending: none sent
    assert again.returncode == 0 and sum(client.llen(k) for k in lengths) == 3
    assert {low, high} == {r[0] for r in sql_rows(migrated_pg, "SELECT id FROM campaign")}
