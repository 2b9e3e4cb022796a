"""`farm run`: a matrix run here, in-process, with no broker (the embedded mode)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from farm.app.ports import CampaignStore, LocalRunner
from farm.errors import FarmError
from farm.instances import DoesNotFit, shortfall
from farm.jobs import JobSpec
from farm.stacks import BACKEND_STACKS


def run_embedded(
    store: CampaignStore,
    runner: LocalRunner,
    name: str,
    matrix: dict[str, Any],
    jobs: list[JobSpec],
    *,
    cpus: set[int] | None,
    threads: int | None,
    on_job: Callable[[int, int, int], None],
) -> int:
    """Store the campaign and run its jobs one by one here; returns its id.

    One allocator per run: it is preloaded into this very process. `on_job(campaign id,
    done, total)` is called before the first job and after each one.
    """
    allocators = sorted({job.allocator for job in jobs})
    if len(allocators) > 1:
        raise FarmError(
            f"embedded mode preloads one allocator per run; this matrix asks for "
            f"{', '.join(allocators)}: run one allocator at a time, or use workers"
        )
    check_fit(jobs, cpus)
    stack = runner.prepare(allocators[0], cpus, threads)  # may re-exec this process first
    if stack:
        jobs = in_stack(jobs, stack)
    stored = store.create_campaign(name, matrix, jobs)
    total = len(stored.messages)
    on_job(stored.campaign_id, 0, total)
    for done, (job_id, *_) in enumerate(stored.messages, start=1):
        runner.run(job_id)
        on_job(stored.campaign_id, done, total)
    return stored.campaign_id


def in_stack(jobs: list[JobSpec], stack: str) -> list[JobSpec]:
    """Every job runs in this process's stack: those whose backend can run here say so
    (pytorch in the ipex venv is an `ipex` job, not one of its home `main`); the others keep
    theirs and fail here with the reason. A cell named in two stacks is one cell here."""
    out = [
        job.model_copy(update={"stack": stack})
        if job.stack != stack and stack in BACKEND_STACKS.get(job.backend, ())
        else job
        for job in jobs
    ]
    if len({job.cell_key() for job in out}) < len(out):
        raise FarmError(
            f"embedded mode runs every job in this process's stack ({stack}); this matrix names "
            "a cell in two stacks: run it with workers of each stack, or name one stack"
        )
    return out
def check_fit(jobs: list[JobSpec], cpus: set[int] | None) -> None:
    """Throughput cells must fit this run's CPUs (`--cpus`, else this process's affinity):
    no other worker will take a job this run cannot, so it is refused before anything is
    written rather than left waiting."""
    have = len(cpus) if cpus else len(os.sched_getaffinity(0))
    for job in jobs:
        if job.cores_per_instance is None:
            continue
        why = shortfall(job.instances, job.cores_per_instance, have, "this run (--cpus)")
        if why:
            raise DoesNotFit(
                f"cell {job.model.label} {job.input_name} batch {job.batch_size} "
                f"{job.backend} {why}: give farm run more CPUs with --cpus, or submit it "
                "to a worker that has them"
            )
