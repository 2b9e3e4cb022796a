"""`farm worker`: pin, register the host, then serve the pool's queue one job at a time."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from farm.db.jobstore import DbJobStore
from farm.db.session import check_database, session_factory
from farm.jobs import direct_queue, queue_for
from farm.settings import Settings
from farm.stacks import cpu_queues
from farm.store import JobStore, failure_name
from farm.workers import spool
from farm.workers.allocator import ensure_allocator
from farm.workers.app import check_broker, create_app
from farm.workers.cpuclaim import DEFAULT_DIR, claim_cpus
from farm.workers.execute import WorkerContext
from farm.workers.pinning import pin
from farm.workers.probe import host_fingerprint
from farm.workers.quiet import between_phases, phase_lock_file
from farm.workers.recover import recover_expired
from farm.workers.tasks import register_tasks

log = logging.getLogger("farm.worker")


def default_name(pool: str) -> str:
    return f"{pool}@{socket.gethostname()}"


def worker_queues(pool: str, allocator: str, stack: str, name: str, cpus: int = 1) -> list[str]:
    """The pool's queue for this stack and allocator, the queues of the throughput jobs
    that fit in its `cpus` CPUs (instances x cores_per_instance), and one of its own
    (`farm calibrate`). A throughput job that fits no live worker waits in its queue."""
    return [*cpu_queues(queue_for(pool, allocator, stack), cpus), direct_queue(name)]


def register(
    store: JobStore,
    settings: Settings,
    name: str,
    pool: str,
    fingerprint: dict[str, Any],
    threads: int,
    queues: list[str],
) -> WorkerContext:
    """Record this process as a worker of `pool` (its host, pinning, queues) and return the
    context its jobs run in; the Celery worker and the embedded `farm run` both use it."""
    store.register_worker(
        name=name,
        pool=pool,
        hostname=fingerprint["hostname"],
        pid=os.getpid(),
        cpus=",".join(map(str, sorted(os.sched_getaffinity(0)))),
        threads=threads,
        fingerprint=fingerprint,
        queues=queues,
        allocator=fingerprint["allocator"],
        hardware_class=fingerprint["hardware_class"],
    )
    return WorkerContext(
        name=name,
        host=fingerprint["hostname"],
        fingerprint=fingerprint,
        settings=settings,
        threads=threads,
        peak=store.worker_peak(name),  # kept by register_worker only if it still holds
    )


def run_worker(
    settings: Settings,
    pool: str,
    name: str | None,
    cpus: set[int] | None,
    threads: int | None,
    loglevel: str = "INFO",
    allocator: str = "default",
    claim: int | None = None,
    claim_dir: str = DEFAULT_DIR,
) -> int:
    """Serve until SIGTERM or `farm hosts drain`; Celery's exit status (0: a clean stop).
    `claim`: pin to that many of `cpus` (or of all allowed) that no other worker holds."""
    ensure_allocator(allocator)  # may re-exec this process with LD_PRELOAD set
    if claim:
        cpus = claim_cpus(cpus or os.sched_getaffinity(0), claim, Path(claim_dir))
    name = name or default_name(pool)
    count = pin(cpus, threads)
    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    fingerprint = host_fingerprint(allocator)
    queues = worker_queues(
        pool, allocator, fingerprint["stack"], name, len(os.sched_getaffinity(0))
    )
    store = DbJobStore(session_factory(settings.database_url))
    ctx = register(store, settings, name, pool, fingerprint, count, queues)
    ctx.phase_lock = lock = phase_lock_file()
    register_tasks(app, ctx, settings.database_url)
    # Started once the pool child exists, so no thread is running when Celery forks.
    worker_ready.connect(
        lambda **_: _start_heartbeat(store, name, settings, lock, app), weak=False
    )
    log.info("worker %s serving %s with %s thread(s)", name, ", ".join(queues), count)
    try:
        # Celery's worker class itself, not its command line (`worker_main`): that CLI
        # loads ~400 modules (click-repl, prompt_toolkit, plugins' commands such as
        # Flower's) in every worker process, ~20 MB each — a fleet of many workers on one
        # host pays it twice per worker.
        worker = app.Worker(hostname=name, queues=queues, concurrency=1, pool_cls="prefork",
                            prefetch_multiplier=1, loglevel=loglevel, without_gossip=True,
                            without_mingle=True)  # fmt: skip
        worker.start()
    finally:
        Path(lock).unlink(missing_ok=True)
    code = int(worker.exitcode or 0)
    if not code:
        try:  # the job in hand is written: `farm hosts` and `farm status` show it gone
            store.worker_stopped(name)
        except Exception as exc:
            log.warning("could not record this worker's stop: %s", failure_name(exc))
    return code


def _start_heartbeat(
    store: JobStore, name: str, settings: Settings, lock: str, app: Celery
) -> None:
    """From the parent: keep `last_seen` fresh, write results spooled during an outage,
    re-queue jobs whose lease expired (a host lost to the network), and stop as SIGTERM does
    once `farm hosts drain` marks this worker (Celery's warm shutdown: no new job is taken,
    the one in hand is finished and written, an unstarted message goes back to its queue);
    never while the child times calls (it holds `lock` then: this thread sleeps on it)."""

    def beat() -> None:
        draining = False
        while True:
            drain = False
            with between_phases(lock):
                try:
                    store.touch_worker(name)
                    spool.flush(store, settings.spool_dir)
                    recover_expired(store, app, settings)
                except Exception as exc:  # the database or broker may blip; keep serving
                    log.warning("heartbeat failed: %s", failure_name(exc))
                try:
                    drain = not draining and store.drain_requested(name)
                except Exception as exc:  # ask again at the next beat
                    log.warning("drain check failed: %s", failure_name(exc))
            if drain:  # once; the beats go on while the job in hand ends
                log.warning("worker %s: drain requested (farm hosts drain); finishing the job "
                            "in hand, then exiting", name)  # fmt: skip
                os.kill(os.getpid(), signal.SIGTERM)
                draining = True
            threading.Event().wait(settings.worker_heartbeat_s)

    threading.Thread(target=beat, name="farm-heartbeat", daemon=True).start()
