"""`farm status` and waiting on a campaign: where its jobs are, and why some may wait forever."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from farm.app.ports import CampaignStore, OnProgress, Snapshot, WorkerRow
from farm.errors import FarmError
from farm.hardware import mixed_pools
from farm.settings import parse_cpu_list
from farm.stacks import queue_cpus, queue_parts


@dataclass(frozen=True)
class Status:
    snapshot: Snapshot
    live_pools: set[str]
    warnings: list[str]  # waiting jobs no live worker will take, pools mixing hardware


def status(store: CampaignStore, ref: str | None, worker_ttl_s: int) -> Status:
    snap = store.snapshot(ref, worker_ttl_s)
    warnings = waiting_warnings(snap.waiting, snap.live_workers)
    mixed = mixed_pools((w.pool, w.hardware_class) for w in snap.live_workers)
    warnings += [
        f"pool {pool!r} mixes hardware classes: {', '.join(sorted(classes))}; "
        "its numbers mix machines"
        for pool, classes in sorted(mixed.items())
    ]
    return Status(snap, {w.pool for w in snap.live_workers}, warnings)


def waiting_warnings(
    waiting: dict[tuple[str, str, str], int], live_workers: Sequence[WorkerRow]
) -> list[str]:
    """Why waiting jobs may wait forever: no live worker serves their queue, or none of
    those that do can run their backend (each worker registered why not)."""
    warnings = []
    live_pools = {w.pool for w in live_workers}
    by_queue: dict[tuple[str, str], dict[str, int]] = {}
    for (pool, queue, backend), n in sorted(waiting.items()):
        by_queue.setdefault((pool, queue), {})[backend] = n
    for (pool, queue), backends in by_queue.items():
        # A queue nobody takes is one warning for all its jobs, whatever their backends.
        serving = [w for w in live_workers if queue in (w.queues or [f"farm.{w.pool}"])]
        head = _waiting(sum(backends.values()), pool)
        _, stack, allocator = queue_parts(queue)
        start = f"farm worker --pool {pool}" + (
            f" --allocator {allocator}" if allocator != "default" else ""
        )
        need = queue_cpus(queue)
        base = queue.rpartition(".")[0] if need else queue
        fitting = [w for w in live_workers if base in (w.queues or [])]
        if not serving and pool not in live_pools:
            elsewhere = f" in the {stack} stack" if stack != "main" else ""
            warnings.append(f"{head} no live worker serves that pool: start `{start}`{elsewhere}")
        elif not serving and fitting:
            have = ", ".join(f"worker {w.name} has {len(parse_cpu_list(w.cpus or ''))}"
                             for w in fitting)  # fmt: skip
            warnings.append(
                f"{head} no live worker of that pool has the CPUs they need at once — waiting: "
                f"needs {need} CPUs (instances x cores_per_instance), {have}; start "
                f"`{start} --cpus LIST` with at least {need} CPUs"
            )
        elif not serving:
            warnings.append(
                f"{head} no live worker of that pool can run them (they need allocator "
                f"{allocator}, stack {stack}): start `{start}` in the {stack} stack"
            )
        else:
            for backend, n in backends.items():
                reasons = [w.fingerprint.get("backends", {}).get(backend) for w in serving]
                if all(reasons):
                    warnings.append(
                        f"{_waiting(n, pool)} no live worker of that pool can run backend "
                        f"{backend!r}: {reasons[0]}"
                    )
    return warnings


def _waiting(n: int, pool: str) -> str:
    return f"{n} job(s) of pool {pool!r} are waiting and"


def wait_for_campaign(
    store: CampaignStore,
    campaign_id: int,
    total: int,
    on_progress: OnProgress,
    timeout: float | None = None,
    poll_s: float = 1.0,
) -> None:
    """Until every job has ended (or the timeout, which is an error); progress each poll."""
    start = time.monotonic()
    while True:
        done, failed = store.progress(campaign_id)
        on_progress(campaign_id, done, failed, total)
        if done >= total:
            return
        if timeout is not None and time.monotonic() - start > timeout:
            raise FarmError(
                f"campaign {campaign_id}: {total - done} job(s) still unfinished after "
                f"{timeout:.0f} s; `farm status {campaign_id}` shows where they wait"
            )
        time.sleep(poll_s)
