"""`farm run`: the embedded mode, SQLite and in-process execution, no broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.harness import REPO, count_rows, farm, farm_env, job_states

pytestmark = pytest.mark.acceptance


def test_farm_run_quick_example_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    run = farm(
        "run",
        str(REPO / "examples" / "quick.yaml"),
        "--warmup",
        "1",
        "--iterations",
        "3",
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    campaign = int(run.stdout.strip().splitlines()[-1])  # the id is the last line of stdout
    states = job_states(url, campaign)
    assert len(states) == 8
    assert {state for _, state, _ in states.values()} == {"succeeded"}
    assert {pool for pool, _, _ in states.values()} == {"icelake", "zen4"}
    assert count_rows(url, "result") == 8
    assert "distilbert-base-uncased" in run.stdout and "short (18)" in run.stdout
    assert "long (151)" in run.stdout
    report = farm("report", str(campaign), "--format", "csv", env=env)
    assert report.returncode == 0
    assert len(report.stdout.strip().splitlines()) == 9  # header + 8 jobs


def test_every_result_carries_an_output_check(tmp_path: Path) -> None:
    from tests.support.harness import write_matrix

    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    matrix = write_matrix(
        tmp_path / "m.yaml",
        batch_sizes=[1],
        backends=["pytorch", {"name": "pytorch", "options": {"dtype": "bf16"}}],
    )
    run = farm("run", str(matrix), env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    report = farm("report", run.stdout.strip().splitlines()[-1], "--format", "json", env=env)
    checks = {r["backend_options"]["dtype"]: r["output_check"] for r in json.loads(report.stdout)}
    assert checks["fp32"]["status"] == "checked" and checks["fp32"]["max_abs_logit_diff"] == 0.0
    assert checks["fp32"]["label_agreement"] == 1.0
    assert 0.0 < checks["bf16"]["max_abs_logit_diff"] < checks["bf16"]["tolerance"]


def test_an_input_longer_than_the_model_reads_fails_with_a_clear_reason(tmp_path: Path) -> None:
    from tests.support.harness import write_matrix

    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    matrix = write_matrix(tmp_path / "m.yaml", batch_sizes=[1], inputs={"huge": "shoe " * 600})
    run = farm("run", str(matrix), env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    report = farm("report", run.stdout.strip().splitlines()[-1], "--format", "json", env=env)
    (row,) = json.loads(report.stdout)
    assert row["state"] == "failed"
    assert "input 'huge' is 602 tokens" in row["error"] and "reads at most 512" in row["error"]
