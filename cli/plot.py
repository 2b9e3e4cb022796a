"""`farm plot`: the blog's figure — grouped bars per input and batch, one bar per backend@pool.

matplotlib (Agg backend, no display) is imported inside the functions, so `farm --help`
and the other commands never pay for it.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import click

from farm.cli.main import cli
from farm.cli.options import pass_settings
from farm.cli.reports import filter_options, make_filters, parse_selector_option
from farm.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from farm.reporting import WideTable

MAX_MODELS_PER_FIGURE = 12


def build_figure(table: WideTable, metric: str = "p99", title: str | None = None) -> Figure:
    """One panel per model; groups = input × batch; bars = backend@pool, height = metric.

    With a baseline, each other bar is labelled with its speed-up against the baseline
    bar of its group ("3.1×"); without, with its value.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from farm.reporting import column_label, metric_unit

    models = list(dict.fromkeys(row[0] for row in table.rows))
    if len(models) > MAX_MODELS_PER_FIGURE:
        raise click.UsageError(
            f"{len(models)} models would make an unreadable figure; choose some with --model"
        )
    ncols = max(1, len(table.columns))
    width = max(6.0, min(24.0, 1.2 + 0.45 * ncols * max(len(_rows_of(table, m)) for m in models)))
    fig = Figure(figsize=(width, 3.6 * len(models) + 0.6), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    bar_width = 0.8 / ncols
    colours = [f"C{i % 10}" for i in range(ncols)]
    for ax, model in zip(axes, models, strict=True):
        rows = _rows_of(table, model)
        groups = [
            f"{table.input_label(r)}\nbatch {r[2]}" + (" batched" if r[3] == "batched" else "")
            for r in rows
        ]
        for i, column in enumerate(table.columns):
            heights = []
            for row in rows:
                cell = table.cell(row, column)
                value = cell.value(metric) if cell is not None else None
                heights.append(math.nan if value is None else value)
            xs = [g + (i - (ncols - 1) / 2) * bar_width for g in range(len(rows))]
            bars = ax.bar(
                xs, heights, bar_width, label=column_label(column), color=colours[i], gid=column
            )
            labels = []
            for row, height in zip(rows, heights, strict=True):
                if math.isnan(height):
                    labels.append("")
                elif table.baseline is not None and column != table.baseline:
                    up = table.speedup(row, column, metric)
                    labels.append("" if up is None else f"{up:.2f}×")
                else:
                    labels.append(f"{height:.3g}")
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xticks(range(len(rows)), groups, fontsize=8)
        ax.set_ylabel(f"{metric} ({metric_unit(metric)})")
        ax.set_title(model, fontsize=10)
        ax.margins(y=0.15)
        ax.legend(fontsize=8, loc="upper left")
    suptitle = title or f"{metric} per pipeline call" + (
        f" — speed-up against {column_label(table.baseline)}" if table.baseline else ""
    )
    fig.suptitle(suptitle, fontsize=11)
    return fig


def _rows_of(table: WideTable, model: str) -> list[Any]:
    return [r for r in table.rows if r[0] == model]


def figure_png(fig: Figure, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def chart_images(table: WideTable, metric: str | None = None) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for the HTML report: the chosen metric, p99 by default."""
    metric = metric or table.metrics[0]
    if not table.rows or not table.columns:
        return []
    fig = build_figure(table, metric)
    caption = f"{metric} by input and batch, one bar per backend@pool"
    return [(caption, base64.b64encode(figure_png(fig)).decode("ascii"))]


@cli.command()
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
    type=click.Choice(["mean", "p50", "p90", "p99", "throughput"]),
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
    from farm.db.report import build_report
    from farm.db.session import check_database, session_factory, transaction

    filters = make_filters(filter_kwargs)
    base = parse_selector_option(baseline, "--baseline")
    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        rep = build_report(session, campaigns, filters, (metric,), base)
    if not any(c.results for c in rep.table.cells.values()):
        raise click.ClickException(f"{rep.title} has no results yet: nothing to plot")
    png = figure_png(build_figure(rep.table, metric, title), dpi)
    with open(output, "wb") as fh:
        fh.write(png)
    click.echo(f"wrote {output}", err=True)
