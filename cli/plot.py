"""`farm plot`: the blog's figure — grouped bars per input and batch, one bar per backend@pool.

The figure is drawn by `farm.cli.render.build_figure` (matplotlib, Agg backend, imported
only when drawn, so `farm --help` and the other commands never pay for it).
"""

from __future__ import annotations

from typing import Any

import click

from farm.cli.options import open_reports, pass_settings
from farm.cli.reports import filter_options, make_filters, parse_selector_option
from farm.settings import Settings


@click.command()
@click.argument("campaigns", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The PNG file to write.",
)
@click.option(
    "--metric",
    type=click.Choice(
        ["mean", "p50", "p90", "p99", "throughput", "ttft", "ttft_p99", "tpot", "tpot_p99",
         "tokens_per_s"]
    ),  # fmt: skip
    default="p99",
    show_default=True,
)
@filter_options
@click.option(
    "--baseline",
    metavar="SELECTOR",
    help="Label bars with their speed-up against this column, e.g. 'backend=pytorch,pool=icelake'.",
)
@click.option("--title", help="The figure's title.")
@click.option("--dpi", type=click.IntRange(50, 600), default=120, show_default=True)
@pass_settings
def plot(
    settings: Settings,
    campaigns: tuple[str, ...],
    output: str,
    metric: str,
    baseline: str | None,
    title: str | None,
    dpi: int,
    **filter_kwargs: Any,
) -> None:
    """Grouped bar chart of CAMPAIGNS (the blog's figure) as a PNG."""
    from farm.app.reports import plot_data
    from farm.cli.render import build_figure, figure_png

    filters = make_filters(filter_kwargs)
    base = parse_selector_option(baseline, "--baseline")
    with open_reports(settings) as queries:
        rep = plot_data(queries, campaigns, filters, metric, base)
    png = figure_png(build_figure(rep.tables, metric, title), dpi)
    with open(output, "wb") as fh:
        fh.write(png)
    click.echo(f"wrote {output}", err=True)
