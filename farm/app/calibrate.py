"""`farm calibrate`: a host's noise floor, from the same A/A cell measured twice on it;
`farm calibrate --peak`: its roof, a GEMM measured by each worker in its own pinning.

Reports and `farm compare` treat differences smaller than this floor as not meaningful;
efficiency (% of peak) is read against the roof.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from farm.app.ports import CampaignStore, NoiseFloor, OnProgress, ResultRow
from farm.app.publish import publish
from farm.app.status import wait_for_campaign
from farm.broker import Broker
from farm.errors import FarmError
from farm.jobs import JobSpec, ModelSpec, direct_queue
from farm.protocol import Protocol

# The fixed A/A cell: a real small model shipped in a package, the blog's short sentence.
CELL = {
    "model": ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2"),
    "input_name": "short",
    "input_text": "This is a really nice pair of shoes, I am completely satisfied with my purchase",
    "batch_size": 1,
    "backend": "pytorch",
    "backend_options": {"dtype": "fp32"},
}


def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2) if a + b > 0 else 0.0


@dataclass(frozen=True)
class HostNoise:
    """One worker's two runs and their gaps; `runs` is None when either run failed."""

    worker: str
    host: str
    runs: tuple[ResultRow, ResultRow] | None
    mean_noise: float = 0.0
    p99_noise: float = 0.0


@dataclass(frozen=True)
class Calibrated:
    campaign_id: int
    hosts: list[HostNoise]


def calibrate(
    store: CampaignStore,
    broker: Broker,
    pool: str,
    *,
    iterations: int,
    warmup: int,
    timeout: float,
    worker_ttl_s: int,
    on_progress: OnProgress,
) -> Calibrated:
    """Run the A/A cell twice on each live worker of `pool` and record its noise floor."""
    broker.check()
    workers = [w for w in store.live_workers(worker_ttl_s) if w.pool == pool]
    if not workers:
        raise FarmError(
            f"no live worker in pool {pool!r}; start one with `farm worker --pool {pool}`"
        )
    protocol = Protocol(warmup=warmup, iterations=iterations)
    specs = [
        JobSpec(**CELL, pool=pool, protocol=protocol, repeat=r, worker=w.name)  # type: ignore[arg-type]
        for w in workers
        for r in (0, 1)
    ]
    stored = store.create_campaign(f"calibrate-{pool}", {"calibrate": pool}, specs)
    publish(broker, stored.messages)  # a failed send is the broker's own error, as it was
    total = len(stored.messages)
    wait_for_campaign(store, stored.campaign_id, total, on_progress, timeout=timeout)
    jobs = store.campaign_jobs(stored.campaign_id)
    hosts: list[HostNoise] = []
    records: list[NoiseFloor] = []
    for worker in workers:
        runs = [j for j in jobs if j.worker == worker.name]
        results = [j.result for j in runs if j.result is not None]
        if len(results) != 2:
            hosts.append(HostNoise(worker.name, worker.hostname, None))
            continue
        a, b = results
        mean_noise, p99_noise = relative_gap(a.mean_ms, b.mean_ms), relative_gap(a.p99_ms, b.p99_ms)
        records.append(
            NoiseFloor(
                pool, worker.name, worker.hostname, mean_noise, p99_noise, [j.id for j in runs]
            )  # fmt: skip
        )
        hosts.append(HostNoise(worker.name, worker.hostname, (a, b), mean_noise, p99_noise))
    store.record_calibrations(records)
    return Calibrated(stored.campaign_id, hosts)


@dataclass(frozen=True)
class HostPeak:
    """One worker's measured peak; `peak` is None when it did not answer in time."""

    worker: str
    host: str
    peak: dict[str, Any] | None


def calibrate_peak(
    store: CampaignStore,
    broker: Broker,
    pool: str,
    *,
    sizes: Sequence[int],
    repeats: int,
    timeout: float,
    worker_ttl_s: int,
    sleep: Callable[[float], None] = time.sleep,
) -> list[HostPeak]:
    """Ask each live worker of `pool`, through its own queue, to measure its GEMM peak (after
    the job in hand: a worker runs one thing at a time) and wait for their answers."""
    broker.check()
    workers = {w.name: w for w in store.live_workers(worker_ttl_s) if w.pool == pool}
    if not workers:
        raise FarmError(
            f"no live worker in pool {pool!r}; start one with `farm worker --pool {pool}`"
        )
    request = uuid.uuid4().hex  # the answer is the stored peak carrying it: no clocks compared
    for name in workers:
        broker.request_peak(direct_queue(name), request, list(sizes), repeats)
    deadline = time.monotonic() + timeout
    answered: dict[str, dict[str, Any]] = {}
    while True:
        for w in store.live_workers(worker_ttl_s):
            peak = w.peak or {}
            if w.name in workers and peak.get("request") == request:
                answered[w.name] = dict(peak)
        if len(answered) == len(workers) or time.monotonic() >= deadline:
            break
        sleep(0.5)
    return [HostPeak(n, w.hostname, answered.get(n)) for n, w in sorted(workers.items())]
