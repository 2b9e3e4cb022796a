"""Efficiency end to end: a real worker measures its peak before its first job that loads
torch (never for selftest jobs), `farm calibrate --peak` measures it again on request, and
`farm hosts` shows it; embedded `farm run` measures it once and every result gets GFLOP/s
and % of peak, which `farm report --metric efficiency` and `--format json` show. Small
GEMMs only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import WorkerProcess, farm, farm_env, sql_rows, wait_for, write_matrix

pytestmark = pytest.mark.acceptance


def _peaks(url: str) -> dict[str, Any]:
    rows = sql_rows(url, "SELECT name, peak FROM worker")
    return {name: json.loads(p) if isinstance(p, str) else p for name, p in rows}


def worker_pids(worker: WorkerProcess) -> list[int]:
    """The worker's process and its pool child."""
    children = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children").read_text()
    return [worker.proc.pid, *map(int, children.split())]


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def test_calibrate_peak_stores_a_real_workers_peak_and_hosts_shows_it(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    worker = WorkerProcess("p", "w-peak", env, tmp_path / "worker.log", cpus="0", threads=1)
    try:
        # A fresh worker has imported no torch and measured no peak (its jobs may need none)
        time.sleep(2)
        assert _peaks(migrated_pg)["w-peak"] is None
        assert not [pid for pid in worker_pids(worker) if "libtorch" in _maps(pid)]
        # None stored for this host, CPUs and threads: measured before its first torch job
        sub = farm("submit", str(write_matrix(tmp_path / "m.yaml", pools=["p"], batch_sizes=[1])),
                   env=env)  # fmt: skip
        assert sub.returncode == 0, sub.stderr
        wait_for(lambda: sql_rows(migrated_pg, "SELECT state FROM job")[0][0] == "succeeded", 120)
        first = _peaks(migrated_pg)["w-peak"]
        assert first["sizes"] == [64] and first["request"] is None and first["fp32_gflops"] > 0
        (pct,), = sql_rows(migrated_pg, "SELECT efficiency_pct FROM result")  # fmt: skip
        assert pct is not None and pct > 0
        done = farm("calibrate", "--peak", "--pool", "p", "--sizes", "32,64", "--repeats", "2",
                    "--timeout", "120", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
    finally:
        worker.stop()
    peak = _peaks(migrated_pg)["w-peak"]
    assert peak["fp32_gflops"] > 0 and peak["sizes"] == [32, 64] and peak["repeats"] == 2
    assert (peak["cpus"], peak["threads"]) == ("0", 1) and peak["request"]
    assert "GEMM peak of pool p" in done.stdout and "w-peak" in done.stdout
    hosts = farm("hosts", env=env)
    assert hosts.returncode == 0, hosts.stderr
    assert "peak fp32 / bf16" in hosts.stdout
    assert f"{peak['fp32_gflops']:.1f}" in hosts.stdout
    empty = farm("calibrate", "--peak", "--pool", "nobody", env=env)
    assert empty.returncode == 1 and "no live worker in pool 'nobody'" in empty.stderr


def test_farm_run_measures_the_peak_once_and_reports_efficiency(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    matrix = write_matrix(
        tmp_path / "m.yaml",
        batch_sizes=[1, 2],
        backends=["pytorch", {"name": "pytorch", "options": {"dtype": "bf16"}}],
    )
    run = farm("run", str(matrix), "--cpus", "0", "--threads", "1", env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    campaign = run.stdout.strip().splitlines()[-1]
    (name, peak), = _peaks(url).items()  # fmt: skip
    assert name.startswith("embedded@") and peak["fp32_gflops"] > 0 and peak["sizes"] == [64]

    rows = json.loads(farm("report", campaign, "--format", "json", env=env).stdout)
    assert len(rows) == 4
    for row in rows:
        dtype = row["backend_options"]["dtype"]
        assert row["flops"] > 0 and row["gflops"] > 0
        assert row["gflops"] == pytest.approx(row["flops"] / (row["mean_ms"] * 1e6))
        if peak[f"{dtype}_gflops"] is None:  # a CPU without native bf16: no roof, no %
            assert row["efficiency_pct"] is None and row["peak_gflops"] is None
            continue
        assert row["peak_gflops"] == peak[f"{dtype}_gflops"]
        assert row["efficiency_pct"] == pytest.approx(100 * row["gflops"] / row["peak_gflops"])
    by_batch = {(r["batch_size"], r["backend_options"]["dtype"]): r["flops"] for r in rows}
    assert by_batch[(2, "fp32")] == 2 * by_batch[(1, "fp32")]

    report = farm("report", campaign, "--metric", "efficiency", env=env)
    assert report.returncode == 0, report.stderr
    assert "efficiency (% of peak)" in report.stdout and "GFLOP/s (" in report.stdout
    assert " %)" in report.stdout or "no peak)" in report.stdout

    again = farm("run", str(matrix), "--cpus", "0", "--threads", "1", env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _peaks(url)[name]["measured_at"] == peak["measured_at"]  # once per host
