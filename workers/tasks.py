"""The Celery task: the message carries a job id and a schema version, nothing else."""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_init, worker_process_init

from farm import MESSAGE_SCHEMA
from farm.db.jobstore import DbJobStore
from farm.db.session import get_engine, session_factory
from farm.store import failure_name
from farm.workers.app import PEAK_TASK, TASK_NAME
from farm.workers.execute import WorkerContext, execute_job
from farm.workers.peak import ensure_peak, refresh_peak, valid_request

log = logging.getLogger("farm.worker")


def register_tasks(app: Celery, ctx: WorkerContext, database_url: str) -> None:
    """Bind the task to this worker's context (no import-time globals)."""

    @app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        Strategy="farm.workers.guard:strategy",  # malformed messages are dropped, not fatal
    )
    def run_job(self: Task, job_id: Any, schema: Any = None, **_: Any) -> str:
        if schema != MESSAGE_SCHEMA:
            log.error(
                "message schema %r is not %s (another Farm version?); dropped",
                schema,
                MESSAGE_SCHEMA,
            )
            return "rejected"
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            log.error("message job id %r is not an integer; dropped", job_id)
            return "rejected"
        return execute_job(DbJobStore(session_factory(database_url)), job_id, ctx)

    @app.task(name=PEAK_TASK, Strategy="farm.workers.guard:strategy")
    def measure_peak(schema: Any = None, request: Any = None, sizes: Any = None,
                     repeats: Any = None, **_: Any) -> str:  # fmt: skip
        why = valid_request(sizes, repeats)
        if schema != MESSAGE_SCHEMA or not isinstance(request, str) or why:
            log.error("peak request dropped: %s", why or "wrong schema or request id")
            return "rejected"
        peak = refresh_peak(DbJobStore(session_factory(database_url)), ctx, sizes, repeats,
                            request)  # fmt: skip
        log.info("peak: fp32 %s GFLOP/s, bf16 %s GFLOP/s", peak["fp32_gflops"],
                 peak["bf16_gflops"])  # fmt: skip
        return "measured"

    def before_torch() -> None:
        """Before the child's first job that loads torch (never for selftest jobs)."""
        if ctx.threads:
            import torch

            torch.set_num_threads(ctx.threads)
        try:  # none stored for this host, CPUs and threads: measure it before that job
            ensure_peak(DbJobStore(session_factory(database_url)), ctx)
        except Exception as exc:
            log.warning("could not measure this worker's peak: %s", failure_name(exc))

    @worker_process_init.connect(weak=False)
    def _child_init(**_: Any) -> None:
        # The pool child must not reuse the parent's database connections.
        get_engine(database_url).dispose(close=False)
        try:  # a peak measured since the parent registered (a new child after a crash)
            ctx.peak = DbJobStore(session_factory(database_url)).worker_peak(ctx.name)
        except Exception as exc:  # the database may be away; results then lack a %
            log.warning("could not read this worker's peak: %s", failure_name(exc))
        ctx.before_torch = before_torch

    @worker_init.connect(weak=False)
    def _before_fork(**_: Any) -> None:
        # What the parent holds as its pool is about to fork lives as long as the worker:
        # frozen, neither process's collections scan it, so they do not copy its pages
        # (measure.settle_heap does the same in the child once a runner is loaded).
        gc.collect()
        gc.freeze()
