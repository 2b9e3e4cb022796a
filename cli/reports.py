"""`farm report`: the table people compare, or CSV/JSON for machines."""

from __future__ import annotations

import click

from cli.main import cli
from cli.options import pass_settings
from cli.render import print_table, render
from farm.settings import Settings


@cli.command()
@click.argument("campaigns", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@pass_settings
def report(settings: Settings, campaigns: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Mean and p99 per model × input × batch × backend × pool for CAMPAIGNS (ids or names)."""
    from farm.db import repo
    from farm.db.report import report_rows
    from farm.db.session import check_database, session_factory, transaction

    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        ids = [repo.find_campaign(session, ref).id for ref in campaigns]
        rows = report_rows(session, ids)
    if fmt == "table" and not output:
        print_table(rows)
        return
    text = render(rows, "csv" if fmt == "table" else fmt)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)
