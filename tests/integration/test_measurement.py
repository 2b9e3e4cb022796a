"""Measurement through a real `farm worker` (PostgreSQL + Redis): what every result carries,
runner reuse, and a supervising process that stays out of the way while the child measures."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from farm.stats import decode_samples, describe
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix

pytestmark = pytest.mark.integration

CLK_TCK = os.sysconf("SC_CLK_TCK")
def submit(matrix: Path, env: dict[str, str]) -> int:
    sub = farm("submit", str(matrix), env=env)
    assert sub.returncode == 0, sub.stderr
    return int(sub.stdout.strip().splitlines()[-1])


def all_succeeded(url: str, campaign: int) -> bool:
    states = [s for _, s, _ in job_states(url, campaign).values()]
    assert "failed" not in states
    return all(s == "succeeded" for s in states)


def results(url: str, campaign: int) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT j.id, j.batch_size, r.* FROM result r JOIN job j ON j.id = r.job_id "
                    "WHERE j.campaign_id = :c ORDER BY r.id"
                ),
                {"c": campaign},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_every_result_carries_stats_verdict_fingerprint_and_reuses_the_runner(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    # batch 1 then batch 2: the same model, backend and options, back to back
    matrix = write_matrix(tmp_path / "m.yaml", protocol={"warmup": 12, "iterations": 30})
    worker = WorkerProcess("a", "w-measure", env, tmp_path / "worker.log")
    try:
        campaign = submit(matrix, env)
        wait_for(lambda: all_succeeded(migrated_pg, campaign), 120)
    finally:
        worker.stop()
    rows = results(migrated_pg, campaign)
    assert [r["batch_size"] for r in rows] == [1, 2]
    for r in rows:
        stats = r["stats"]
        assert stats["n"] == r["n"] == 30
        assert set(stats["ci95_ms"]) >= {"mean", "p50", "p90", "p99"}
        assert stats["ci95_ms"]["mean"][0] <= r["mean_ms"] <= stats["ci95_ms"]["mean"][1]
        assert stats["ci95_ms"]["p99"] is None  # 30 calls cannot support p99
        # the stored statistics are those of the stored samples
        again = describe(decode_samples(r["samples"]), r["batch_size"])
        assert again["percentiles_ms"] == pytest.approx(stats["percentiles_ms"])
        assert again["ci95_ms"]["p50"] == pytest.approx(stats["ci95_ms"]["p50"])
        assert again["cv"] == pytest.approx(stats["cv"])
        assert r["verdict"] == "invalid"  # 30 calls: p90 and p99 unsupported
        assert any(reason.startswith("p99 not supported: 30 samples") for reason in r["reasons"])
        assert r["throughput"] == pytest.approx(stats["throughput_per_s"])
        # warm-up kept apart from the timed calls
        warm = decode_samples(r["warmup_samples"])
        assert warm.size == 12
        assert r["first_call_ms"] == pytest.approx(warm[0] / 1e6)
        assert r["peak_rss_mb"] > 50  # torch and a model are loaded
        env_ = r["environment"]
        host = env_["host"]
        for key in ("cpu_model", "flags", "hardware_class", "numa_nodes", "governor"):
            assert key in host, key
        assert host["allocator"] == "default"
        assert host["libraries"]["torch"]
        assert isinstance(host["flags"], dict) and "amx_tile" in host["flags"]
        governor = host["governor"]
        assert governor and (
            governor.startswith("unreadable: ")
            or governor in {"performance", "powersave", "schedutil", "ondemand", "conservative"}
        )
        assert env_["stop_reason"] == "iterations"
        assert env_["threads"] == 1 and env_["affinity"] == [0]
        assert env_["clock"] == "time.perf_counter_ns"
    first, second = rows
    assert first["setup_s"] > 0 and first["environment"]["runner_reused"] is False
    assert second["setup_s"] == 0 and second["environment"]["runner_reused"] is True


def last_seen(url: str, worker: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT last_seen FROM worker WHERE name = :n"), {"n": worker}
            ).scalar_one()
    finally:
        engine.dispose()


def test_supervising_process_sleeps_while_the_child_measures(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    """The parent's periodic work (heartbeat, spool flush) runs every 0.2 s here, but not
    while the child times calls: it sleeps on the child's phase lock until the phase ends.
    So `last_seen` moves on every ~0.2 s through the 2 s warm-up, then stands still through
    the 3 s timed phase (the old parent went on beating there)."""
    env = {**farm_env(migrated_pg, redis_url), "FARM_WORKER_HEARTBEAT": "0.2"}
    matrix = write_matrix(
        tmp_path / "m.yaml",
        batch_sizes=[1],
        protocol={"warmup": 10, "warmup_s": 2, "iterations": 1, "min_duration_s": 3},
    )
    worker = WorkerProcess("a", "w-quiet", env, tmp_path / "worker.log")
    try:
        parent = worker.proc.pid
        time.sleep(1)  # let start-up work (heartbeat, pool child spawn) settle
        (child,) = children(parent)
        seen: set[Any] = set()

        def done() -> bool:  # sample last_seen while the job runs: each beat moves it on
            seen.add(last_seen(migrated_pg, "w-quiet"))
            return all_succeeded(migrated_pg, campaign)

        parent_before, child_before = cpu_seconds(parent), cpu_seconds(child)
        start = time.monotonic()
        campaign = submit(matrix, env)
        wait_for(done, 120, interval=0.05)
        wall = time.monotonic() - start
        parent_cpu = cpu_seconds(parent) - parent_before
        child_cpu = cpu_seconds(child) - child_before
    finally:
        worker.stop()
    (row,) = results(migrated_pg, campaign)
    beats = sorted(seen)
    gaps = [(b - a).total_seconds() for a, b in zip(beats, beats[1:], strict=False)]
    print(f"parent CPU {parent_cpu:.3f} s, child CPU {child_cpu:.2f} s, wall {wall:.2f} s, "
          f"{len(beats)} distinct last_seen values, longest gap {max(gaps):.2f} s")  # fmt: skip
    # not vacuous: the parent beat all along outside the timed phase
    assert len(beats) >= 5, f"{len(beats)} heartbeats seen in {wall:.1f} s"
    # ... and not once inside it: one gap spans the 3 s phase (the beat is due every 0.2 s)
    timed_s = row["stats"]["duration_s"]
    assert timed_s >= 2.5
    assert max(gaps) >= 0.9 * timed_s, f"gaps between beats {gaps}; timed phase {timed_s:.2f} s"
    assert row["environment"]["stop_reason"] == "minimum duration met"
    assert child_cpu >= 2.5, f"the child measured only {child_cpu:.2f} s of CPU"
    assert parent_cpu <= 0.05 * wall, (
        f"supervising process used {parent_cpu:.2f} s CPU over {wall:.1f} s "
        f"({parent_cpu / wall:.1%}); the child used {child_cpu:.2f} s"
    )
