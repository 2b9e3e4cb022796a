"""The Celery task: the message carries a job id and a schema version, nothing else."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init

from farm import MESSAGE_SCHEMA
from farm.db.jobstore import DbJobStore
from farm.db.session import get_engine, session_factory
from farm.workers.app import TASK_NAME
from farm.workers.execute import WorkerContext, execute_job

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

    @worker_process_init.connect(weak=False)
    def _child_init(**_: Any) -> None:
        # The pool child must not reuse the parent's database connections.
        get_engine(database_url).dispose(close=False)
        if ctx.threads:
            import torch

            torch.set_num_threads(ctx.threads)
