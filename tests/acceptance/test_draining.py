"""Draining a worker (issue 13 §4): on SIGTERM, or `farm hosts drain NAME`, a real `farm
worker` takes no new job, finishes and writes the one in hand, exits 0, and the job it did
not start stays queued for another worker — nothing lost, nothing run twice."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import WorkerProcess, farm, farm_env, sql_rows, wait_for, write_matrix

pytestmark = pytest.mark.acceptance

# Short settings so a drain is noticed in about a second; a long visibility timeout, so a
# message that did not go back to its queue at once would stay away for the whole test.
DRAIN_ENV = {"FARM_WORKER_HEARTBEAT": "1", "FARM_LEASE_TTL": "10",
             "FARM_VISIBILITY_TIMEOUT": "3600"}  # fmt: skip


class Farm:
    """The test's database, broker and workers; stops every worker at the end."""

    def __init__(self, db_url: str, redis_url: str, tmp: Path) -> None:
        self.db_url, self.redis_url, self.tmp = db_url, redis_url, tmp
        self.env = {**farm_env(db_url, redis_url), **DRAIN_ENV}
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str, cpus: str = "0") -> WorkerProcess:
        worker = WorkerProcess("a", name, self.env, self.tmp / f"{name}.log", cpus=cpus)
        self.workers.append(worker)
        return worker

    def submit(self, jobs: int, iterations: int) -> int:
        """`jobs` selftest jobs of `iterations` calls of 50 ms each."""
        path = write_matrix(
            self.tmp / "drain.yaml",
            name="drain",
            models=["selftest"],
            inputs={f"in{i}": f"drain input {i}" for i in range(jobs)},
            batch_sizes=[1],
            backends=[{"name": "selftest", "options": {"work_ms": 50}}],
            pools=["a"],
            protocol={"warmup": 0, "iterations": iterations},
        )
        sub = farm("submit", str(path), env=self.env, timeout=60)
        assert sub.returncode == 0, sub.stderr
        return int(sub.stdout.strip().splitlines()[-1])

    def jobs(self, campaign: int) -> list[dict[str, Any]]:
        rows = sql_rows(
            self.db_url,
            "SELECT j.id, j.state, j.attempts, j.worker, j.lease,"
            " (SELECT count(*) FROM result r WHERE r.job_id = j.id) AS results,"
            " (SELECT r.worker FROM result r WHERE r.job_id = j.id LIMIT 1) AS wrote"
            " FROM job j WHERE j.campaign_id = :c ORDER BY j.id",
            c=campaign,
        )
        return [dict(r._mapping) for r in rows]

    def in_redis(self) -> tuple[set[int], int]:
        """(job ids waiting in pool a's queue, messages delivered and not yet acknowledged)."""
        import redis

        from farm.settings import Settings
        from farm.workers.app import create_app
        from farm.workers.broker import pending_job_ids

        app = create_app(Settings.from_env(self.env))
        client = redis.Redis.from_url(self.redis_url)
        try:
            return pending_job_ids(app, {"farm.a"}), int(client.hlen("unacked"))
        finally:
            client.close()

    def until(self, what: str, predicate: Any, timeout: float) -> None:
        try:
            wait_for(predicate, timeout, interval=0.2)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                 f"{self.logs()}") from None  # fmt: skip

    def running(self, campaign: int) -> dict[str, Any]:
        self.until("a job to run", lambda: any(j["state"] == "running" and j["lease"]
                                               for j in self.jobs(campaign)), 60)  # fmt: skip
        return next(j for j in self.jobs(campaign) if j["state"] == "running")

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} (exit {w.proc.poll()}) ---\n"
                         + "\n".join(w.log.read_text(errors="replace").splitlines()[-30:])
                         for w in self.workers)  # fmt: skip

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def farm_(migrated_pg: str, redis_url: str, tmp_path: Path) -> Iterator[Farm]:
    harness = Farm(migrated_pg, redis_url, tmp_path)
    try:
        yield harness
    finally:
        harness.stop()


def _live_column(f: Farm, name: str) -> str:
    """The `live` cell of worker `name` in `farm hosts`."""
    out = farm("hosts", env=f.env, timeout=60)
    assert out.returncode == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if line.startswith(f"│ {name} ")]
    return row.strip("│ ").rpartition("│")[2].strip()


