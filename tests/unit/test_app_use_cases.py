"""The use cases over in-memory adapters: no database, no broker, no worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from farm.app.calibrate import calibrate, relative_gap
from farm.app.campaigns import delete, rerun, retry, submit
from farm.app.embedded import run_embedded
from farm.app.ports import Cancelled, NoiseFloor, Retried, Snapshot, Stored, Summary
from farm.app.publish import publish
from farm.app.recover import recover
from farm.app.status import status, wait_for_campaign
from farm.broker import Message
from farm.errors import FarmError, NotFound, ServiceUnavailable
from farm.jobs import JobSpec
from tests.support.broker import MemoryBroker


def _spec(pool: str = "icelake", batch: int = 1, allocator: str = "default") -> JobSpec:
    return JobSpec.model_validate(
        {"model": {"name": "m"}, "input_name": "short", "input_text": "hi", "batch_size": batch,
         "backend": "pytorch", "pool": pool, "allocator": allocator}
    )  # fmt: skip


@dataclass
class MemoryStore:
    """The campaign store port in a dict: jobs are SimpleNamespaces with a state."""

    jobs: dict[int, SimpleNamespace] = field(default_factory=dict)
    campaigns: dict[int, SimpleNamespace] = field(default_factory=dict)
    workers: list[SimpleNamespace] = field(default_factory=list)
    calibrations: list[NoiseFloor] = field(default_factory=list)

    def create_campaign(
        self, name: str, matrix: dict[str, Any], jobs: list[JobSpec], priority: str = "normal"
    ) -> Stored:
        cid = len(self.campaigns) + 1
        self.campaigns[cid] = SimpleNamespace(id=cid, name=name, created_at=datetime.now(),
                                              priority=priority)  # fmt: skip
        messages = []
        for spec in jobs:
            jid = len(self.jobs) + 1
            self.jobs[jid] = SimpleNamespace(
                id=jid, campaign=cid, state="queued", queue=spec.queue, pool=spec.pool,
                worker=spec.worker, error=None, result=None, spec=spec,
            )  # fmt: skip
            messages.append(Message(jid, spec.queue, priority))
        return Stored(cid, name, messages)

    def delete_campaign(self, campaign_id: int) -> None:
        del self.campaigns[campaign_id]
        self.jobs = {k: j for k, j in self.jobs.items() if j.campaign != campaign_id}

    def find_campaign(self, ref: str | None) -> Any:
        if ref is None or not ref.isdigit() or int(ref) not in self.campaigns:
            raise NotFound(f"unknown campaign {ref!r}")
        return self.campaigns[int(ref)]

    def of(self, campaign_id: int | None) -> list[SimpleNamespace]:
        return [j for j in self.jobs.values() if campaign_id in (None, j.campaign)]

    def progress(self, campaign_id: int) -> tuple[int, int]:
        ended = [j for j in self.of(campaign_id) if j.state in ("succeeded", "failed")]
        return len(ended), sum(1 for j in ended if j.state == "failed")

    def snapshot(self, ref: str | None, worker_ttl_s: int) -> Snapshot:
        found = self.find_campaign(ref)
        waiting: dict[tuple[str, str, str], int] = {}
        for j in self.of(found.id):
            key = (j.pool, j.queue, "pytorch")
            waiting[key] = waiting.get(key, 0) + 1
        return Snapshot(found, {}, self.workers, waiting, [])

    def campaign_jobs(self, campaign_id: int) -> list[Any]:
        return self.of(campaign_id)

    def queued_messages(self, campaign_id: int | None) -> list[Message]:
        return [Message(j.id, j.queue, self.campaigns[j.campaign].priority)
                for j in self.of(campaign_id) if j.state == "queued"]  # fmt: skip

    def list_campaigns(self, limit: int) -> list[Any]:
        return []

    def live_workers(self, ttl_s: int) -> list[Any]:
        return self.workers

    def cancel(self, ref: str) -> Cancelled:
        raise NotImplementedError

    def retry(self, ref: str, max_attempts: int) -> Retried:
        found = self.find_campaign(ref)
        failed = [j for j in self.of(found.id) if j.state == "failed"]
        previous: dict[int, tuple[str | None, datetime | None]] = {}
        for j in failed:
            previous[j.id] = (j.error, None)
            j.state, j.error = "queued", f"previous attempt: {j.error}"
        messages = [Message(j.id, j.queue, found.priority) for j in failed]
        return Retried(found.id, found.name, messages, previous)

    def undo_retry(self, retried: Retried) -> int:
        for job_id, (error, _) in retried.previous.items():
            self.jobs[job_id].state, self.jobs[job_id].error = "failed", error
        return len(retried.previous)

    def rerun(self, ref: str, pool: str) -> tuple[Stored, int]:
        old = self.find_campaign(ref)
        specs = [j.spec.model_copy(update={"pool": pool}) for j in self.of(old.id)]
        return self.create_campaign(old.name, {}, specs, old.priority), old.id

    def describe(self, ref: str) -> Summary:
        found = self.find_campaign(ref)
        return Summary(found.id, found.name, len(self.of(found.id)), 0, 0)

    def record_calibrations(self, calibrations: Sequence[NoiseFloor]) -> None:
        self.calibrations += calibrations


def test_publish_sends_and_counts() -> None:
    broker = MemoryBroker()
    assert publish(broker, [(1, "farm.a"), (2, "farm.b")]) == 2
    assert broker.pending({"farm.a"}) == {1}
    assert publish(broker, []) == 0


def test_publish_undoes_then_says_why_or_reraises() -> None:
    undone: list[bool] = []
    with pytest.raises(FarmError, match=r"^lost \(ConnectionError\)$"):
        publish(MemoryBroker(fail_after=0), [(1, "q")], lambda: undone.append(True),
                lambda error: f"lost ({error})")  # fmt: skip
    assert undone == [True]
    with pytest.raises(ConnectionError):
        publish(MemoryBroker(fail_after=0), [(1, "q")])


def test_submit_stores_then_sends() -> None:
    store, broker = MemoryStore(), MemoryBroker()
    stored = submit(store, broker, "c", {}, [_spec(batch=1), _spec(batch=2)])
    assert sorted(broker.sent()) == sorted(stored.messages)
    assert len(stored.messages) == 2


def test_every_send_carries_the_campaigns_priority() -> None:
    """Submit, retry, re-run and recover send at the priority the campaign was submitted at."""
    store, broker = MemoryStore(), MemoryBroker()
    stored = submit(store, broker, "c", {}, [_spec(batch=1), _spec(batch=2)], "high")
    assert {m.priority for m in broker.sent()} == {"high"}
    store.jobs[1].state = "failed"
    broker.queues.clear()
    retry(store, broker, str(stored.campaign_id), 3)
    assert broker.sent() == [Message(1, "farm.icelake", "high")]
    new = rerun(store, broker, str(stored.campaign_id), "zen4")
    assert {m.priority for m in new.stored.messages} == {"high"}
    submit(store, broker, "later", {}, [_spec(batch=8)], "low")
    broker.queues.clear()
    recover(store, broker, lambda campaign_id: (0, 0), None)
    assert {(m.job_id, m.priority) for m in broker.sent()} == {
        (1, "high"), (2, "high"), (3, "high"), (4, "high"), (5, "low")
    }


def test_submit_refuses_an_unknown_priority_before_storing() -> None:
    store = MemoryStore()
    with pytest.raises(FarmError, match="unknown priority 'urgent'; use one of high, normal, low"):
        submit(store, MemoryBroker(), "c", {}, [_spec()], "urgent")
    assert store.jobs == {}


def test_submit_with_the_broker_down_stores_nothing() -> None:
    store = MemoryStore()
    with pytest.raises(ServiceUnavailable):
        submit(store, MemoryBroker(down=True), "c", {}, [_spec()])
    assert store.jobs == {}


def test_submit_that_cannot_send_leaves_its_jobs_queued_and_says_so() -> None:
    store = MemoryStore()
    with pytest.raises(FarmError, match="its jobs stay queued in the database"):
        submit(store, MemoryBroker(fail_after=1), "c", {}, [_spec(batch=1), _spec(batch=2)])
    assert [j.state for j in store.jobs.values()] == ["queued", "queued"]


def test_retry_that_cannot_send_fails_the_jobs_again() -> None:
    store = MemoryStore()
    stored = store.create_campaign("c", {}, [_spec()])
    store.jobs[1].state, store.jobs[1].error = "failed", "boom"
    with pytest.raises(FarmError, match="they are failed again, as before"):
        retry(store, MemoryBroker(fail_after=0), str(stored.campaign_id), 3)
    assert (store.jobs[1].state, store.jobs[1].error) == ("failed", "boom")
    broker = MemoryBroker()
    retried = retry(store, broker, "1", 3)
    assert broker.sent() == retried.messages == [Message(1, "farm.icelake")]


def test_rerun_that_cannot_send_stores_nothing() -> None:
    store = MemoryStore()
    store.create_campaign("c", {}, [_spec()])
    with pytest.raises(FarmError, match=r"re-run of campaign 1: .*nothing was stored"):
        rerun(store, MemoryBroker(fail_after=0), "1", "zen4")
    assert list(store.campaigns) == [1]
    done = rerun(store, MemoryBroker(), "1", "zen4")
    assert (done.rerun_of, done.stored.messages) == (1, [Message(2, "farm.zen4")])


def test_delete_asks_before_deleting() -> None:
    store = MemoryStore()
    store.create_campaign("c", {}, [_spec()])

    def refuse(_: Summary) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        delete(store, "1", refuse)
    assert 1 in store.campaigns
    assert delete(store, "1", lambda _: None).jobs == 1
    assert store.campaigns == {}


def test_recover_resends_only_queued_jobs_with_no_message() -> None:
    store, broker = MemoryStore(), MemoryBroker()
    store.create_campaign("c", {}, [_spec(batch=1), _spec(batch=2), _spec(batch=4)])
    broker.enqueue([(1, "farm.icelake")])
    store.jobs[3].state = "running"
    done = recover(store, broker, lambda campaign_id: (2, 0), "1")
    assert (done.spooled, done.requeued, done.resent, done.pending) == (2, 0, 1, 1)
    assert sorted(broker.pending({"farm.icelake"})) == [1, 2]


def test_status_warns_about_pools_no_worker_serves() -> None:
    store = MemoryStore()
    store.create_campaign("c", {}, [_spec(pool="zen4")])
    found = status(store, "1", 60)
    assert found.live_pools == set()
    assert found.warnings == [
        "1 job(s) of pool 'zen4' are waiting and no live worker serves that pool: "
        "start `farm worker --pool zen4`"
    ]


def test_wait_reports_progress_and_times_out() -> None:
    store = MemoryStore()
    store.create_campaign("c", {}, [_spec()])
    seen: list[tuple[int, int, int, int]] = []
    with pytest.raises(FarmError, match=r"1 job\(s\) still unfinished after 0 s"):
        wait_for_campaign(store, 1, 1, lambda *a: seen.append(a), timeout=0.0, poll_s=0.01)
    store.jobs[1].state = "failed"
    wait_for_campaign(store, 1, 1, lambda *a: seen.append(a))
    assert seen[0] == (1, 0, 0, 1) and seen[-1] == (1, 1, 1, 1)


def test_calibrate_records_each_hosts_gap() -> None:
    store, broker = MemoryStore(), MemoryBroker()
    store.workers = [SimpleNamespace(name="w1", pool="p", hostname="h1")]

    def finish(campaign_id: int, done: int, failed: int, total: int) -> None:
        for job, ms in zip(store.of(campaign_id), (10.0, 11.0), strict=True):
            job.state, job.result = "succeeded", SimpleNamespace(mean_ms=ms, p99_ms=2 * ms)

    done = calibrate(store, broker, "p", iterations=10, warmup=0, timeout=5, worker_ttl_s=60,
                     on_progress=finish)  # fmt: skip
    assert len(broker.sent()) == 2
    [host] = done.hosts
    assert host.mean_noise == pytest.approx(relative_gap(10, 11))
    assert [c.worker for c in store.calibrations] == ["w1"]
    with pytest.raises(FarmError, match="no live worker in pool 'q'"):
        calibrate(store, broker, "q", iterations=10, warmup=0, timeout=5, worker_ttl_s=60,
                  on_progress=finish)  # fmt: skip


def test_embedded_run_prepares_once_and_runs_every_job_here() -> None:
    store, calls = MemoryStore(), []

    class Runner:
        def prepare(self, allocator: str, cpus: set[int] | None, threads: int | None) -> None:
            calls.append(("prepare", allocator))

        def run(self, job_id: int) -> None:
            calls.append(("run", job_id))

    ticks: list[tuple[int, int, int]] = []
    cid = run_embedded(store, Runner(), "c", {}, [_spec(batch=1), _spec(batch=2)], cpus=None,
                       threads=None, on_job=lambda *a: ticks.append(a))  # fmt: skip
    assert calls == [("prepare", "default"), ("run", 1), ("run", 2)]
    assert ticks == [(cid, 0, 2), (cid, 1, 2), (cid, 2, 2)]
    with pytest.raises(FarmError, match="one allocator per run"):
        run_embedded(store, Runner(), "c", {}, [_spec(), _spec(allocator="tcmalloc")], cpus=None,
                     threads=None, on_job=lambda *a: None)  # fmt: skip
