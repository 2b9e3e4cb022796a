"""Rendering for the terminal (rich) and the figures (matplotlib, imported when drawn).

`print_table(rows)` takes the per-job rows (`farm.app.reports.job_rows`); `print_wide` a
`farm.reports.layout.Report` (the blog's layout: rows model × input × batch, columns
backend@pool); `print_compare` a `farm.reports.comparison.CompareReport`. Their text is
`farm.reports.text`'s, shared with Markdown and HTML.
"""

from __future__ import annotations

import base64
import io
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the report modules load numpy: imported when a command renders
    from matplotlib.figure import Figure

    from farm.reports.comparison import CompareReport
    from farm.reports.layout import Report, WideTable

MAX_MODELS_PER_FIGURE = 12
# Above this many cells a report table is plain fixed-width text: rich measures, wraps and
# pads every cell (a 100,000-cell report took a minute) and, piped at 200 columns, cut every
# label of its 40 columns to "…".
PLAIN_CELLS = 20_000


def stdout_console() -> Console:
    """Piped output keeps whole rows rather than rich's 80-column default."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    from farm.reports.checks import check_text
    from farm.reports.text import RANDOM_WEIGHTS_NOTE

    forward = any(r.get("measure") == "forward" for r in rows)
    generation = any(r.get("task") == "text-generation" for r in rows)
    what = "call ([forward]: the model call alone)" if forward else "pipeline call"
    title = f"latency per {what}, ms"
    if generation:
        title = "latency per generate call, ms (tok/s: the batch's new tokens per second)"
    table = Table(title=escape(title))
    for col, justify in (
        ("model", "left"),
        ("input (tokens)", "left"),
        ("batch", "right"),
        ("backend", "left"),
        ("pool", "left"),
        ("host", "left"),
        ("mean", "right"),
        ("p99", "right"),
        ("n", "right"),
        *([("new", "right"), ("TTFT", "right"), ("TPOT", "right"), ("tok/s", "right")]
          if generation else []),
        ("output check", "left"),
        ("state", "left"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    random_weights = False
    for r in rows:
        random_weights |= r["weights"] == "random"
        options = ",".join(f"{k}={v}" for k, v in r["backend_options"].items())
        backend = f"{r['backend']} ({options})" if options else r["backend"]
        if r.get("measure", "pipeline") != "pipeline":
            backend += escape(f" [{r['measure']}]")  # a label, not rich markup
        state = r["state"] if r["state"] != "failed" else f"[red]failed[/red]: {r['error']}"
        if r.get("verdict") == "invalid":
            state += " [yellow](invalid)[/yellow]"
        batch = f"{r['batch_size']}" + (" batched" if r["batching"] == "batched" else "")
        tokens = f" ({r['tokens']})" if r["tokens"] else ""
        table.add_row(
            r["model"],
            r["input"] + tokens,
            batch,
            backend,
            r["pool"],
            r["host"] or "-",
            _ms(r["mean_ms"]),
            _ms(r["p99_ms"]),
            str(r["n"] or "-"),
            *([str(r.get("new_tokens") or "-"), _ms(r.get("ttft_ms")), _ms(r.get("tpot_ms")),
               _ms(r.get("tokens_per_s"))] if generation else []),
            escape(check_text(r.get("output_check"))),
            state,
        )  # fmt: skip
    console = console or stdout_console()
    console.print(table)
    if random_weights:
        console.print(RANDOM_WEIGHTS_NOTE)


def print_wide(report: Report, console: Console | None = None) -> None:
    """Each table of the report (one per task), its notes under it."""
    from farm.reports.text import wide_grids

    console = console or stdout_console()
    for title, (header, body, notes) in wide_grids(report):
        if len(header) * len(body) > PLAIN_CELLS:
            console.file.write(plain_grid(title, header, body))
            for note in notes:
                console.file.write(f"note: {note}\n")
            continue
        table = Table(title=escape(title))
        for i, col in enumerate(header):  # labels like `openvino@spr [forward]` are not markup
            table.add_column(escape(col), justify="left" if i < 2 else "right")
        for line in body:
            table.add_row(*map(escape, line))
        console.print(table)
        for note in notes:
            console.print(f"note: {note}", markup=False)


def plain_grid(title: str, header: list[str], body: list[list[str]]) -> str:
    """The table as text: every label whole, the first two columns left-aligned, the rest
    right-aligned, two spaces between; a line of dashes under the header."""
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        parts = [c.ljust(w) if i < 2 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))]  # fmt: skip
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *map(line, body)]) + "\n"


def print_compare(result: CompareReport, console: Console | None = None) -> None:
    from farm.reports.text import compare_lines

    header, body, notes, verdicts = compare_lines(result)
    table = Table(title=f"B against A: {result.metric}")
    for i, col in enumerate(header):
        justify = "left" if i < 2 or col in ("A", "B", "cell", "metric") else "right"
        table.add_column(escape(col), justify=justify)  # type: ignore[arg-type]
    colour = {"faster": "green", "slower": "red"}
    for line, verdict in zip(body, verdicts, strict=True):
        style = colour.get(verdict)
        last = escape(line[-1])
        table.add_row(*map(escape, line[:-1]), f"[{style}]{last}[/{style}]" if style else last)
    console = console or stdout_console()
    console.print(table)
    for note in notes:
        console.print(f"note: {note}", markup=False)


# --- figures -----------------------------------------------------------------------------


def build_figure(
    tables: WideTable | Sequence[WideTable], metric: str = "p99", title: str | None = None
) -> Figure:
    """One panel per model (per task and model when the tables are several tasks');
    groups = input × batch; bars = backend@pool, height = metric.

    With a baseline, each other bar is labelled with its speed-up against the baseline
    bar of its group ("3.1×"); without, with its value.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from farm.reports.cells import metric_unit

    found = [tables] if not isinstance(tables, Sequence) else list(tables)
    panels = [(t, m) for t in found for m in dict.fromkeys(row[0] for row in t.rows)]
    if len(panels) > MAX_MODELS_PER_FIGURE:
        raise click.UsageError(
            f"{len(panels)} models would make an unreadable figure; choose some with --model"
        )
    ncols = max(1, *(len(t.columns) for t in found))
    most = max(len(_rows_of(t, m)) for t, m in panels)
    width = max(6.0, min(24.0, 1.2 + 0.45 * ncols * most))
    fig = Figure(figsize=(width, 3.6 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (table, model) in zip(axes, panels, strict=True):
        heading = model if len(found) == 1 else f"{model} ({table.task})"
        _draw_panel(ax, table, model, metric, heading, metric_unit(metric))
    columns = [c for t in found for c in t.columns]
    what = "call" if any(c[6] != "pipeline" for c in columns) else "pipeline call"
    if any(t.task == "text-generation" for t in found):
        what = "generate call" if len(found) == 1 else "call"
    baseline = next((t for t in found if t.baseline is not None), None)
    suptitle = title or f"{metric} per {what}" + (
        f" — speed-up against {baseline.label(baseline.baseline)}"  # type: ignore[arg-type]
        if baseline is not None
        else ""
    )
    fig.suptitle(suptitle, fontsize=11)
    return fig


def _draw_panel(
    ax: Any, table: WideTable, model: str, metric: str, title: str, unit: str
) -> None:
    """One model's grouped bars: a group per input × batch, a bar per column."""
    ncols = max(1, len(table.columns))
    bar_width = 0.8 / ncols
    colours = [f"C{i % 10}" for i in range(ncols)]
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
            xs, heights, bar_width, label=table.label(column), color=colours[i], gid=column
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
    ax.set_ylabel(f"{metric} ({unit})")
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper left")


def _rows_of(table: WideTable, model: str) -> list[Any]:
    return [r for r in table.rows if r[0] == model]


def figure_png(fig: Figure, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def chart_images(
    tables: WideTable | Sequence[WideTable], metric: str | None = None
) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for the HTML report: the chosen metric, p99 by default."""
    found = [t for t in ([tables] if not isinstance(tables, Sequence) else tables) if t.rows]
    found = [t for t in found if t.columns]
    if not found:
        return []
    metric = metric or found[0].metrics[0]
    found = [t for t in found if metric in t.metrics] or found[:1]  # the tables showing it
    fig = build_figure(found, metric)
    caption = f"{metric} by input and batch, one bar per backend@pool"
    return [(caption, base64.b64encode(figure_png(fig)).decode("ascii"))]
