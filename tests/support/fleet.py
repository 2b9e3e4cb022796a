"""A fleet of real `farm worker` processes on one database: start, drain, measure.

Shared by benchmarks/scale_workers.py and the connection-limit tests: workers are started
all at once (not one after another), pinned round-robin over the given CPUs, and judged
from the database (job states) and /proc (memory, imported modules).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.harness import FARM, sql_rows

POOL = "fleet"


def selftest_campaign(
    path: Path, jobs: int, work_ms: float = 1.0, warmup: int = 1, iterations: int = 5
) -> Path:
    """A matrix of exactly `jobs` selftest jobs (models × inputs, each ≤ 100) on pool POOL."""
    inputs = min(jobs, 100)
    models = -(-jobs // inputs)
    exclude = [{"model": f"selftest-{models - 1}", "input": f"in{i}"}
               for i in range(inputs - (models * inputs - jobs), inputs)]  # fmt: skip
    matrix = {
        "name": "fleet",
        "models": [f"selftest-{m}" for m in range(models)],
        "inputs": {f"in{i}": f"fleet input number {i}" for i in range(inputs)},
        "batch_sizes": [1],
        "backends": [{"name": "selftest", "options": {"work_ms": work_ms}}],
        "pools": [POOL],
        "protocol": {"warmup": warmup, "iterations": iterations},
        **({"exclude": exclude} if exclude else {}),
    }
    path.write_text(yaml.safe_dump(matrix, sort_keys=False))
    return path


class Fleet:
    """`count` workers of pool POOL, started together; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, count: int, cpus: list[int], env: dict[str, str], tmp: Path) -> None:
        self.count, self.cpus, self.env, self.tmp = count, cpus, env, tmp
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, timeout: float = 900, batch: int = 20) -> None:
        """Start every worker (`batch` at a time, so start-up does not swamp the CPUs) and
        return once all say ready; raise with the first dead worker's log."""
        for i in range(self.count):
            name, log = f"w{i:03d}", self.tmp / f"w{i:03d}.log"
            cpu = self.cpus[i % len(self.cpus)]
            with log.open("w") as fh:
                proc = subprocess.Popen(  # noqa: S603 (our own executable)
                    [FARM, "-v", "worker", "--pool", POOL, "--name", name, "--cpus", str(cpu),
                     "--threads", "1"], env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                )  # fmt: skip
            self.procs.append((name, proc, log))
            if (i + 1) % batch == 0:
                self._wait_ready(timeout)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            waiting = [(n, p, log) for n, p, log in self.procs if "ready" not in log.read_text()]
            for name, proc, log in waiting:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {name} exited:\n{log.read_text()[-3000:]}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} worker(s) not ready after {timeout} s")
            time.sleep(0.5)

    def drain(self, db_url: str, campaign: int, timeout: float) -> list[dict[str, Any]]:
        """Poll until every job of `campaign` has ended (or `timeout`); its job rows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = sql_rows(db_url, "SELECT count(*) FROM job WHERE campaign_id = :c AND state "
                            "NOT IN ('succeeded', 'failed', 'cancelled')", c=campaign)  # fmt: skip
            if left[0][0] == 0 or self.dead() == [n for n, _, _ in self.procs]:
                break
            time.sleep(1.0)
        return campaign_rows(db_url, campaign)

    def pids(self) -> list[int]:
        """Every process of the fleet: each worker and its children (the pool child)."""
        pids = [p.pid for _, p, _ in self.procs if p.poll() is None]
        return pids + [c for pid in pids for c in children(pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU time the fleet's processes have used so far."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def dead(self) -> list[str]:
        return [name for name, p, _ in self.procs if p.poll() is not None]

    def torch_imported(self) -> list[int]:
        """The fleet's processes that have torch loaded (its shared library is mapped)."""
        found = []
        for pid in self.pids():
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            if "libtorch" in maps:
                found.append(pid)
        return found

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def campaign_rows(db_url: str, campaign: int) -> list[dict[str, Any]]:
    rows = sql_rows(db_url, "SELECT id, state, error, started_at, finished_at, attempts "
                    "FROM job WHERE campaign_id = :c ORDER BY id", c=campaign)  # fmt: skip
    keys = ("id", "state", "error", "started_at", "finished_at", "attempts")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def fleet_memory(pids: list[int]) -> tuple[float, float]:
    """(total RSS, total PSS) in GB of these processes, from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0])
            elif key == "Pss":
                pss += int(value.split()[0])
    return rss / 1024**2, pss / 1024**2


def redis_commands(port: int) -> int:
    """The server's total_commands_processed (INFO stats), less this call's own INFO."""
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=2)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def connection_poller(db_url: str, stop: threading.Event, interval: float = 0.2) -> dict[str, int]:
    """Start polling pg_stat_activity; the returned dict keeps the peaks seen until `stop`:
    'database' (this database's backends), 'server' (all client backends) and 'max'."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(db_url, poolclass=NullPool)
    peak = {"database": 0, "server": 0, "max": 0}
    query = text("SELECT count(*) FILTER (WHERE datname = current_database()), count(*), "
                 "current_setting('max_connections')::int FROM pg_stat_activity "
                 "WHERE backend_type = 'client backend'")  # fmt: skip

    def poll() -> None:
        conn = None
        while not stop.is_set():
            try:
                conn = conn or engine.connect()
                mine, total, limit = conn.execute(query).one()
                conn.rollback()
                peak["database"] = max(peak["database"], mine - 1)  # not counting this poller
                peak["server"] = max(peak["server"], total)
                peak["max"] = limit
            except Exception:  # a full server refuses the poller too; try again
                conn = None
            stop.wait(interval)
        if conn is not None:
            conn.close()
        engine.dispose()

    threading.Thread(target=poll, name="pg-poller", daemon=True).start()
    return peak