def _drained(f: Farm, campaign: int, first: WorkerProcess, in_hand: dict[str, Any]) -> None:
    """`first` exits 0 after writing the job in hand; the other job waits for a second worker,
    which runs it: one result each, one attempt each."""
    f.until("the draining worker to exit", lambda: first.proc.poll() is not None, 60)
    assert first.proc.returncode == 0, f.logs()
    jobs = {j["id"]: j for j in f.jobs(campaign)}
    done = jobs.pop(in_hand["id"])
    assert (done["state"], done["attempts"], done["results"], done["wrote"]) == (
        "succeeded", 1, 1, first.name), f.logs()  # fmt: skip
    (waiting,) = jobs.values()
    assert waiting["state"] == "queued" and waiting["attempts"] == 0, waiting
    # Its message is back in (or never left) the queue now, not after the visibility timeout.
    assert f.in_redis() == ({waiting["id"]}, 0)
    # The stopped worker no longer counts as live, though it was seen a moment ago.
    status = farm("status", str(campaign), env=f.env, timeout=60)
    assert "no live worker serves that pool" in status.stdout + status.stderr, status
    second = f.worker("second", cpus="1")
    f.until("the second worker to run the queued job",
            lambda: all(j["state"] == "succeeded" for j in f.jobs(campaign)), 60)  # fmt: skip
    jobs = {j["id"]: j for j in f.jobs(campaign)}
    assert (jobs[waiting["id"]]["wrote"], jobs[waiting["id"]]["attempts"]) == (second.name, 1)
    assert all(j["results"] == 1 for j in jobs.values()), jobs
    assert f"job {waiting['id']}: " not in first.log.read_text(), "the first never started it"


def test_sigterm_finishes_the_job_in_hand_and_leaves_the_next_queued(farm_: Farm) -> None:
    first = farm_.worker("first")
    campaign = farm_.submit(jobs=2, iterations=60)  # 3 s each
    in_hand = farm_.running(campaign)
    first.proc.send_signal(signal.SIGTERM)
    _drained(farm_, campaign, first, in_hand)
    assert _live_column(farm_, "first") == "no (stopped)"


def test_hosts_drain_stops_the_worker_after_its_job_in_hand(farm_: Farm) -> None:
    first = farm_.worker("first")
    # 10 s each: the drain is marked well before the job in hand ends. (Marked after, the
    # worker may start the next job before it looks again; it drains after that one.)
    campaign = farm_.submit(jobs=2, iterations=200)
    in_hand = farm_.running(campaign)
    out = farm("hosts", "drain", "first", env=farm_.env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("draining first (pool a, host "), out.stdout
    states = {j["id"]: j["state"] for j in farm_.jobs(campaign)}
    assert states[in_hand["id"]] == "running", "the drain was marked after the job ended"
    assert _live_column(farm_, "first") == "draining"
    _drained(farm_, campaign, first, in_hand)
    assert "drain requested" in first.log.read_text()
    assert _live_column(farm_, "first") == "no (drained)"

    # Started again under the same name, it serves normally.
    again = farm_.worker("first")
    campaign2 = farm_.submit(jobs=1, iterations=2)
    farm_.until("the restarted worker to run a job",
                lambda: [j["state"] for j in farm_.jobs(campaign2)] == ["succeeded"],
                60)  # fmt: skip
    assert again.proc.poll() is None
    assert _live_column(farm_, "first") == "yes"


def test_hosts_drain_by_hostname_and_an_unknown_name(farm_: Farm) -> None:
    import socket

    worker = farm_.worker("by-host")
    out = farm("hosts", "drain", socket.gethostname(), env=farm_.env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "draining by-host (pool a" in out.stdout
    farm_.until("the idle worker to exit", lambda: worker.proc.poll() is not None, 30)
    assert worker.proc.returncode == 0, farm_.logs()
    again = farm("hosts", "drain", "by-host", env=farm_.env, timeout=60)
    assert again.returncode == 0 and again.stdout.strip().endswith("(stopped already)"), again

    unknown = farm("hosts", "drain", "no-such-host", env=farm_.env, timeout=60)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "Error: no worker or host named 'no-such-host'; `farm hosts` lists them"
    )
