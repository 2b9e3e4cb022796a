"""Campaign commands: submit, run (embedded), status, campaigns, db."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from farm.app.publish import queues_of
from farm.broker import DEFAULT_PRIORITY, PRIORITIES
from farm.cli.options import (
    ProgressBar,
    matrix_options,
    open_reports,
    parse_cpus_option,
    pass_settings,
    pinning_options,
    wire,
    wire_embedded,
)
from farm.cli.render import stdout_console
from farm.jobs import JobSpec
from farm.matrix import Matrix
from farm.nogc import no_gc
from farm.settings import Settings

err = Console(stderr=True)


@click.command()
@matrix_options
@click.option("--wait", is_flag=True, help="Show a progress bar until every job has ended.")
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    default=DEFAULT_PRIORITY,
    show_default=True,
    help="Workers take a higher priority's waiting jobs before a lower one's (re-sends too).",
)
@pass_settings
def submit(
    settings: Settings, spec: Matrix, jobs: list[JobSpec], wait: bool, priority: str
) -> None:
    """Validate MATRIX, store its campaign and jobs, and enqueue them for the workers."""
    farm = wire(settings)
    with no_gc():  # a row and a message per job, no cycles
        stored = farm.submit(spec, jobs, priority)
    queues = queues_of(stored.messages)
    err.print(
        f"campaign {stored.campaign_id} ({spec.name}): {len(stored.messages)} jobs queued on "
        f"{', '.join(queues)} at {priority} priority"
    )
    if wait:
        with ProgressBar() as bar:
            farm.wait(stored.campaign_id, len(stored.messages), bar)
    click.echo(stored.campaign_id)


@click.command()
@matrix_options
@pinning_options
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the campaign to this file, for `farm push FILE` where the farm is reachable.",
)
@pass_settings
def run(
    settings: Settings,
    spec: Matrix,
    jobs: list[JobSpec],
    cpus: str | None,
    threads: int | None,
    bundle: Path | None,
) -> None:
    """Run MATRIX here, in-process, with no broker (embedded mode), then print its report.

    Every job runs on this host whatever its pool; the database defaults to ./farm.db.
    A matrix that asks for an allocator runs with it preloaded (one allocator per run).
    """
    from farm.app.bundles import check_writable
    from farm.app.reports import job_rows
    from farm.cli.bundles import write_run_bundle
    from farm.cli.render import print_table
    from farm.reports.selectors import Filters

    if bundle is not None:
        check_writable(bundle)  # before the run, not after it
    farm, runner = wire_embedded(settings)
    with ProgressBar(quiet=True) as bar:  # drawn between jobs, never while one measures
        campaign_id = farm.run_embedded(
            runner,
            spec,
            jobs,
            parse_cpus_option(cpus),
            threads,
            on_job=lambda cid, done, total: bar(cid, done, None, total),
        )
    with open_reports(settings) as queries:  # the run created and migrated the database
        rows = job_rows(queries, [str(campaign_id)], Filters())
    print_table(rows)
    if bundle is not None:
        write_run_bundle(settings, campaign_id, bundle)
    click.echo(campaign_id)


@click.command()
@click.argument("campaign", required=False)
@pass_settings
def status(settings: Settings, campaign: str | None) -> None:
    """Job states per pool for CAMPAIGN (default: the newest), and pools no live worker serves."""
    from farm.db.models import JOB_STATES

    found = wire(settings).status(campaign)
    snap = found.snapshot
    out = stdout_console()
    shown = snap.campaign
    table = Table(title=f"campaign {shown.id} ({shown.name}), {shown.priority} priority")
    table.add_column("pool")
    for state in JOB_STATES:
        table.add_column(state, justify="right")
    table.add_column("live worker")
    for pool in sorted({pool for pool, _ in snap.counts}):
        table.add_row(
            pool,
            *(str(snap.counts.get((pool, s), 0)) for s in JOB_STATES),
            "yes" if pool in found.live_pools else "[red]no[/red]",
        )
    out.print(table)
    for warning in found.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    for job in snap.failed:
        out.print(
            f"[red]failed[/red] job {job.id} ({job.model}, {job.input_name}, "
            f"batch {job.batch_size}, {job.backend}@{job.pool}): {job.error}"
        )


@click.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.pass_context
@pass_settings
def campaigns(settings: Settings, ctx: click.Context, limit: int) -> None:
    """List campaigns, newest first, with their job states (`campaigns delete` removes one)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = wire(settings).list_campaigns(limit)
    table = Table()
    for col in ("id", "name", "created (UTC)", "priority", "jobs", "states"):
        table.add_column(col)
    for campaign, counts in rows:
        states = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        table.add_row(
            str(campaign.id),
            campaign.name,
            campaign.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            campaign.priority,
            str(sum(counts.values())),
            states,
        )
    stdout_console().print(table)


@click.group()
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
