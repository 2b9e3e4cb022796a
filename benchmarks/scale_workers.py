"""Many workers on one database, and one worker's overhead per job (issue 13 §2).

Fleet mode: `--workers` real `farm worker` processes (selftest backend, pinned round-robin
across `--cpus`) drain a campaign of `--jobs` selftest jobs from one PostgreSQL. Printed:
jobs/s, peak database connections (pg_stat_activity, polled), Redis operations per job
(the server's total_commands_processed over the drain), the fleet's total RSS and PSS
(/proc/PID/smaps_rollup: a worker's pool child shares its parent's pages), the jobs that
failed, and whether any worker imported torch. The aims: no job fails, connections stay
within max_connections, RSS ≤ 16 GB.

Per-job mode (`--per-job`): one worker, `--jobs` selftest jobs whose timed work is about
6 ms (1 warm-up + 5 timed calls of 1 ms); jobs/s and the overhead per job (wall time per
job minus its timed work) against the aim < 20 ms, from the first job's start to the last
job's end as the database recorded them.

    .venv/bin/python benchmarks/scale_workers.py --per-job --jobs 300
    .venv/bin/python benchmarks/scale_workers.py --workers 20 --jobs 1000
    .venv/bin/python benchmarks/scale_workers.py --workers 200 --jobs 10000   # the aim

Services: a private redis-server on a free port, and a scratch PostgreSQL database
created and dropped here (FARM_TEST_POSTGRES, as the tests use; default
postgres@127.0.0.1:5432), or on a server of its own with `--private-postgres` (initdb;
as root, run as the postgres user). The fleet connects with FARM_DB_POOL=null
(`--db-pool` to change).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.fleet import (  # noqa: E402 (after the checkout is on the path)
    Fleet,
    connection_poller,
    fleet_memory,
    redis_commands,
    selftest_campaign,
)
from tests.support.harness import farm, farm_env  # noqa: E402
from tests.support.services import (  # noqa: E402
    PG_ADMIN_URL,
    RedisServer,
    postgres_database,
    private_postgres,
    redis_binary,
)

OVERHEAD_AIM_MS = 20.0
RSS_AIM_GB = 16.0
IDLE_S = 5.0
# What one worker (supervisor + pool child, selftest jobs) takes, PSS, with a margin: the
# fleet is not started where MemAvailable cannot hold it (the host is shared).
MB_PER_WORKER = 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=200, help="worker processes (fleet mode)")
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs in the campaign")
    ap.add_argument("--per-job", action="store_true", help="one worker: overhead per job")
    ap.add_argument("--cpus", default="0,1", help="CPUs the workers are pinned across")
    ap.add_argument("--work-ms", type=float, default=1.0, help="selftest work per call")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--db-pool", default=None, help="FARM_DB_POOL for the workers "
                    "(default: null in fleet mode, unset in per-job mode)")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to drain, at most")
    ap.add_argument("--private-postgres", action="store_true", help="run a PostgreSQL "
                    "server of its own (initdb, defaults: max_connections 100) rather than "
                    "crowd a shared one's connections")  # fmt: skip
    ap.add_argument("--force", action="store_true", help="start the fleet even where "
                    "MemAvailable looks too small for it")  # fmt: skip
    args = ap.parse_args(argv)
    if args.workers < 1 or args.jobs < 1:
        ap.error("--workers and --jobs must be at least 1")
    if args.per_job:
        args.workers = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = [int(c) for c in args.cpus.split(",") if c.strip()]
    need, free = args.workers * MB_PER_WORKER / 1024, available_gb()
    if need > free - 2 and not args.force:
        print(f"{args.workers} workers need about {need:.1f} GB ({MB_PER_WORKER} MB each) and "
              f"this host has {free:.1f} GB available (2 GB kept free): use fewer --workers, "
              "or --force")  # fmt: skip
        return 2
    timed_ms = (args.warmup + args.iterations) * args.work_ms
    with tempfile.TemporaryDirectory(prefix="farm-scale-") as tmp_dir:
        tmp = Path(tmp_dir)
        redis = RedisServer(redis_binary(), tmp / "redis.log")
        try:
            with ExitStack() as stack:
                admin = PG_ADMIN_URL
                if args.private_postgres:
                    admin = stack.enter_context(private_postgres())
                    print(f"private PostgreSQL at {admin}", flush=True)
                db_url = stack.enter_context(postgres_database(admin))
                return run(args, cpus, timed_ms, tmp, redis, db_url)
        finally:
            redis.kill()


def run(
    args: argparse.Namespace,
    cpus: list[int],
    timed_ms: float,
    tmp: Path,
    redis: RedisServer,
    db_url: str,
) -> int:
    from farm.db.migrate import upgrade

    upgrade(db_url)
    env = farm_env(db_url, redis.url)
    env["FARM_SPOOL_DIR"] = str(tmp / "spool")
    pool_mode = args.db_pool or (None if args.per_job else "null")
    if pool_mode:
        env["FARM_DB_POOL"] = pool_mode
    matrix = selftest_campaign(tmp / "matrix.yaml", args.jobs, args.work_ms, args.warmup,
                               args.iterations)  # fmt: skip
    print(f"{args.workers} worker(s) on CPUs {cpus}, {args.jobs} jobs of {timed_ms:g} ms timed "
          f"work, FARM_DB_POOL={pool_mode or '(default)'}", flush=True)  # fmt: skip
    submit_env = {k: v for k, v in env.items() if k != "FARM_DB_POOL"}
    with Fleet(args.workers, cpus, env, tmp) as fleet:
        stop = threading.Event()
        peak = connection_poller(db_url, stop)
        before, t0 = redis_commands(redis.port), time.monotonic()
        if args.per_job:  # the worker first: its start-up is not counted against its jobs
            fleet.start()
            cpu_before = fleet.cpu_seconds()
        # A fleet's campaign is queued first (a loaded host submits slowly): the fleet then
        # starts on a full queue, and its rate is read once every worker is up.
        out = farm("submit", str(matrix), env=submit_env, timeout=3600)
        if out.returncode != 0:
            print(f"farm submit failed: {out.stderr.strip()}")
            return 1
        campaign, submit_s = int(out.stdout.strip().splitlines()[-1]), time.monotonic() - t0
        print(f"submitted {args.jobs} jobs in {submit_s:.1f} s", flush=True)
        if not args.per_job:
            started = time.monotonic()
            fleet.start()
            cpu_before = fleet.cpu_seconds()
            print(f"fleet ready in {time.monotonic() - started:.1f} s", flush=True)
        ready = datetime.now(UTC)
        rows = fleet.drain(db_url, campaign, args.timeout)
        drained_s = time.monotonic() - t0
        after, cpu = redis_commands(redis.port), fleet.cpu_seconds() - cpu_before
        memory = fleet_memory(fleet.pids())
        torch_in = fleet.torch_imported()
        idle = redis_commands(redis.port)
        time.sleep(IDLE_S)
        idle = (redis_commands(redis.port) - idle - 1) / IDLE_S
        stop.set()
        dead = fleet.dead()
    print(f"idle fleet: {idle:.0f} Redis commands/s")
    report(args, rows, timed_ms, ready, drained_s, after - before, peak, memory,
           torch_in, dead, cpu)  # fmt: skip
    return 0 if _passed(args, rows, timed_ms, memory, dead) else 1


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return float("inf")


def report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    timed_ms: float,
    ready: datetime,
    drained_s: float,
    redis_ops: int,
    peak: dict[str, int],
    memory: tuple[float, float],
    torch_in: list[int],
    dead: list[str],
    cpu_s: float,
) -> None:
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    done = [r for r in rows if r["started_at"] and r["finished_at"]]
    span = (max(r["finished_at"] for r in done) - min(r["started_at"] for r in done)
            ).total_seconds() if done else math.nan  # fmt: skip
    rate = len(done) / span if span else math.nan
    print(f"drained {drained_s:.1f} s after the submit began")
    print(f"jobs: {len(rows)} {states}")
    print(f"jobs/s: {rate:.1f} (first start to last end, {span:.2f} s)")
    late = [r for r in done if r["started_at"] >= ready]
    if not args.per_job and late:
        window = (max(r["finished_at"] for r in late) - ready).total_seconds()
        print(f"jobs/s once every worker was up: {len(late) / window:.1f} ({len(late)} jobs "
              f"in {window:.1f} s)")  # fmt: skip
    if args.per_job:
        overhead = 1000 / rate - timed_ms if rate else math.nan
        aim = "met" if overhead < OVERHEAD_AIM_MS else "NOT met"
        print(f"overhead per job: {overhead:.1f} ms (wall per job {1000 / rate:.1f} ms - "
              f"{timed_ms:g} ms timed work); aim < {OVERHEAD_AIM_MS:g} ms: {aim}")  # fmt: skip
        inside, between = split_wall(done)
        print(f"  mean (median) claim to result {inside[0]:.1f} ({inside[1]:.1f}) ms, timed "
              f"work included; result to next claim {between[0]:.1f} ({between[1]:.1f}) ms "
              "(the broker and Celery); on a loaded host the medians say more")  # fmt: skip
    print(f"worker CPU per job: {1000 * cpu_s / max(len(done), 1):.1f} ms (user + system of "
          "every worker process, timed work included)")  # fmt: skip
    print(f"peak database connections: {peak['database']} to this database, "
          f"{peak['server']} on the server (max_connections {peak['max']})")  # fmt: skip
    print(f"Redis operations per job: {redis_ops / max(len(rows), 1):.1f} "
          f"({redis_ops} commands over the submit and the drain, the fleet's start-up and "
          "idle polling included)")  # fmt: skip
    rss, pss = memory
    print(f"fleet memory: RSS {rss:.2f} GB, PSS {pss:.2f} GB (aim RSS <= {RSS_AIM_GB:g} GB)")
    print(f"workers that imported torch: {len(torch_in)}; workers that died: {len(dead)}")
    for name in dead[:10]:
        print(f"  died: {name}")
    failed = [r for r in rows if r["state"] == "failed"]
    print(f"failures: {len(failed)}")
    for r in failed[:10]:
        print(f"  job {r['id']}: {r['error']}")


def split_wall(done: list[dict[str, Any]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(mean, median) ms from a job's claim to its result, and from a result to the next
    claim, one worker's jobs in order."""
    done = sorted(done, key=lambda r: r["started_at"])
    inside = [(r["finished_at"] - r["started_at"]).total_seconds() for r in done]
    pairs = itertools.pairwise(done)
    gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in pairs]

    def ms(xs: list[float]) -> tuple[float, float]:
        return (1000 * statistics.fmean(xs), 1000 * statistics.median(xs)) if xs else (
            math.nan, math.nan)  # fmt: skip

    return ms(inside), ms(gaps)


def _passed(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    timed_ms: float,
    memory: tuple[float, float],
    dead: list[str],
) -> bool:
    ok = all(r["state"] == "succeeded" for r in rows) and not dead
    return ok and memory[0] <= RSS_AIM_GB


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
