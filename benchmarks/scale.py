"""Large campaigns, measured (issue 13 §2): submit of 10,000 jobs; status and report of 100,000.

Part `submit`: the wall time of a `farm submit` process (start-up included) for a matrix of
`--jobs` selftest cells, against a plain loop of as many Celery `send_task` calls (one
producer, the messages Farm used to send one by one) timed in this process, alternating,
`--rounds` times each; the aim: median submit ≤ 0.4 × median loop.

Part `query`: a campaign of `--campaign-jobs` jobs written in bulk, with fake results and
end states written by PostgreSQL itself (tests/support/bigcampaign.py); then `farm status`
and `farm report` (the table, and --format csv) on it, each timed in this process (the
command's own code: its queries, the Python that shapes their rows and the rendering, not
the interpreter's start-up, printed beside as the process's wall time) against the bare
aggregate behind it — the SELECT ... GROUP BY the command needs, run through SQLAlchemy
Core and fetched. The aim: under 3× that.

Services: a private redis-server on a free port and a scratch PostgreSQL database, created
and dropped here (tests/support/services.py; PostgreSQL from FARM_TEST_POSTGRES).

    .venv/bin/python benchmarks/scale.py                      # both parts
    .venv/bin/python benchmarks/scale.py submit --jobs 10000 --rounds 3
    .venv/bin/python benchmarks/scale.py query --campaign-jobs 100000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.bigcampaign import seed, selftest_matrix  # noqa: E402
from tests.support.harness import FARM, farm_env  # noqa: E402
from tests.support.services import RedisServer, postgres_database  # noqa: E402

SUBMIT_AIM = 0.4  # × the plain send_task loop
QUERY_AIM = 3.0  # × the bare aggregate


def verdict(ratio: float, aim: float) -> str:
    return "met" if ratio <= aim else "MISSED"


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --- submit -------------------------------------------------------------------------------


def plain_loop(broker_url: str, jobs: int, queue: str) -> float:
    """Seconds for `jobs` send_task calls through one producer: what enqueue used to do."""
    from farm import MESSAGE_SCHEMA
    from farm.settings import Settings
    from farm.workers.app import TASK_NAME, create_app

    app = create_app(Settings.from_env(database_url="sqlite://", broker_url=broker_url))
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for job_id in range(jobs):
            app.send_task(TASK_NAME, args=[job_id], kwargs={"schema": MESSAGE_SCHEMA},
                          queue=queue, routing_key=queue, producer=producer)  # fmt: skip
    return time.perf_counter() - start


def waiting(redis_url: str) -> int:
    """Messages in every Redis list (every queue, every priority)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return sum(client.llen(k) for k in client.keys("*") if client.type(k) == b"list")
    finally:
        client.close()


def flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def part_submit(args: argparse.Namespace, db_url: str, redis_url: str, tmp: Path) -> bool:
    import yaml

    matrix = selftest_matrix(args.jobs, "scale-submit")
    path = tmp / "submit.yaml"
    path.write_text(yaml.safe_dump(matrix))
    queue = f"farm.{matrix['pools'][0]}"
    env = farm_env(db_url, redis_url)
    subprocess.run([FARM, "db", "upgrade"], env=env, check=True, capture_output=True)  # noqa: S603
    loops, submits = [], []
    for _ in range(args.rounds):
        flush(redis_url)
        loops.append(plain_loop(redis_url, args.jobs, queue))
        flush(redis_url)
        start = time.perf_counter()
        out = subprocess.run([FARM, "submit", str(path), "--max-jobs", str(args.jobs)],  # noqa: S603
                             env=env, capture_output=True, text=True, check=False)  # fmt: skip
        submits.append(time.perf_counter() - start)
        if out.returncode != 0:
            raise SystemExit(f"farm submit failed: {out.stderr}")
        sent = waiting(redis_url)
        if sent != args.jobs:
            raise SystemExit(f"farm submit left {sent} messages in Redis, not {args.jobs}")
    loop, submit = statistics.median(loops), statistics.median(submits)
    ratio = submit / loop
    print(f"submit of {args.jobs} jobs ({args.rounds} rounds, medians; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"  plain send_task loop : {loop:6.2f} s   (rounds: {_secs(loops)})")
    print(f"  farm submit process  : {submit:6.2f} s   (rounds: {_secs(submits)})")
    print(f"  ratio {ratio:.2f} (aim <= {SUBMIT_AIM}): {verdict(ratio, SUBMIT_AIM)}")
    return ratio <= SUBMIT_AIM


def _secs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# --- query --------------------------------------------------------------------------------


def bare_status(db_url: str, campaign: int) -> Callable[[], Any]:
    """The aggregates `farm status` needs, in Core: states per pool, waiting per queue."""
    from sqlalchemy import func, select

    from farm.db.models import Job
    from farm.db.session import get_engine

    engine = get_engine(db_url)
    states = (select(Job.pool, Job.state, func.count()).where(Job.campaign_id == campaign)
              .group_by(Job.pool, Job.state))  # fmt: skip
    waits = (select(Job.pool, Job.queue, Job.backend, func.count())
             .where(Job.campaign_id == campaign, Job.state.in_(("queued", "running")))
             .group_by(Job.pool, Job.queue, Job.backend))  # fmt: skip

    def run() -> None:
        with engine.connect() as conn:
            conn.execute(states).all()
            conn.execute(waits).all()

    return run


def bare_report(db_url: str, campaign: int) -> Callable[[], Any]:
    """The cell aggregate behind `farm report` (farm.db.reports.cells), run and fetched."""
    from farm.db.reports.cells import cell_statement
    from farm.db.reports.tuning import fetch_all
    from farm.db.session import session_factory, transaction

    factory = session_factory(db_url)

    def run() -> None:
        with transaction(factory) as session:
            fetch_all(session, cell_statement(session, [campaign])[0])

    return run


def farm_command(args: list[str], env: dict[str, str]) -> Callable[[], Any]:
    """The command run in this process (its code, not the interpreter's start-up)."""
    from click.testing import CliRunner

    from farm.cli.main import cli, commands

    for command in commands():
        cli.add_command(command)
    runner = CliRunner()

    def run() -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            result = runner.invoke(cli, args, env=env, catch_exceptions=False)
        if result.exit_code != 0:
            raise SystemExit(f"farm {' '.join(args)} failed: {result.output}")

    return run


def process_wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([FARM, *args], env=env, capture_output=True, check=True)  # noqa: S603
    return time.perf_counter() - start


def part_query(args: argparse.Namespace, db_url: str, redis_url: str) -> bool:
    from farm.db.migrate import upgrade

    upgrade(db_url)
    start = time.perf_counter()
    campaign = seed(db_url, args.campaign_jobs)
    took = time.perf_counter() - start
    print(f"query: campaign {campaign} of {args.campaign_jobs} jobs seeded in {took:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    env = farm_env(db_url, redis_url)
    ok = True
    commands = {
        "status": (["status", str(campaign)], bare_status(db_url, campaign)),
        "report": (["report", str(campaign)], bare_report(db_url, campaign)),
        "report --format csv": (["report", str(campaign), "--format", "csv"],
                                bare_report(db_url, campaign)),  # fmt: skip
    }
    for name, (argv, bare) in commands.items():
        bare()  # warm the caches the command will find warm too
        aggregate = best(bare, args.repeat)
        command = best(farm_command(argv, env), args.repeat)
        wall = process_wall(argv, env)
        ratio = command / aggregate
        ok &= ratio <= QUERY_AIM
        print(f"  farm {name:20}: {command:6.3f} s in-process, bare aggregate {aggregate:6.3f} s: "
              f"ratio {ratio:.2f} (aim < {QUERY_AIM}): {verdict(ratio, QUERY_AIM)}; "
              f"as a process {wall:.2f} s")  # fmt: skip
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help="submit and/or query [default: both]")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the submitted matrix")
    parser.add_argument("--campaign-jobs", type=int, default=100_000,
                        help="jobs in the campaign status and report read")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="submit: rounds (medians)")
    parser.add_argument("--repeat", type=int, default=3, help="query: best of this many")
    args = parser.parse_args()
    parts = args.parts or ["submit", "query"]
    if set(parts) - {"submit", "query"}:
        parser.error(f"unknown part(s) {sorted(set(parts) - {'submit', 'query'})}; "
                     "the parts are submit and query")  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="farm-scale-") as tmp:
        redis = RedisServer(os.environ.get("FARM_TEST_REDIS_SERVER", "redis-server"),
                            Path(tmp) / "redis.log")  # fmt: skip
        try:
            with postgres_database() as db_url:
                if "submit" in parts:
                    results["submit"] = part_submit(args, db_url, redis.url, Path(tmp))
                if "query" in parts:
                    results["query"] = part_query(args, db_url, redis.url)
        finally:
            redis.kill()
    print("aims: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in results.items()))


if __name__ == "__main__":
    main()
