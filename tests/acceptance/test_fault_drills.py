"""Fault drills (issue 6): nothing lost, nothing run twice.

Each drill runs real `farm worker` processes against PostgreSQL and a private
`redis-server` on a free loopback port (never the machine's Redis on 6379), breaks
something on purpose, then asks the database itself: every submitted job ended
(succeeded, failed or cancelled) and no job has more than one result. Each drill adds a
row to the table printed at the end of the session (tests/acceptance/conftest.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.harness import FARM, WorkerProcess, farm, farm_env, write_matrix
from tests.support.proxy import TcpProxy
from tests.support.services import RedisServer, redis_binary

pytestmark = pytest.mark.acceptance

TERMINAL = ("succeeded", "failed", "cancelled")
PR_SET_CHILD_SUBREAPER = 36
# Short lease and worker settings so that drills take seconds, not minutes.
WORKER_ENV = {"FARM_LEASE_TTL": "5", "FARM_WORKER_TTL": "30", "FARM_MAX_ATTEMPTS": "3"}


# --- services -----------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the drill's own, which it may kill and restart."""
    server = RedisServer(redis_binary(), tmp_path / "redis.log")
    try:
        yield server
    finally:
        server.kill()


# --- the drill harness --------------------------------------------------------------------


class Drill:
    """One drill's database, broker, workers and extra processes; cleans them all up."""

    def __init__(self, db_url: str, redis: RedisServer, tmp: Path, table: list[dict[str, Any]]):
        self.db_url, self.redis, self.tmp, self.table = db_url, redis, tmp, table
        self.engine: Engine = create_engine(db_url)
        self.workers: list[WorkerProcess] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.orphans: list[int] = []
        self.env = farm_env(db_url, redis.url)

    # processes

    def worker(self, name: str, cpus: str = "0", **extra: str) -> WorkerProcess:
        env = {**self.env, **WORKER_ENV, **extra}
        worker = WorkerProcess("a", name, env, self.tmp / f"{name}.log", cpus=cpus)
        self.workers.append(worker)
        return worker

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [FARM, *args], env=env or self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        for worker in self.workers:
            worker.stop()
        for pid in self.orphans:
            _kill_and_reap(pid)
        self.engine.dispose()

    def logs(self) -> str:
        parts = []
        for w in self.workers:
            tail = "\n".join(w.log.read_text(errors="replace").splitlines()[-25:])
            parts.append(f"--- {w.name} (exit {w.proc.poll()}) ---\n{tail}")
        return "\n".join(parts)

    # campaigns

    def submit(self, name: str, **matrix: Any) -> int:
        path = selftest_matrix(self.tmp / f"{name}.yaml", name, **matrix)
        sub = farm("submit", str(path), env=self.env, timeout=60)
        assert sub.returncode == 0, sub.stderr
        return int(sub.stdout.strip().splitlines()[-1])

    def recover(self, campaign: int | None, env: dict[str, str] | None = None) -> str:
        args = ["recover"] if campaign is None else ["recover", str(campaign)]
        out = farm(*args, env=env or self.env, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    # the database, the system of record

    def jobs(self, *campaigns: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT j.id, j.state, j.attempts, j.worker, j.error, j.lease, j.history,"
                    " j.queue, j.started_at, j.finished_at,"
                    " (SELECT count(*) FROM result r WHERE r.job_id = j.id) AS results,"
                    " (SELECT r.worker FROM result r WHERE r.job_id = j.id LIMIT 1) AS wrote"
                    " FROM job j WHERE j.campaign_id = ANY(:c) ORDER BY j.id"
                ),
                {"c": list(campaigns)},
            )
            return [dict(r._mapping) for r in rows]

    def job(self, campaign: int) -> dict[str, Any]:
        (job,) = self.jobs(campaign)
        return job

    def worker_row(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT pid, last_seen, started_at FROM worker WHERE name = :n"), {"n": name}
            ).one()
            return dict(row._mapping)

    def until(self, what: str, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     f"{self.logs()}")  # fmt: skip
            time.sleep(0.1)

    def until_ended(self, *campaigns: int, timeout: float = 120) -> list[dict[str, Any]]:
        self.until(
            f"campaign(s) {campaigns} to end",
            lambda: all(j["state"] in TERMINAL for j in self.jobs(*campaigns)),
            timeout,
        )
        return self.jobs(*campaigns)

    def until_running(self, campaign: int, timeout: float = 60) -> dict[str, Any]:
        self.until(f"a job of campaign {campaign} to run",
                   lambda: any(j["state"] == "running" and j["lease"]
                               for j in self.jobs(campaign)), timeout)  # fmt: skip
        return next(j for j in self.jobs(campaign) if j["state"] == "running")

    def account(self, drill: str, *campaigns: int, note: str = "") -> list[dict[str, Any]]:
        """Record the drill's row, then assert: 0 lost, 0 duplicated, results == succeeded."""
        jobs = self.jobs(*campaigns)
        succeeded = sum(j["state"] == "succeeded" for j in jobs)
        results = sum(j["results"] for j in jobs)
        row = {
            "drill": drill,
            "submitted": len(jobs),
            "succeeded": succeeded,
            "failed": sum(j["state"] == "failed" for j in jobs),
            "lost": sum(j["state"] not in TERMINAL for j in jobs),
            "duplicated": sum(max(0, j["results"] - 1) for j in jobs),
            "note": note,
        }
        self.table.append(row)
        assert row["lost"] == 0, f"{drill}: jobs not accounted for: {jobs}\n{self.logs()}"
        assert row["duplicated"] == 0, f"{drill}: more than one result for a job: {jobs}"
        assert results == succeeded, f"{drill}: {results} results for {succeeded} succeeded"
        for j in jobs:
            assert j["results"] == (1 if j["state"] == "succeeded" else 0), j
        return jobs


