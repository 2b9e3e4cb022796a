"""`farm recover`: every job accounted for after a broker restart or a killed worker."""

from __future__ import annotations

import click

from farm.cli.options import pass_settings, wire
from farm.settings import Settings


@click.command()
@click.argument("campaign", required=False)
@pass_settings
def recover(settings: Settings, campaign: str | None) -> None:
    """Write spooled results, re-queue jobs of dead workers, re-send queued jobs with no message.

    CAMPAIGN (an id or a name) limits it to one campaign; without it, all campaigns.
    """
    from farm.workers.recover import Reclaim

    done = wire(settings).recover(Reclaim(settings), campaign)
    click.echo(
        f"spooled results written: {done.spooled}; jobs of dead workers re-queued: "
        f"{done.requeued}; queued jobs re-sent: {done.resent} "
        f"({done.pending} already had a message)"
    )
