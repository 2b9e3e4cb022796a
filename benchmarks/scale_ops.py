"""The cost of each queue and database operation one job makes, and the paper model built
from them (issue 13 §2): what a farm of `--hosts` hosts running a `--campaign`-job
campaign asks of its PostgreSQL and Redis per second.

A job's life, as the worker runs it: one message (LPUSH at submit, BRPOP and its ack at the
worker), the claim, heartbeats every FARM_LEASE_TTL/4 outside the timed phase, one lease
extension before the phase, the result. Each live worker's supervising process also beats
every FARM_WORKER_HEARTBEAT seconds (touch, spool, lease sweep). Each operation is timed
here through Farm's own code (farm.db.jobstore.DbJobStore, the Celery app's publish) against
a scratch PostgreSQL database and a private redis-server on loopback: a wall time per call
(client + server + one loopback round trip), median of `--calls`.

    .venv/bin/python benchmarks/scale_ops.py
    .venv/bin/python benchmarks/scale_ops.py --hosts 100 --campaign 100000 --job-seconds 60
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.bigcampaign import selftest_matrix  # noqa: E402
from tests.support.harness import result_fields  # noqa: E402
from tests.support.services import RedisServer, postgres_database, redis_binary  # noqa: E402


def per_call_ms(fn: Callable[[int], object], calls: int) -> float:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(db_url: str, redis_url: str, calls: int) -> dict[str, float]:
    from farm.broker import Message
    from farm.db import bulk
    from farm.db.jobstore import DbJobStore
    from farm.db.migrate import upgrade
    from farm.db.session import session_factory, transaction
    from farm.matrix import parse_matrix
    from farm.results import JobResult
    from farm.settings import Settings
    from farm.workers.app import create_app, enqueue_jobs

    upgrade(db_url)
    spec = parse_matrix(selftest_matrix(calls, "ops"))
    factory = session_factory(db_url)
    specs = spec.expand(max_jobs=calls)
    with transaction(factory) as session:
        _, ids = bulk.store_campaign(session, spec.name, spec.model_dump(mode="json"), specs)
    messages = [Message(i, s.queue) for i, s in zip(ids, specs, strict=True)]
    store = DbJobStore(factory)
    store.register_worker(name="w", pool="a", hostname="h", pid=1, cpus="0", threads=1,
                          fingerprint={}, queues=[], allocator="default",
                          hardware_class="x")  # fmt: skip
    result = JobResult(**result_fields())  # type: ignore[arg-type]
    costs = {
        "claim": per_call_ms(lambda i: store.claim(ids[i], "w", f"h:{i}", 60, 3), calls),
        "heartbeat": per_call_ms(lambda i: store.heartbeat(ids[i], f"h:{i}"), calls),
        "extend": per_call_ms(lambda i: store.extend(ids[i], f"h:{i}", 60), calls),
        "complete": per_call_ms(lambda i: store.complete(ids[i], result, f"h:{i}"), calls),
        "touch": per_call_ms(lambda i: store.touch_worker("w"), calls),
        "sweep": per_call_ms(lambda i: store.requeue_expired(60, lambda m: None), calls),
    }
    app = create_app(Settings(database_url=db_url, broker_url=redis_url))
    costs["publish (bulk, per message)"] = (
        per_call_ms(lambda i: enqueue_jobs(app, messages), 3) / len(messages)
    )
    conn = app.connection_for_read()
    queue = conn.SimpleQueue(messages[0].queue, no_ack=False)
    def pop(_: int) -> None:
        queue.get(timeout=5).ack()
    costs["consume + ack (per message)"] = per_call_ms(pop, calls)
    queue.close()
    conn.close()
    return costs


def paper_model(costs: dict[str, float], hosts: int, campaign: int, job_s: float,
                lease_ttl: float, heartbeat: float) -> list[str]:  # fmt: skip
    """What a farm asks of its database and broker per second, and what each job waits on
    them, at the per-operation costs measured here. The wall times include each commit's
    WAL flush (synchronous_commit), which PostgreSQL shares between concurrent commits: they
    bound one worker's latency, not the server's throughput."""
    jobs_per_s = hosts / job_s
    beats = max(1.0, job_s * 0.1 / (lease_ttl / 4))  # untimed part of a job: ~10 %
    per_job = {"claim": 1.0, "extend": 1.0, "complete": 1.0, "heartbeat": beats}
    txn_s = jobs_per_s * sum(per_job.values()) + hosts * 2 / heartbeat
    wait_ms = sum(costs[k] * n for k, n in per_job.items())
    publish_s = campaign * costs["publish (bulk, per message)"] / 1000
    return [
        f"{hosts} hosts, one job at a time each, {job_s:g} s a job: {jobs_per_s:.1f} jobs/s; "
        f"a {campaign:,}-job campaign takes {campaign / jobs_per_s / 3600:.1f} h",
        f"  submit: {campaign:,} messages published in {publish_s:.1f} s",
        f"  database: {txn_s:.0f} transactions/s (claim, lease extension, result and "
        f"{beats:.1f} heartbeats a job; each host's touch and sweep every {heartbeat:g} s)",
        f"  broker: {jobs_per_s * 2 + hosts:.0f} operations/s (BRPOP and ack a job; an idle "
        f"consumer's BRPOP returns each second)",
        f"  a job waits {wait_ms:.0f} ms on the database: {wait_ms / 10 / job_s:.2f} % of it",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--campaign", type=int, default=100_000)
    parser.add_argument("--job-seconds", type=float, default=60.0,
                        help="a job's whole duration, e.g. the seed's 1,100 calls")  # fmt: skip
    parser.add_argument("--lease-ttl", type=float, default=60.0)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as db_url:
        redis = RedisServer(redis_binary(), Path(tmp) / "redis.log")
        try:
            costs = measure(db_url, redis.url, args.calls)
        finally:
            redis.kill()
    print(f"per operation, median of {args.calls} (ms, wall: client + server + loopback):")
    for name, ms in costs.items():
        print(f"  {name:<30} {ms:7.3f}")
    for job_s in sorted({args.job_seconds, 1.0}, reverse=True):
        print()
        for line in paper_model(costs, args.hosts, args.campaign, job_s, args.lease_ttl,
                                args.heartbeat):  # fmt: skip
            print(line)


if __name__ == "__main__":
    main()