@pytest.fixture
def drill(
    migrated_pg: str, private_redis: RedisServer, tmp_path: Path, drill_table: list[dict[str, Any]]
) -> Iterator[Drill]:
    harness = Drill(migrated_pg, private_redis, tmp_path, drill_table)
    try:
        yield harness
    finally:
        harness.cleanup()


def selftest_matrix(
    path: Path,
    name: str,
    *,
    work_ms: float = 50,
    iterations: int = 20,
    warmup: int = 0,
    crash: bool = False,
    jobs: int = 1,
    **protocol: Any,
) -> Path:
    """`jobs` cells of the selftest backend, each `iterations` calls of `work_ms`."""
    return write_matrix(
        path,
        name=name,
        models=["selftest"],
        inputs={f"in{i}": f"drill input number {i}" for i in range(jobs)},
        batch_sizes=[1],
        backends=[{"name": "selftest", "options": {"work_ms": work_ms, "crash": crash}}],
        pools=["a"],
        protocol={"warmup": warmup, "iterations": iterations, **protocol},
    )


# --- processes ----------------------------------------------------------------------------


def seconds(job: dict[str, Any]) -> float:
    return float((job["finished_at"] - job["started_at"]).total_seconds())


def lease_pid(lease: str) -> int:
    """A lease is host:pid@start."""
    return int(lease.rpartition(":")[2].partition("@")[0])


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return False


