"""Nothing else runs in the timed region (issue 12, defect 1).

A job runs through `execute_job` with the real job store on PostgreSQL and the `selftest`
backend, its lease heartbeat due every second. A probe inside the timed callable reads,
at the first and the last timed call, how often every other Python thread of the process
has been switched in and out (/proc/self/task/<tid>/status): the counts must not move
between the two. The heartbeat must still beat outside the timed phase, so the check is
not vacuous.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.models import Job
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol
from farm.settings import Settings
from farm.workers.backends.base import Runner
from farm.workers.backends.selftest import SpinRunner
from farm.workers.execute import WorkerContext, execute_job

pytestmark = pytest.mark.integration

WARMUP, ITERATIONS, WORK_MS = 250, 250, 10  # 2.5 s of warm-up, 2.5 s timed


def switches() -> dict[str, int]:
    """Context switches so far of every live thread but the calling one, by thread name."""
    found = {}
    for thread in threading.enumerate():
        if thread is threading.current_thread():
            continue
        try:
            status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        except FileNotFoundError:
            continue  # ended meanwhile
        found[thread.name] = sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
    return found


class ProbeRunner(Runner):
    """The selftest spin, reading the other threads at phase edges (the probe's own reads
    fall outside the span it compares: before the first timed spin, after the last)."""

    def __init__(self, spec: JobSpec) -> None:
        self.inner = SpinRunner(spec)
        self.identity, self.tokenizer = self.inner.identity, self.inner.tokenizer
        self.seen: dict[str, Any] = {}

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        spin, calls = self.inner.bind(spec), [0]

        def call() -> None:
            calls[0] += 1
            n = calls[0]
            if n == WARMUP:  # the last warm-up call
                self.seen["warm-up threads"] = sorted(switches())
            if n == WARMUP + 1:
                self.seen["start"], self.seen["start_t"] = switches(), time.perf_counter()
            spin()
            if n == WARMUP + ITERATIONS:
                self.seen["end"], self.seen["end_t"] = switches(), time.perf_counter()

        return call


class SpyStore(DbJobStore):
    """The real store, recording when heartbeats and lease extensions happen."""

    beats: list[float]
    extensions: list[float]

    def heartbeat(self, job_id: int, lease: str) -> bool:
        self.beats.append(time.perf_counter())
        return super().heartbeat(job_id, lease)

    def extend(self, job_id: int, lease: str, seconds: float) -> bool:
        self.extensions.append(seconds)
        return super().extend(job_id, lease, seconds)


def test_no_other_thread_wakes_while_calls_are_timed(migrated_pg: str) -> None:
    factory = session_factory(migrated_pg)
    spec = JobSpec(
        model=ModelSpec(name="probe"),
        input_name="short",
        input_text="a b c",
        batch_size=1,
        backend="selftest",
        backend_options={"work_ms": WORK_MS, "crash": False},
        pool="a",
        protocol=Protocol(warmup=WARMUP, iterations=ITERATIONS),
    )
    with transaction(factory) as s:
        job_id = repo.create_campaign(s, "quiet", {}, [spec]).jobs[0].id
    store = SpyStore(factory)
    store.beats, store.extensions = [], []
    # lease TTL 1 s: the heartbeat is due every second, twice within the timed phase
    ctx = WorkerContext("w-quiet", "h", {}, Settings(database_url=migrated_pg, lease_ttl_s=1))
    probe = ProbeRunner(spec)
    ctx._runner = (spec.runner_key(), probe, 0.0)

    assert execute_job(store, job_id, ctx) == "succeeded"

    seen = probe.seen
    start, end = seen["start_t"], seen["end_t"]
    assert end - start >= ITERATIONS * WORK_MS / 1000  # the phase spans two beats at least
    # not vacuous: the heartbeat thread was there and beat during the warm-up, and again after
    assert f"farm-lease-{job_id}" in seen["warm-up threads"]
    assert [t for t in store.beats if t < start], "no heartbeat during the 2.5 s warm-up"
    woke = {
        name: seen["end"].get(name, "gone") for name in seen["start"]
        if seen["end"].get(name) != seen["start"][name]
    }  # fmt: skip
    assert not woke, f"threads woke in the timed phase (switches before: {seen['start']}, " \
        f"after: {seen['end']})"  # fmt: skip
    assert not [t for t in store.beats if start < t < end], "a heartbeat inside the timed phase"
    assert [t for t in store.beats if t > end], "no heartbeat after the timed phase"
    # the lease was extended once, over the whole phase
    assert len(store.extensions) == 1 and store.extensions[0] >= end - start
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "succeeded" and job.lease_until is None


def test_a_run_taken_over_in_its_warm_up_stops_and_writes_nothing(migrated_pg: str) -> None:
    """Another attempt claims the job while this run warms up: the extension before the
    timed phase is refused, so the run stops there, writing neither result nor failure."""
    factory = session_factory(migrated_pg)
    spec = JobSpec(model=ModelSpec(name="probe"), input_name="short", input_text="a b c",
                   batch_size=1, backend="selftest", pool="a",
                   protocol=Protocol(warmup=5, iterations=5))  # fmt: skip
    with transaction(factory) as s:
        job_id = repo.create_campaign(s, "lost", {}, [spec]).jobs[0].id
    calls = [0]

    class TakenOver(Runner):
        identity, tokenizer = SpinRunner(spec).identity, SpinRunner(spec).tokenizer

        def bind(self, _spec: JobSpec) -> Callable[[], Any]:
            def call() -> None:
                calls[0] += 1
                if calls[0] == 2:  # attempt B claims it (as after a lost lease)
                    with transaction(factory) as s:
                        assert repo.claim_job(s, job_id, "wB", "hostB:2",
                                              lease_alive=lambda _: False).reason == "claimed"

            return call

    ctx = WorkerContext("wA", "h", {}, Settings(database_url=migrated_pg))
    ctx._runner = (spec.runner_key(), TakenOver(), 0.0)
    assert execute_job(DbJobStore(factory), job_id, ctx) == "abandoned"
    assert calls[0] == 5  # the warm-up only: no timed call
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "running" and job.lease == "hostB:2"
        assert job.result is None and job.attempts == 2
