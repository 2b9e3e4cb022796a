"""Throughput mode through real processes: `farm worker --cpus 0,1` and `farm run --cpus 0,1`.

The checks are structural, never a speed: the stored aggregate is the arithmetic of the
stored raw data, each instance keeps its own distribution, every timed phase starts after
the parent released the barrier, and a layout larger than the worker waits with its reason.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from farm.stats import decode_samples
from tests.support.harness import (
    WorkerProcess,
    farm,
    farm_env,
    job_states,
    sql_rows,
    wait_for,
    write_matrix,
)

pytestmark = pytest.mark.acceptance

ITERATIONS = 30


def stored_result(url: str, job_id: int) -> dict[str, Any]:
    (row,) = sql_rows(
        url,
        "SELECT r.stats, r.samples, r.throughput, r.n, j.batch_size, j.instances, "
        "j.cores_per_instance FROM result r JOIN job j ON j.id = r.job_id WHERE r.job_id = :j",
        j=job_id,
    )
    stats = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return {"stats": stats, "samples": decode_samples(bytes(row[1])), "throughput": row[2],
            "n": row[3], "batch": row[4], "layout": (row[5], row[6])}  # fmt: skip


def check_two_instances(found: dict[str, Any]) -> None:
    """Two distributions; the aggregate recomputed from the raw data; aligned starts."""
    stats, samples, batch = found["stats"], found["samples"], found["batch"]
    assert found["layout"] == (2, 1)
    instances = stats["instances"]
    assert [i["instance"] for i in instances] == [0, 1]
    assert [i["cpus"] for i in instances] == [[0], [1]]  # each pinned to its own CPU
    assert [i["n"] for i in instances] == [ITERATIONS, ITERATIONS]
    assert found["n"] == samples.size == 2 * ITERATIONS  # headline: both pooled
    parts = np.split(samples, [ITERATIONS])
    window = stats["window"]
    starts, ends = [], []
    for inst, part in zip(instances, parts, strict=True):
        assert inst["mean_ms"] == pytest.approx(part.mean() / 1e6)  # its own distribution
        call_ends = decode_samples(base64.b64decode(inst["ends_ns"]))
        assert call_ends.size == part.size and np.all(np.diff(call_ends) > 0)
        assert inst["start_ns"] == call_ends[0] - part[0] and inst["end_ns"] == call_ends[-1]
        # the barrier: warm before the release, timed only after it
        assert inst["ready_ns"] <= window["release_ns"] < inst["start_ns"]
        starts.append(inst["start_ns"])
        ends.append(call_ends)
    start, end = max(starts), min(e[-1] for e in ends)
    assert (window["start_ns"], window["end_ns"]) == (start, end) and end > start
    calls = [int(np.count_nonzero((e > start) & (e <= end))) for e in ends]
    assert [i["calls_in_window"] for i in instances] == calls
    assert window["calls"] == sum(calls) > 0
    aggregate = batch * sum(calls) / ((end - start) / 1e9)
    assert found["throughput"] == pytest.approx(aggregate, rel=1e-12)
    assert stats["throughput_per_s"] == found["throughput"]


def test_worker_runs_two_instances_and_a_larger_layout_waits_with_its_reason(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(tmp_path / "m.yaml", batch_sizes=[1], instances=2,
                          cores_per_instance=[1, 2],
                          protocol={"warmup": 3, "iterations": ITERATIONS})  # fmt: skip
    worker = WorkerProcess("a", "w1", env, tmp_path / "w1.log", cpus="0,1")
    try:
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        first, second = sorted(job_states(migrated_pg, campaign))
        wait_for(lambda: job_states(migrated_pg, campaign)[first][1] != "queued" and
                 job_states(migrated_pg, campaign)[first][1] != "running", 300)  # fmt: skip
        states = job_states(migrated_pg, campaign)
        assert states[first][1] == "succeeded", (tmp_path / "w1.log").read_text()[-3000:]
        assert states[second][1] == "queued"  # 2 x 2 on two CPUs: waits, is not failed
        status = farm("status", str(campaign), env=env)
        assert status.returncode == 0, status.stderr
        flat = " ".join(status.stdout.split())
        assert "waiting: needs 4 CPUs (instances x cores_per_instance), worker w1 has 2" in flat
    finally:
        worker.stop()
    check_two_instances(stored_result(migrated_pg, first))
    report = farm("report", str(campaign), "--metric", "throughput", "--format", "markdown",
                  env=env)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "pytorch(dtype=fp32)@a{2x1} throughput (seq/s)" in report.stdout
    assert "pytorch(dtype=fp32)@a{2x2} throughput (seq/s)" in report.stdout
    rows = {r["job"]: r for r in json.loads(farm("report", str(campaign), "--format", "json",
                                                 env=env).stdout)}  # fmt: skip
    assert (rows[first]["instances"], rows[first]["cores_per_instance"]) == (2, 1)
    assert rows[first]["throughput"] == stored_result(migrated_pg, first)["throughput"]


def test_embedded_run_measures_two_instances_and_refuses_a_layout_it_cannot_fit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    matrix = write_matrix(tmp_path / "m.yaml", batch_sizes=[1], instances=2, cores_per_instance=1,
                          backends=[{"name": "selftest", "options": {"work_ms": 1}}],
                          protocol={"warmup": 3, "iterations": ITERATIONS})  # fmt: skip
    run = farm("run", str(matrix), "--cpus", "0,1", env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    campaign = int(run.stdout.strip().splitlines()[-1])
    [(job, (_, state, _))] = job_states(url, campaign).items()
    assert state == "succeeded"
    check_two_instances(stored_result(url, job))

    bigger = write_matrix(tmp_path / "big.yaml", batch_sizes=[1], instances=2,
                          cores_per_instance=2, name="big")  # fmt: skip
    refused = farm("run", str(bigger), "--cpus", "0,1", env=env, timeout=600)
    assert refused.returncode != 0
    assert "needs 4 CPUs (2 instances x 2), this run (--cpus) has 2" in " ".join(
        refused.stderr.split()
    )
    assert "big" not in farm("campaigns", env=env).stdout  # nothing was written