def set_subreaper(on: bool) -> None:
    """Orphans of our workers come to this process (as they would to an init that reaps)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not ours to reap


def kill_whole_worker(d: Drill, worker: WorkerProcess, child: int, reap: bool) -> None:
    """SIGKILL the worker's parent, then its pool child (now an orphan of this process).

    With `reap` the orphan is reaped at once, as a well-behaved init does; without, it
    stays a zombie (as under an init that does not reap) until the drill ends.
    """
    d.orphans.append(child)  # reaped at cleanup, whatever happens here
    set_subreaper(True)
    try:
        worker.proc.kill()
        worker.proc.wait(10)
        d.until(f"pool child {child} to be orphaned", lambda: parent_of(child) == os.getpid(), 10)
        os.kill(child, signal.SIGKILL)
        if reap:
            os.waitpid(child, 0)
            d.orphans.remove(child)
        else:
            d.until(f"{child} to be a zombie", lambda: is_zombie(child), 10)
    finally:
        set_subreaper(False)


# --- the drills ---------------------------------------------------------------------------


def test_drill_1_pool_child_killed_mid_job(drill: Drill) -> None:
    worker = drill.worker("d1")
    campaign = drill.submit("drill1", iterations=100)  # 5 s
    job = drill.until_running(campaign)
    child = lease_pid(job["lease"])
    assert parent_of(child) == worker.proc.pid, "the lease names the prefork child"
    time.sleep(0.5)
    os.kill(child, signal.SIGKILL)

    (job,) = drill.until_ended(campaign)
    drill.account("1 pool child killed mid-job", campaign, note=f"attempts {job['attempts']}")
    assert job["state"] == "succeeded", (job, drill.logs())
    assert job["attempts"] == 2
    (lost,) = [h["error"] for h in job["history"]]
    # Redelivered by Celery to the worker's new pool child, or — when that child is slow to
    # start — re-queued first by the worker's own sweep once the lease expired.
    dead = f"{socket.gethostname()}:{child}@"
    assert lost.startswith((f"worker lost while running it (lease {dead}",
                            f"recovered: lease {dead}")), lost  # fmt: skip
    assert worker.proc.poll() is None, "the worker itself survives"


def _kill_whole_worker_then_recover(drill: Drill, reap: bool) -> tuple[int, str, str]:
    first = drill.worker("d2-first", cpus="0")
    campaign = drill.submit("drill2", iterations=100)  # 5 s
    dead_lease = drill.until_running(campaign)["lease"]
    time.sleep(0.5)
    kill_whole_worker(drill, first, lease_pid(dead_lease), reap=reap)
    # A lease TTL longer than the drill: this worker's own sweep (drill 8) must not re-queue
    # the job before `farm recover`, which finds the dead pid, does.
    drill.worker("d2-second", cpus="1", FARM_LEASE_TTL="300")
    return campaign, dead_lease, drill.recover(campaign).strip()


def test_drill_2_whole_worker_killed(drill: Drill) -> None:
    campaign, dead_lease, out = _kill_whole_worker_then_recover(drill, reap=True)
    recovered = time.monotonic()
    (job,) = drill.until_ended(campaign, timeout=90)
    note = f"attempts {job['attempts']}, done {time.monotonic() - recovered:.0f} s after recover"
    drill.account("2 whole worker killed + recover", campaign, note=note)
    assert "jobs of dead workers re-queued: 1; queued jobs re-sent: 1" in out, out
    assert job["state"] == "succeeded" and job["wrote"] == "d2-second"
    assert job["attempts"] == 2
    assert [h["error"] for h in job["history"]] == [f"recovered: lease {dead_lease} is dead"]


def test_drill_2b_whole_worker_killed_child_left_a_zombie(drill: Drill) -> None:
    """As drill 2, but the killed pool child stays a zombie (its init does not reap it)."""
    campaign, dead_lease, out = _kill_whole_worker_then_recover(drill, reap=False)
    drill.until_ended(campaign, timeout=120)
    requeued = out.split(";")[1].strip()
    drill.account("2b whole worker killed, zombie child", campaign, note=requeued)
    assert "re-queued: 1" in out, out
    assert drill.job(campaign)["attempts"] == 2


def test_drill_3_job_that_kills_its_worker_every_time(drill: Drill) -> None:
    worker = drill.worker("d3", FARM_MAX_ATTEMPTS="2")
    parent = worker.proc.pid
    crashing = drill.submit("drill3-crash", crash=True)
    (job,) = drill.until_ended(crashing)
    assert job["state"] == "failed"
    assert job["error"].startswith("gave up after 2 attempts"), job["error"]
    assert [h["error"].startswith("worker lost while running it") for h in job["history"]] == [
        True,
        True,
    ], job["history"]

    normal = drill.submit("drill3-normal")
    (after,) = drill.until_ended(normal)
    drill.account("3 job kills its worker every time", crashing, normal,
                  note=f"gave up after {job['attempts']} attempts")  # fmt: skip
    assert after["state"] == "succeeded" and after["wrote"] == "d3"
    assert worker.proc.poll() is None and drill.worker_row("d3")["pid"] == parent


def test_drill_4_redis_restarted_mid_campaign(drill: Drill) -> None:
    drill.worker("d4-a", cpus="0")
    drill.worker("d4-b", cpus="1")
    campaign = drill.submit("drill4", jobs=6, iterations=20)  # 6 jobs of 1 s
    drill.until_running(campaign)
    drill.redis.kill()
    drill.redis.start()  # same port, empty: queued messages are gone
    out = drill.recover(campaign)
    jobs = drill.until_ended(campaign, timeout=90)
    reconnected = drill.redis.client_count()
    drill.account("4 redis restarted mid-campaign", campaign, note=out.split(";")[2].strip())
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    assert all(j["attempts"] == 1 for j in jobs), "nothing ran twice"
    assert reconnected >= 2, "both workers are connected to the new Redis"
    for worker in drill.workers:
        assert worker.log.read_text().count("Connected to redis") >= 2, drill.logs()


def test_drill_5_database_away_when_the_result_is_written(drill: Drill) -> None:
    from sqlalchemy.engine import make_url

    spool_dir = drill.tmp / "spool"
    pg = make_url(drill.db_url)
    with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        proxied = pg.set(port=proxy.port).render_as_string(hide_password=False)
        worker = drill.worker(
            "d5", FARM_DATABASE_URL=proxied, FARM_RESULT_RETRY="2", FARM_SPOOL_DIR=str(spool_dir)
        )
        campaign = drill.submit("drill5", iterations=100)  # 5 s
        job_id = drill.until_running(campaign)["id"]
        proxy.stop()  # the database goes away while the job measures
        spooled = spool_dir / f"job-{job_id}.json"
        drill.until("the result to be spooled", spooled.exists, 30)
        assert drill.job(campaign)["state"] == "running"
        assert "result spooled to" in worker.log.read_text()
        proxy.start()

        # Both flushers must hold the file at once: lock the job's row, let the worker's
        # heartbeat (every 15 s) and `farm recover` both block on it, then let them go.
        with drill.engine.connect() as conn, conn.begin() as lock:
            conn.execute(text("SELECT id FROM job WHERE id = :j FOR UPDATE"), {"j": job_id})
            recover = drill.spawn("-v", "recover", str(campaign),
                                  env={**drill.env, "FARM_SPOOL_DIR": str(spool_dir)})  # fmt: skip
            drill.until("the worker and `farm recover` both to wait on the job's row",
                        lambda: waiting_on_locks(drill) == 2, 25)  # fmt: skip
            lock.rollback()
        out, err = recover.communicate(timeout=30)
        assert recover.returncode == 0, err
        drill.until_ended(campaign, timeout=60)
        drill.until("the spool to be empty", lambda: not list(spool_dir.glob("job-*")), 10)

    flushes = worker.log.read_text() + err
    written = flushes.count("spool: 1 result(s) written, 0 already there")
    already = flushes.count("spool: 0 result(s) written, 1 already there")
    winner = "recover" if "spooled results written: 1" in out else "worker"
    note = f"{winner} wrote it; {already} flusher found it already written"
    drill.account("5 database away at write (spool)", campaign, note=note)
    job = drill.job(campaign)
    assert job["state"] == "succeeded" and job["attempts"] == 1
    assert (written, already) == (1, 1), (out, err, drill.logs())
    assert not list(spool_dir.iterdir()), "the spool is empty"


def waiting_on_locks(drill: Drill) -> int:
    with drill.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )  # fmt: skip
            ).scalar_one()
        )


def test_drill_6_second_delivery_while_the_first_run_goes_on(drill: Drill) -> None:
    from farm.settings import Settings
    from farm.workers.app import create_app, enqueue_jobs

    drill.worker("d6-a", cpus="0")
    drill.worker("d6-b", cpus="1")
    campaign = drill.submit("drill6", iterations=100)  # 5 s
    job = drill.until_running(campaign)
    runner = next(w for w in drill.workers if w.name == job["worker"])
    other = next(w for w in drill.workers if w is not runner)
    app = create_app(Settings.from_env(drill.env))
    assert enqueue_jobs(app, [(job["id"], job["queue"])]) == 1
    dropped = f"job {job['id']} not run (held by live lease {job['lease']}); message dropped"
    drill.until("the second delivery to be dropped", lambda: dropped in other.log.read_text(), 20)

    (job,) = drill.until_ended(campaign)
    drill.account("6 redelivery while running", campaign, note=f"attempts {job['attempts']}")
    assert job["state"] == "succeeded" and job["attempts"] == 1
    assert job["wrote"] == runner.name
    assert f"job {job['id']}: " not in other.log.read_text(), "the second worker did not run it"


def test_drill_7_timeout(drill: Drill) -> None:
    worker = drill.worker("d7")
    parent = worker.proc.pid
    slow = drill.submit("drill7-slow", iterations=1000, timeout_s=2)  # 50 s without the limit
    (job,) = drill.until_ended(slow, timeout=60)
    assert job["state"] == "failed" and job["error"].startswith("timeout"), job
    normal = drill.submit("drill7-next")
    (after,) = drill.until_ended(normal)
    drill.account("7 timeout", slow, normal, note=f"failed after {seconds(job):.1f} s of 50 s")
    assert after["state"] == "succeeded" and after["wrote"] == "d7"
    assert worker.proc.poll() is None and drill.worker_row("d7")["pid"] == parent


def test_drill_8_frozen_host_swept_by_a_live_worker(drill: Drill) -> None:
    """A host that stops answering (SIGSTOP: as a partition looks from the database) loses
    its job to the periodic sweep of another worker of the pool — nobody runs `farm
    recover` — and once it wakes it finds its lease gone and writes nothing: one result, two
    attempts. (A run that finished while cut off has its late result refused: drill 5's
    spool path, and tests/multihost.)"""
    sweep = {"FARM_WORKER_HEARTBEAT": "1"}
    first = drill.worker("d8-first", cpus="0", **sweep)
    # A warm-up bounds the timed phase (and so the lease extension) at about 15 s; with none
    # the bound is the visibility timeout, and a frozen phase holds its job for hours.
    campaign = drill.submit("drill8", iterations=100, warmup=2)  # 5 s
    running = drill.until_running(campaign)
    lease, job_id = running["lease"], running["id"]
    child = lease_pid(lease)
    os.kill(first.proc.pid, signal.SIGSTOP)
    os.kill(child, signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        drill.worker("d8-second", cpus="1", **sweep)
        drill.until("the job to be run again", lambda: drill.job(campaign)["state"] == "succeeded",
                    90)  # fmt: skip
        took = time.monotonic() - frozen
    finally:
        os.kill(child, signal.SIGCONT)
        os.kill(first.proc.pid, signal.SIGCONT)
    drill.until("the woken run to give the job up",
                lambda: f"job {job_id} abandoned, nothing written" in first.log.read_text(),
                60)  # fmt: skip
    (job,) = drill.account("8 frozen host, swept", campaign, note=f"run again {took:.0f} s later")
    assert job["wrote"] == "d8-second" and job["attempts"] == 2
    assert [h["error"] for h in job["history"]] == [f"recovered: lease {lease} expired"]
