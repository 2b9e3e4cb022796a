"""Campaign administration: `farm cancel`, `farm retry`, `farm rerun`, `farm delete`.

Each checks the database (and, where it sends messages, the broker) before changing
anything, so a dead service is one clear line and no half-done change.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from farm.app.ports import Summary
from farm.app.publish import queues_of
from farm.cli.options import pass_settings, wire
from farm.cli.reports import filter_options, make_filters
from farm.matrix import NAME_PATTERN
from farm.settings import Settings

err = Console(stderr=True)


def _pool_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(NAME_PATTERN, value):
        raise click.BadParameter("only letters, digits, '.', '_' and '-' (1 to 100 characters)")
    return value


@click.command()
@click.argument("campaign")
@filter_options
@pass_settings
def cancel(settings: Settings, campaign: str, **filter_kwargs: Any) -> None:
    """Cancel CAMPAIGN's queued jobs; running jobs are left to finish.

    The reports' filters narrow it to some cells (`--model gpt2 --input prompt512`). Their
    messages stay in the broker: a worker that receives one sees a cancelled job and
    drops it.
    """
    filters = make_filters(filter_kwargs)
    done = wire(settings).cancel(campaign, filters)
    running = f"{done.running} running job(s) left to finish" if done.running else "none running"
    among = f" ({filters.describe()})" if filters else ""
    click.echo(
        f"campaign {done.campaign_id} ({done.name}){among}: {done.cancelled} queued job(s) "
        f"cancelled; {running}"
    )


@click.command()
@click.argument("campaign")
@pass_settings
def retry(settings: Settings, campaign: str) -> None:
    """Queue CAMPAIGN's failed jobs again and send their messages.

    Attempts are counted on; the last reason is kept as "previous attempt: ..." until
    the new attempt ends. If the messages cannot be sent, the jobs go back to failed.
    """
    retried = wire(settings).retry(campaign)
    if not retried.messages:
        click.echo(f"campaign {retried.campaign_id} ({retried.name}): no failed jobs to retry")
        return
    queues = ", ".join(queues_of(retried.messages))
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


@click.command()
@click.argument("campaign")
@click.option(
    "--pool", required=True, callback=_pool_name, help="The pool to run the same cells on."
)
@pass_settings
def rerun(settings: Settings, campaign: str, pool: str) -> None:
    """Run CAMPAIGN's cells again as a new campaign on POOL; prints the new id last."""
    done = wire(settings).rerun(campaign, pool)
    new = done.stored
    queues = ", ".join(queues_of(new.messages))
    err.print(
        f"campaign {new.campaign_id} ({new.name}): re-run of campaign {done.rerun_of}, "
        f"{len(new.messages)} jobs queued on {queues}"
    )
    click.echo(new.campaign_id)


def _what(found: Summary) -> str:
    what = (
        f"campaign {found.campaign_id} ({found.name}): {found.jobs} jobs, {found.results} results"
    )
    if found.running:
        what += f", {found.running} running (their results will be lost)"
    return what


@click.command()
@click.argument("campaign")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def delete(settings: Settings, campaign: str, yes: bool) -> None:
    """Delete CAMPAIGN with its jobs and results (asks first unless --yes)."""

    def confirm(found: Summary) -> None:
        if not yes:
            click.confirm(f"Delete {_what(found)}?", abort=True, err=True)

    found = wire(settings).delete(campaign, confirm)
    click.echo(f"deleted {_what(found)}")
