"""Campaign commands: submit, run (embedded), status, campaigns, db."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from farm.cli.main import cli
from farm.cli.options import matrix_options, parse_cpus_option, pass_settings, pinning_options
from farm.cli.render import stdout_console
from farm.errors import FarmError
from farm.hardware import mixed_pools
from farm.jobs import JobSpec
from farm.matrix import Matrix
from farm.settings import Settings
from farm.stacks import queue_parts

err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@cli.command()
@matrix_options
@click.option("--wait", is_flag=True, help="Show a progress bar until every job has ended.")
@pass_settings
def submit(settings: Settings, spec: Matrix, jobs: list[JobSpec], wait: bool) -> None:
    """Validate MATRIX, store its campaign and jobs, and enqueue them for the workers."""
    from farm.db import repo
    from farm.db.session import check_database, session_factory, transaction
    from farm.workers.app import check_broker, create_app, enqueue_jobs

    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        campaign = repo.create_campaign(session, spec.name, spec.model_dump(mode="json"), jobs)
        ids = [(job.id, job.queue) for job in campaign.jobs]
        campaign_id = campaign.id
    try:
        enqueue_jobs(app, ids)
    except Exception as exc:
        raise click.ClickException(
            f"campaign {campaign_id} was stored but enqueuing failed ({type(exc).__name__}); "
            "its jobs stay queued in the database"
        ) from None
    queues = sorted({queue for _, queue in ids})
    err.print(
        f"campaign {campaign_id} ({spec.name}): {len(ids)} jobs queued on {', '.join(queues)}"
    )
    if wait:
        wait_for_campaign(factory, campaign_id, len(ids))
    click.echo(campaign_id)


def wait_for_campaign(
    factory: object, campaign_id: int, total: int, timeout: float | None = None
) -> None:
    """Progress bar until every job has ended (or the timeout, which is an error)."""
    from farm.db import repo
    from farm.db.models import TERMINAL_STATES
    from farm.db.session import transaction

    start = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(f"campaign {campaign_id}", total=total)
        while True:
            with transaction(factory) as session:  # type: ignore[arg-type]
                counts = repo.state_counts(session, campaign_id)
            done = sum(n for (_, state), n in counts.items() if state in TERMINAL_STATES)
            failed = sum(n for (_, state), n in counts.items() if state == "failed")
            progress.update(
                task, completed=done, description=f"campaign {campaign_id} ({failed} failed)"
            )
            if done >= total:
                return
            if timeout is not None and time.monotonic() - start > timeout:
                raise FarmError(
                    f"campaign {campaign_id}: {total - done} job(s) still unfinished after "
                    f"{timeout:.0f} s; `farm status {campaign_id}` shows where they wait"
                )
            time.sleep(1)


@cli.command()
@matrix_options
@pinning_options
@pass_settings
def run(
    settings: Settings,
    spec: Matrix,
    jobs: list[JobSpec],
    cpus: str | None,
    threads: int | None,
) -> None:
    """Run MATRIX here, in-process, with no broker (embedded mode), then print its report.

    Every job runs on this host whatever its pool; the database defaults to ./farm.db.
    A matrix that asks for an allocator runs with it preloaded (one allocator per run).
    """
    from farm.cli.render import print_table
    from farm.db import repo
    from farm.db.migrate import upgrade
    from farm.db.report import report_rows
    from farm.db.session import session_factory, transaction
    from farm.workers.allocator import ensure_allocator
    from farm.workers.execute import execute_job
    from farm.workers.probe import host_fingerprint
    from farm.workers.worker import pin, register

    allocators = sorted({job.allocator for job in jobs})
    if len(allocators) > 1:
        raise FarmError(
            f"embedded mode preloads one allocator per run; this matrix asks for "
            f"{', '.join(allocators)}: run one allocator at a time, or use workers"
        )
    ensure_allocator(allocators[0])  # may re-exec this process with LD_PRELOAD set
    count = pin(parse_cpus_option(cpus), threads)
    upgrade(settings.database_url)
    import torch

    torch.set_num_threads(count)
    fingerprint = host_fingerprint(allocators[0])
    name = f"embedded@{fingerprint['hostname']}"
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        ctx = register(session, settings, name, "embedded", fingerprint, count, queues=[])
        campaign = repo.create_campaign(session, spec.name, spec.model_dump(mode="json"), jobs)
        ids = [job.id for job in campaign.jobs]
        campaign_id = campaign.id
    with _progress() as progress:
        task = progress.add_task(f"campaign {campaign_id}", total=len(ids))
        for job_id in ids:
            execute_job(factory, job_id, ctx)
            progress.advance(task)
    with transaction(factory) as session:
        rows = report_rows(session, [campaign_id])
    print_table(rows)
    click.echo(campaign_id)


@cli.command()
@click.argument("campaign", required=False)
@pass_settings
def status(settings: Settings, campaign: str | None) -> None:
    """Job states per pool for CAMPAIGN (default: the newest), and pools no live worker serves."""
    from farm.db import repo
    from farm.db.models import JOB_STATES
    from farm.db.session import check_database, session_factory, transaction

    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        found = repo.find_campaign(session, campaign)
        counts = repo.state_counts(session, found.id)
        live_workers = repo.live_workers(session, settings.worker_ttl_s)
        waiting = repo.waiting_by_queue(session, found.id)
        failed = [j for j in repo.campaign_jobs(session, found.id) if j.state == "failed"]
    live = {w.pool for w in live_workers}
    out = stdout_console()
    table = Table(title=f"campaign {found.id} ({found.name})")
    table.add_column("pool")
    for state in JOB_STATES:
        table.add_column(state, justify="right")
    table.add_column("live worker")
    for pool in sorted({pool for pool, _ in counts}):
        table.add_row(
            pool,
            *(str(counts.get((pool, s), 0)) for s in JOB_STATES),
            "yes" if pool in live else "[red]no[/red]",
        )
    out.print(table)
    for warning in waiting_warnings(waiting, live_workers):
        out.print(f"[yellow]warning:[/yellow] {warning}")
    for pool, classes in sorted(
        mixed_pools((w.pool, w.hardware_class) for w in live_workers).items()
    ):
        out.print(
            f"[yellow]warning:[/yellow] pool {pool!r} mixes hardware classes: "
            f"{', '.join(sorted(classes))}; its numbers mix machines"
        )
    for job in failed[:20]:
        out.print(
            f"[red]failed[/red] job {job.id} ({job.model}, {job.input_name}, "
            f"batch {job.batch_size}, {job.backend}@{job.pool}): {job.error}"
        )


def waiting_warnings(
    waiting: dict[tuple[str, str, str], int], live_workers: list[Any]
) -> list[str]:
    """Why waiting jobs may wait forever: no live worker serves their queue, or none of
    those that do can run their backend (each worker registered why not)."""
    warnings = []
    live_pools = {w.pool for w in live_workers}
    for (pool, queue, backend), n in sorted(waiting.items()):
        serving = [w for w in live_workers if queue in (w.queues or [f"farm.{w.pool}"])]
        head = f"{n} job(s) of pool {pool!r} are waiting and"
        _, stack, allocator = queue_parts(queue)
        start = f"farm worker --pool {pool}" + (
            f" --allocator {allocator}" if allocator != "default" else ""
        )
        if not serving and pool not in live_pools:
            warnings.append(f"{head} no live worker serves that pool: start `{start}`")
        elif not serving:
            warnings.append(
                f"{head} no live worker of that pool can run them (they need allocator "
                f"{allocator}, stack {stack}): start `{start}` in the {stack} stack"
            )
        else:
            reasons = [w.fingerprint.get("backends", {}).get(backend) for w in serving]
            if all(reasons):
                warnings.append(
                    f"{head} no live worker of that pool can run backend {backend!r}: {reasons[0]}"
                )
    return warnings


@cli.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.pass_context
@pass_settings
def campaigns(settings: Settings, ctx: click.Context, limit: int) -> None:
    """List campaigns, newest first, with their job states (`campaigns delete` removes one)."""
    if ctx.invoked_subcommand is not None:
        return
    from farm.db import repo
    from farm.db.session import check_database, session_factory, transaction

    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        rows = repo.list_campaigns(session, limit)
    table = Table()
    for col in ("id", "name", "created (UTC)", "jobs", "states"):
        table.add_column(col)
    for campaign, counts in rows:
        states = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        table.add_row(
            str(campaign.id),
            campaign.name,
            campaign.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(sum(counts.values())),
            states,
        )
    stdout_console().print(table)


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command()
@pass_settings
def upgrade(settings: Settings) -> None:
    """Create or migrate the schema to the newest version."""
    from farm.db.migrate import current
    from farm.db.migrate import upgrade as do_upgrade
    from farm.settings import mask_url

    do_upgrade(settings.database_url)
    click.echo(f"{mask_url(settings.database_url)} at revision {current(settings.database_url)}")
