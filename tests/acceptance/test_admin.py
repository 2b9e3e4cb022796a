"""`farm cancel`, `retry`, `rerun` and `delete` through the CLI, with a real worker."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from farm.db import repo
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from tests.support.harness import (
    FARM,
    WorkerProcess,
    count_rows,
    farm,
    farm_env,
    job_states,
    wait_for,
    write_matrix,
)

pytestmark = pytest.mark.acceptance

POOL = "admin-a"
OFFLINE_NOTHING = "no-such-org/no-such-model"


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _campaign_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def _states(url: str, campaign: int) -> list[str]:
    return [state for _, state, _ in sorted(job_states(url, campaign).values())]


def test_cancel_retry_rerun_delete_with_a_worker(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    # Submitted while no worker serves the pools, then cancelled: 2 batch sizes x 2 pools.
    to_cancel = _campaign_id(
        farm("submit", str(write_matrix(tmp_path / "c.yaml", pools=[POOL, "admin-b"])), env=env)
    )
    some = farm("cancel", str(to_cancel), "--pool", "admin-b", "--batch", "2", env=env)
    assert some.returncode == 0, some.stderr
    cut = f"campaign {to_cancel} (tiny) (--batch 2 --pool admin-b): 1 queued job(s) cancelled"
    assert cut in some.stdout
    assert _states(migrated_pg, to_cancel).count("cancelled") == 1
    cancel = farm("cancel", str(to_cancel), env=env)
    assert cancel.returncode == 0, cancel.stderr
    assert f"campaign {to_cancel} (tiny): 3 queued job(s) cancelled; none running" in cancel.stdout
    assert _states(migrated_pg, to_cancel) == ["cancelled"] * 4

    worker = WorkerProcess(POOL, "w-admin", env, tmp_path / "worker.log")
    try:
        # A model that resolves to nothing offline: the job fails, is retried, fails again.
        broken = write_matrix(
            tmp_path / "b.yaml",
            name="broken",
            models=[OFFLINE_NOTHING],
            batch_sizes=[1],
            pools=[POOL],
        )
        failing = _campaign_id(farm("submit", str(broken), env=env))
        wait_for(lambda: _states(migrated_pg, failing) == ["failed"], 120)
        [(first_error,)] = _rows(
            migrated_pg, "SELECT error FROM job WHERE campaign_id = :c", c=failing
        )  # noqa: E501
        assert OFFLINE_NOTHING in first_error

        retry = farm("retry", "broken", env=env)
        assert retry.returncode == 0, retry.stderr
        assert f"campaign {failing} (broken): 1 failed job(s) queued again on farm.{POOL}" in (
            retry.stdout
        )

        def failed_twice() -> bool:
            rows = _rows(
                migrated_pg, "SELECT state, attempts FROM job WHERE campaign_id = :c", c=failing
            )
            return rows == [("failed", 2)]

        wait_for(failed_twice, 120)
        [(error, history)] = _rows(
            migrated_pg, "SELECT error, history FROM job WHERE campaign_id = :c", c=failing
        )
        assert OFFLINE_NOTHING in error
        reasons = [entry["error"] for entry in history]  # old reasons are kept
        assert reasons == [first_error, first_error]
        assert [entry["attempt"] for entry in history] == [1, 2]

        # The cancelled jobs' messages reached this worker, which dropped them.
        assert _rows(
            migrated_pg,
            "SELECT state, attempts FROM job WHERE campaign_id = :c AND pool = :p",
            c=to_cancel,
            p=POOL,
        ) == [("cancelled", 0), ("cancelled", 0)]

        # The cancelled campaign's cells, again, on the served pool (4 cells collapse to 2).
        rerun = farm("rerun", str(to_cancel), "--pool", POOL, env=env)
        rerun_id = _campaign_id(rerun)
        assert rerun_id not in (to_cancel, failing)
        assert f"re-run of campaign {to_cancel}, 2 jobs queued on farm.{POOL}" in rerun.stderr
        wait_for(lambda: _states(migrated_pg, rerun_id) == ["succeeded"] * 2, 120)
        assert worker.proc.poll() is None
    finally:
        worker.stop()
    assert {p for p, _, _ in job_states(migrated_pg, rerun_id).values()} == {POOL}
    assert count_rows(migrated_pg, "result") == 2

    # Delete asks first; "n" keeps everything, --yes removes the campaign and its rows.
    ask = subprocess.run(
        [FARM, "delete", str(rerun_id)],
        env=env,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ask.returncode != 0 and "Aborted" in ask.stderr
    assert f"Delete campaign {rerun_id} (tiny): 2 jobs, 2 results?" in ask.stderr
    assert count_rows(migrated_pg, "result") == 2
    gone = farm("delete", str(rerun_id), "--yes", env=env)
    assert gone.returncode == 0, gone.stderr
    assert f"deleted campaign {rerun_id} (tiny): 2 jobs, 2 results" in gone.stdout
    assert count_rows(migrated_pg, "result") == 0
    assert job_states(migrated_pg, rerun_id) == {}
    assert count_rows(migrated_pg, "campaign") == 2


def _failed_campaign(url: str) -> int:
    """A campaign with one failed job, made directly (no worker, no broker)."""
    spec = JobSpec(
        model=ModelSpec(name=OFFLINE_NOTHING),
        input_name="short",
        input_text="hello",
        batch_size=1,
        backend="pytorch",
        pool=POOL,
    )
    with transaction(session_factory(url)) as session:
        campaign = repo.create_campaign(session, "offline", {}, [spec])
        job = campaign.jobs[0]
        job.state, job.attempts, job.error = "failed", 1, "ModelResolutionError: nothing"
        running = repo.create_campaign(
            session, "busy", {}, [spec, spec.model_copy(update={"batch_size": 2})]
        )  # noqa: E501
        running.jobs[0].state = "running"
        return campaign.id


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


COMMANDS = [["cancel"], ["retry"], ["rerun", "--pool", "x"], ["delete", "--yes"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_unknown_campaign_and_dead_database(
    command: list[str], migrated_pg: str, redis_url: str
) -> None:
    unknown = farm(command[0], "nope", *command[1:], env=farm_env(migrated_pg, redis_url))
    assert "unknown campaign 'nope'" in _one_error_line(unknown)
    down = farm(
        command[0],
        "1",
        *command[1:],
        env=farm_env("postgresql+psycopg://farm:hunter2@127.0.0.1:1/farm"),  # noqa: E501
    )
    line = _one_error_line(down)
    assert "database postgresql+psycopg://farm:***@127.0.0.1:1/farm is unreachable" in line
    assert "hunter2" not in down.stderr + down.stdout


@pytest.mark.parametrize("command", ["retry", "rerun"])
def test_dead_broker_changes_nothing(command: str, migrated_pg: str) -> None:
    campaign = _failed_campaign(migrated_pg)
    env = farm_env(migrated_pg, "redis://:s3cret@127.0.0.1:1/0")
    args = [command, str(campaign), *(["--pool", "b"] if command == "rerun" else [])]
    line = _one_error_line(farm(*args, env=env))
    assert "broker redis://:***@127.0.0.1:1/0 is unreachable" in line
    assert "s3cret" not in line
    assert _rows(
        migrated_pg, "SELECT state, error FROM job WHERE campaign_id = :c", c=campaign
    ) == [("failed", "ModelResolutionError: nothing")]
    assert count_rows(migrated_pg, "campaign") == 2


def test_cancel_says_running_jobs_are_left_to_finish(migrated_pg: str) -> None:
    _failed_campaign(migrated_pg)
    result = farm("cancel", "busy", env=farm_env(migrated_pg))
    assert result.returncode == 0, result.stderr
    assert "1 queued job(s) cancelled; 1 running job(s) left to finish" in result.stdout


def test_campaigns_delete_and_campaigns_still_lists(migrated_pg: str) -> None:
    campaign = _failed_campaign(migrated_pg)
    env = farm_env(migrated_pg)
    gone = farm("campaigns", "delete", str(campaign), "--yes", env=env)
    assert gone.returncode == 0, gone.stderr
    assert f"deleted campaign {campaign} (offline): 1 jobs, 0 results" in gone.stdout
    listing = farm("campaigns", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "busy" in listing.stdout and "offline" not in listing.stdout
