"""`farm recommend`: which backend@pool to pick, row by row, for an objective."""

from __future__ import annotations

import json
from typing import Any

import click

from farm.cli.options import open_reports, pass_settings
from farm.cli.render import stdout_console
from farm.cli.reports import filter_options, make_filters, write_output
from farm.settings import Settings

OBJECTIVES = ("mean", "p99", "throughput", "cost")


@click.command()
@click.argument("campaigns", nargs=-1, required=True)
@click.option(
    "--objective",
    type=click.Choice(OBJECTIVES),
    default="mean",
    show_default=True,
    help="What 'best' means: the lowest mean or p99 latency, the highest throughput, or the "
    "lowest cost per million inferences (needs `farm pools price`).",
)
@filter_options
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Significance level of the Mann-Whitney U test of the best against the runner-up.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True))
@pass_settings
def recommend(
    settings: Settings,
    campaigns: tuple[str, ...],
    objective: str,
    alpha: float,
    fmt: str,
    output: str | None,
    **filter_kwargs: Any,
) -> None:
    """For each model × input × batch of CAMPAIGNS (ids or names), the best backend@pool
    for the objective among the cells whose output check passed and that no validity reason
    bearing on it excludes, with its margin over the runner-up and whether that margin is
    significant (the U test, as `farm compare`). Rows where nothing qualifies say why.
    """
    from farm.app.recommend import recommend as make_recommendation

    filters = make_filters(filter_kwargs)
    with open_reports(settings) as queries:
        rec = make_recommendation(queries, campaigns, objective, filters, alpha)
    if fmt == "json":
        write_output(json.dumps(rec.to_json(), indent=2) + "\n", output)
        return
    if fmt == "markdown":
        from farm.reports.recommend_text import render_recommend_markdown

        write_output(render_recommend_markdown(rec), output)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from farm.reports.recommend_text import recommend_grid

    header, body, notes = recommend_grid(rec)
    table = Table(title=escape(f"{rec.title}: best for {objective}"))
    for i, col in enumerate(header):
        justify = "right" if col.startswith((objective, "runner-up ", "margin", "p")) else "left"
        table.add_column(escape(col), justify="left" if i < 3 else justify)  # type: ignore[arg-type]
    for line in body:
        table.add_row(*map(escape, line))
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            _print(Console(file=fh, width=250, no_color=True), table, notes)
        click.echo(f"wrote {output}", err=True)
    else:
        _print(stdout_console(), table, notes)


def _print(console: Any, table: Any, notes: list[str]) -> None:
    console.print(table)
    for note in notes:
        console.print(f"note: {note}", markup=False)
