"""`farm worker --allocator tcmalloc` serves only its allocator's queue; `farm calibrate`
measures its noise floor. Debian's libtcmalloc-minimal4 must be installed (CI installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from farm.errors import FarmError
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix
from tests.support.services import IN_CI

pytestmark = pytest.mark.acceptance

@pytest.fixture
def tcmalloc() -> str:
    from farm.workers.allocator import library_path

    try:
        return library_path("tcmalloc")
    except FarmError as exc:
        if IN_CI:
            pytest.fail(f"{exc} -- CI must provide it")
        pytest.skip(str(exc))


def allocator_worker(
    pool: str, name: str, allocator: str, env: dict[str, str], log: Path
) -> WorkerProcess:
    """`farm worker --allocator A` (it re-executes itself with LD_PRELOAD)."""
    env = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    return WorkerProcess(pool, name, env, log, extra=["--allocator", allocator])


def test_tcmalloc_worker_runs_only_tcmalloc_jobs_and_calibrates(
    migrated_pg: str, redis_url: str, tmp_path: Path, tcmalloc: str
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(
        tmp_path / "m.yaml", batch_sizes=[1], pools=["p"], allocators=["default", "tcmalloc"]
    )
    worker = allocator_worker("p", "w-tc", "tcmalloc", env, tmp_path / "worker.log")
    try:
        assert f"LD_PRELOAD={tcmalloc}" in worker.environ().split("\0")  # re-executed, same pid
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        assert "farm.p.tcmalloc" in sub.stderr and "farm.p," in sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])

        def allocator_of(job_id: int) -> str:
            return queue_of[job_id].removeprefix("farm.p").lstrip(".") or "default"

        queue_of = job_queues(migrated_pg, campaign)
        assert sorted(queue_of.values()) == ["farm.p", "farm.p.tcmalloc"]
        wait_for(
            lambda: any(
                s == "succeeded" and allocator_of(j) == "tcmalloc"
                for j, (_, s, _) in job_states(migrated_pg, campaign).items()
            ),
            120,
        )
        states = {allocator_of(j): s for j, (_, s, _) in job_states(migrated_pg, campaign).items()}
        assert states == {"tcmalloc": "succeeded", "default": "queued"}

        status = farm("status", str(campaign), env=env)
        assert status.returncode == 0, status.stderr
        warning = " ".join(status.stdout.split())  # rich may wrap long lines
        assert "warning:" in warning and "1 job(s) of pool 'p' are waiting" in warning
        assert "farm worker --pool p" in warning

        cal = farm(
            "calibrate", "--pool", "p", "--iterations", "30", "--warmup", "5", env=env, timeout=300
        )
        assert cal.returncode == 0, cal.stderr + cal.stdout
        table = " ".join(cal.stdout.split())
        assert "noise floor of pool p" in table and "w-tc" in table
        assert "mean noise" in table and "p99 noise" in table and "%" in table
        # the default-allocator job is still waiting: calibration used the worker's own queue
        states = {allocator_of(j): s for j, (_, s, _) in job_states(migrated_pg, campaign).items()}
        assert states["default"] == "queued"
    finally:
        worker.stop()

    engine = create_engine(migrated_pg)
    try:
        with engine.connect() as conn:
            env_, host = conn.execute(
                text(
                    "SELECT r.environment, r.host FROM result r JOIN job j ON j.id = r.job_id "
                    "WHERE j.campaign_id = :c"
                ),
                {"c": campaign},
            ).one()
            calibrations = conn.execute(
                text("SELECT pool, worker, mean_noise, p99_noise, jobs FROM calibration")
            ).all()
            calibration_jobs = conn.execute(
                text("SELECT state, queue, worker FROM job WHERE campaign_id <> :c"),
                {"c": campaign},
            ).all()
            runs = conn.execute(
                text(
                    "SELECT r.job_id, r.mean_ms, r.p99_ms FROM result r JOIN job j "
                    "ON j.id = r.job_id WHERE j.campaign_id <> :c ORDER BY r.job_id"
                ),
                {"c": campaign},
            ).all()
    finally:
        engine.dispose()
    preload = env_["env"].get("LD_PRELOAD", "")
    assert "libtcmalloc" in preload and preload == tcmalloc
    assert env_["host"]["allocator"] == "tcmalloc"
    assert len(calibrations) == 1
    pool, worker_name, mean_noise, p99_noise, jobs = calibrations[0]
    assert (pool, worker_name) == ("p", "w-tc")
    # the noise floor is the relative gap between the two runs' own numbers, per statistic
    (job_a, mean_a, p99_a), (job_b, mean_b, p99_b) = runs
    assert sorted(jobs) == [job_a, job_b]
    assert mean_noise == pytest.approx(abs(mean_a - mean_b) / ((mean_a + mean_b) / 2))
    assert p99_noise == pytest.approx(abs(p99_a - p99_b) / ((p99_a + p99_b) / 2))
    assert sorted(calibration_jobs) == [("succeeded", "farm.worker.w-tc", "w-tc")] * 2


def job_queues(url: str, campaign: int) -> dict[int, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, queue FROM job WHERE campaign_id = :c"), {"c": campaign}
            )
            return {r[0]: r[1] for r in rows}
    finally:
        engine.dispose()


def test_missing_allocator_library_is_a_clear_error(tmp_path: Path) -> None:
    """The worker refuses to start (before touching services) when the library is absent."""
    from farm.workers import allocator

    saved = allocator.LIB_DIRS
    allocator.LIB_DIRS = (str(tmp_path),)
    try:
        with pytest.raises(FarmError, match="apt-get install libtcmalloc-minimal4"):
            allocator.library_path("tcmalloc")
    finally:
        allocator.LIB_DIRS = saved


def test_status_tells_a_missing_default_allocator_worker_from_a_missing_pool(
    sqlite_url: str,
) -> None:
    from farm.db import repo
    from farm.db.migrate import upgrade
    from farm.db.session import session_factory, transaction
    from farm.matrix import parse_matrix

    upgrade(sqlite_url)
    spec = parse_matrix(
        {
            "name": "alloc",
            "models": ["distilbert-base-uncased"],
            "inputs": {"short": "A sentence."},
            "batch_sizes": [1],
            "backends": ["pytorch"],
            "pools": ["p"],
            "allocators": ["default"],
        }
    )
    with transaction(session_factory(sqlite_url)) as session:
        repo.register_worker(
            session,
            name="w-tc",
            pool="p",
            hostname="h",
            pid=1,
            cpus="0",
            threads=1,
            fingerprint={},
            queues=["farm.p.tcmalloc", "farm.worker.w-tc"],
            allocator="tcmalloc",
            hardware_class=None,
        )
        repo.create_campaign(session, spec.name, spec.model_dump(mode="json"), spec.expand())
    status = farm("status", env=farm_env(sqlite_url))
    assert status.returncode == 0, status.stderr
    out = " ".join(status.stdout.split())
    assert "1 job(s) of pool 'p' are waiting" in out
    assert "no live worker serves that pool" not in out, out
