"""The `farm` Click group and the one place every command is added to it.

Command modules define plain Click commands and import only the shared options
(farm.cli.options), never this module, so the CLI has no import cycle.
"""

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


def commands() -> list[click.Command]:
    """Every top-level command, imported when the CLI runs (so `--help` stays fast to
    import and a command module never needs the group)."""
    from farm.cli.admin import cancel, delete, rerun, retry
    from farm.cli.bundles import bundle, push
    from farm.cli.calibrate import calibrate
    from farm.cli.commands import campaigns, db, run, status, submit
    from farm.cli.export import export
    from farm.cli.monitor import flower
    from farm.cli.plot import plot
    from farm.cli.pools import pools
    from farm.cli.recommend import recommend
    from farm.cli.recover import recover
    from farm.cli.reports import compare, report
    from farm.cli.serve.command import serve
    from farm.cli.workers import hosts, worker

    campaigns.add_command(delete, name="delete")  # `farm campaigns delete` = `farm delete`
    return [submit, run, status, campaigns, db, cancel, retry, rerun, delete, calibrate,
            recover, pools, worker, hosts, flower, report, compare, recommend, export, plot,
            bundle, push, serve]  # fmt: skip


def main() -> None:
    for command in commands():
        cli.add_command(command)
    cli(prog_name="farm")
