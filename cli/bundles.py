"""`farm bundle` and `farm push`, and `farm run --bundle`'s last step: a campaign carried
as one file from a host with no route to the farm into its database."""

from __future__ import annotations

from pathlib import Path

import click

from farm.app.bundlefile import Header
from farm.cli.options import pass_settings
from farm.settings import Settings, mask_url

FILE = click.Path(dir_okay=False, path_type=Path)


def write_run_bundle(settings: Settings, campaign_id: int, path: Path) -> None:
    """After `farm run`: the campaign it ran, to `path` (its summary on stderr)."""
    from farm.app.bundles import export_bundle
    from farm.db.bundles import SqlBundleStore
    from farm.errors import FarmError

    try:
        header = export_bundle(SqlBundleStore(settings.database_url), str(campaign_id), path)
    except FarmError as exc:  # the run itself is kept: say how to write its bundle again
        raise FarmError(
            f"{exc} (the run is campaign {campaign_id} of {mask_url(settings.database_url)}"
            f": `farm bundle {campaign_id} FILE` writes its bundle)"
        ) from None
    _written(header, path)


def _written(header: Header, path: Path) -> None:
    click.echo(
        f"bundle {path}: campaign {header.campaign}, {header.jobs} jobs, {header.results} "
        f"results (id {header.id}); where the farm's database is reachable: farm push {path}",
        err=True,
    )


@click.command()
@click.argument("campaign")
@click.argument("file", type=FILE)
@pass_settings
def bundle(settings: Settings, campaign: str, file: Path) -> None:
    """Write ended CAMPAIGN of this database to FILE, for `farm push FILE` elsewhere.

    A campaign bundled twice keeps its bundle id: its files push as one campaign. Prints
    the bundle id.
    """
    from farm.app.bundles import export_bundle
    from farm.db.bundles import SqlBundleStore

    header = export_bundle(SqlBundleStore(settings.database_url), campaign, file)
    _written(header, file)
    click.echo(header.id)


@click.command()
@click.argument("file", type=FILE)
@pass_settings
def push(settings: Settings, file: Path) -> None:
    """Load the bundle FILE into this database as a campaign of its own, in one transaction.

    Its jobs keep their pools and its results their host. A bundle pushed before changes
    nothing; a truncated, altered or newer-schema file is refused. Prints the campaign id.
    """
    from farm.app.bundles import push_bundle
    from farm.db.bundles import SqlBundleStore

    header, pushed = push_bundle(SqlBundleStore(settings.database_url), file)
    where = mask_url(settings.database_url)
    if pushed.already:
        click.echo(f"{file}: already pushed as campaign {pushed.campaign_id} ({pushed.name}) "
                   f"in {where}; nothing written", err=True)  # fmt: skip
    else:
        click.echo(
            f"{file}: pushed as campaign {pushed.campaign_id} ({pushed.name}) in {where}: "
            f"{pushed.jobs} jobs, {pushed.results} results (bundle {header.id}, made "
            f"{header.created} by Farm {header.farm})",
            err=True,
        )
    click.echo(pushed.campaign_id)
