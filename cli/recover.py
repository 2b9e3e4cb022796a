"""`farm recover`: every job accounted for after a broker restart or a killed worker."""

from __future__ import annotations

import click

from farm.cli.main import cli
from farm.cli.options import pass_settings
from farm.settings import Settings


@cli.command()
@click.argument("campaign", required=False)
@pass_settings
def recover(settings: Settings, campaign: str | None) -> None:
    """Write spooled results, re-queue jobs of dead workers, re-send queued jobs with no message.

    CAMPAIGN (an id or a name) limits it to one campaign; without it, all campaigns.
    """
    from farm.db import repo
    from farm.db.session import check_database, session_factory, transaction
    from farm.workers.app import check_broker, create_app
    from farm.workers.recover import recover as do_recover

    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    factory = session_factory(settings.database_url)
    campaign_id = None
    if campaign is not None:
        with transaction(factory) as session:
            campaign_id = repo.find_campaign(session, campaign).id
    done = do_recover(app, factory, settings, campaign_id)
    click.echo(
        f"spooled results written: {done.spooled}; jobs of dead workers re-queued: "
        f"{done.requeued}; queued jobs re-sent: {done.resent} "
        f"({done.pending} already had a message)"
    )
