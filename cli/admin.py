"""Campaign administration: `farm cancel`, `farm retry`, `farm rerun`, `farm delete`.

Each checks the database (and, where it sends messages, the broker) before changing
anything, so a dead service is one clear line and no half-done change.
"""

from __future__ import annotations

import click
from rich.console import Console

from farm.cli.main import cli
from farm.cli.options import pass_settings
from farm.matrix import NAME_PATTERN
from farm.settings import Settings

err = Console(stderr=True)


def _pool_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(NAME_PATTERN, value):
        raise click.BadParameter("only letters, digits, '.', '_' and '-' (1 to 100 characters)")
    return value


@cli.command()
@click.argument("campaign")
@pass_settings
def cancel(settings: Settings, campaign: str) -> None:
    """Cancel CAMPAIGN's queued jobs; running jobs are left to finish.

    Their messages stay in the broker: a worker that receives one sees a cancelled job
    and drops it.
    """
    from farm.db.campaigns import cancel_campaign
    from farm.db.session import check_database, session_factory, transaction

    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        done = cancel_campaign(session, campaign)
    running = f"{done.running} running job(s) left to finish" if done.running else "none running"
    click.echo(
        f"campaign {done.campaign_id} ({done.name}): {done.cancelled} queued job(s) "
        f"cancelled; {running}"
    )


@cli.command()
@click.argument("campaign")
@pass_settings
def retry(settings: Settings, campaign: str) -> None:
    """Queue CAMPAIGN's failed jobs again and send their messages.

    Attempts are counted on; the last reason is kept as "previous attempt: ..." until
    the new attempt ends. If the messages cannot be sent, the jobs go back to failed.
    """
    from farm.db.campaigns import retry_campaign, undo_retry
    from farm.db.session import check_database, session_factory, transaction
    from farm.workers.app import check_broker, create_app, enqueue_jobs

    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        retried = retry_campaign(session, campaign, settings.max_attempts)
    if not retried.messages:
        click.echo(f"campaign {retried.campaign_id} ({retried.name}): no failed jobs to retry")
        return
    try:
        enqueue_jobs(app, retried.messages)
    except Exception as exc:
        with transaction(factory) as session:
            undo_retry(session, retried)
        raise click.ClickException(
            f"campaign {retried.campaign_id}: sending the retried jobs failed "
            f"({type(exc).__name__}); they are failed again, as before"
        ) from None
    queues = ", ".join(sorted({queue for _, queue in retried.messages}))
    click.echo(
        f"campaign {retried.campaign_id} ({retried.name}): {len(retried.messages)} failed "
        f"job(s) queued again on {queues}"
    )
    if retried.exhausted:
        err.print(
            f"[yellow]warning:[/yellow] {retried.exhausted} of them already made "
            f"{settings.max_attempts} attempts (FARM_MAX_ATTEMPTS): a worker will give up on "
            "them at once unless its FARM_MAX_ATTEMPTS is higher"
        )


@cli.command()
@click.argument("campaign")
@click.option(
    "--pool", required=True, callback=_pool_name, help="The pool to run the same cells on."
)
@pass_settings
def rerun(settings: Settings, campaign: str, pool: str) -> None:
    """Run CAMPAIGN's cells again as a new campaign on POOL; prints the new id last."""
    from farm.db.campaigns import delete_campaign, rerun_campaign
    from farm.db.session import check_database, session_factory, transaction
    from farm.workers.app import check_broker, create_app, enqueue_jobs

    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        new, old_id = rerun_campaign(session, campaign, pool)
        messages = [(job.id, job.queue) for job in new.jobs]
        new_id, name = new.id, new.name
    try:
        enqueue_jobs(app, messages)
    except Exception as exc:
        # Nothing half-made is left: a message that did get through names a deleted job,
        # which a worker drops.
        with transaction(factory) as session:
            delete_campaign(session, new_id)
        raise click.ClickException(
            f"re-run of campaign {old_id}: sending its jobs failed ({type(exc).__name__}); "
            "nothing was stored"
        ) from None
    queues = ", ".join(sorted({queue for _, queue in messages}))
    err.print(
        f"campaign {new_id} ({name}): re-run of campaign {old_id}, {len(messages)} jobs "
        f"queued on {queues}"
    )
    click.echo(new_id)


@cli.command()
@click.argument("campaign")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def delete(settings: Settings, campaign: str, yes: bool) -> None:
    """Delete CAMPAIGN with its jobs and results (asks first unless --yes)."""
    from farm.db.campaigns import delete_campaign, describe
    from farm.db.session import check_database, session_factory, transaction

    check_database(settings.database_url)
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        found = describe(session, campaign)
    what = (
        f"campaign {found.campaign_id} ({found.name}): {found.jobs} jobs, {found.results} results"
    )
    if found.running:
        what += f", {found.running} running (their results will be lost)"
    if not yes:
        click.confirm(f"Delete {what}?", abort=True, err=True)
    with transaction(factory) as session:
        delete_campaign(session, found.campaign_id)
    click.echo(f"deleted {what}")


def _also_under_campaigns() -> None:
    """`farm campaigns delete` is the same command (`campaigns` is a group in cli/commands.py)."""
    from farm.cli import commands

    group = getattr(commands, "campaigns", None)
    if isinstance(group, click.Group) and "delete" not in group.commands:
        group.add_command(delete, name="delete")


_also_under_campaigns()
