"""The `farm` Click group: shared options declared once, with their environment variables."""

from __future__ import annotations

import logging

import click

from farm.errors import FarmError


class FarmGroup(click.Group):
    """Turns every FarmError into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FarmError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=FarmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what the worker side does.")
@click.version_option(package_name="farm")
def cli(verbose: bool) -> None:
    """Farm: benchmark transformer inference on CPUs, from one laptop to many hosts.

    Every command reads FARM_DATABASE_URL and FARM_BROKER_URL (or --database-url and
    --broker-url); with neither set, results go to ./farm.db (SQLite).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    from farm.cli import admin, calibrate, commands, export, plot, pools, recover, reports, workers  # noqa: F401  (registers them)

    cli(prog_name="farm")
