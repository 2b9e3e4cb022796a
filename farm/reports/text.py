"""The report as text for people: the blog's table and a comparison as grids, Markdown, HTML.

A grid is (header, rows of text, notes): the terminal view (`farm.cli.render`, rich), the
Markdown and the HTML pages all show the same one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from farm.reports.cells import GENERATION, HIGHER_IS_BETTER, NO_SPEEDUP, Cell, metric_unit
from farm.reports.checks import check_text, worst_check
from farm.reports.comparison import GENERATION_COMPARE, CompareReport, Pair, Versus
from farm.reports.labels import column_labels
from farm.reports.layout import Report, WideTable
from farm.reports.notes import group_notes, note_text
from farm.significance import FASTER, SAME, SLOWER

Grid = tuple[list[str], list[list[str]], list[str]]

RANDOM_WEIGHTS_NOTE = (
    "note: replica models have random weights: latencies are real, predictions are meaningless"
)


# --- the blog's layout -------------------------------------------------------------------


def number(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if metric == "throughput":
        return f"{value:.1f}"
    return f"{value:.2f}"


def metric_text(cell: Cell, metric: str) -> str:
    """A cell's value of one metric; efficiency shows the achieved GFLOP/s beside its %."""
    if metric != "efficiency":
        return number(cell.value(metric), metric)
    if cell.gflops is None:
        return "-"
    pct = cell.efficiency
    return f"{cell.gflops:.1f} GFLOP/s ({'no peak' if pct is None else f'{pct:.1f} %'})"


def money(value: float | None, currency: str | None) -> str:
    if value is None:
        return "-"
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency or "", "")
    text = f"{value:.3f}" if value < 100 else f"{value:,.0f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def wide_grids(report: Report) -> list[tuple[str, Grid]]:
    """(title, grid) for each table of the report: one per task."""
    return [(report.table_title(t), wide_grid(report, t)) for t in report.tables]


def wide_grid(report: Report, table: WideTable | None = None) -> Grid:
    """Header, rows of text and notes of one table (the only one by default): what the
    terminal, Markdown and HTML views show."""
    table = table if table is not None else report.table
    metrics = table.metrics
    units = {metric_unit(m) for m in metrics}
    if len(units) == 1:
        what = " / ".join(metrics) + f" ({units.pop()})"
    else:
        what = " / ".join(f"{m} ({metric_unit(m)})" for m in metrics)
    speed_metrics = [m for m in metrics if m not in NO_SPEEDUP]
    header = ["model", "input (tokens)", "batch"]
    for column in table.columns:
        label = table.label(column)
        header.append(f"{label} {what}")
        if table.baseline is not None and column != table.baseline and speed_metrics:
            header.append(f"{label} speed-up")
        if report.cost:
            header.append(f"{label} cost / M inferences")
    body: list[list[str]] = []
    pooled = False
    for row in table.rows:
        model, _, batch, batching = row
        batch_text = f"{batch}" + (" batched" if batching == "batched" else "")
        line = [model, table.input_label(row), batch_text]
        for column in table.columns:
            cell = table.cell(row, column)
            if cell is None:
                text = "-"
            elif not cell.results:
                text = cell.state
            else:
                text = " / ".join(metric_text(cell, m) for m in metrics)
                if cell.pooled:
                    text += " *"
                    pooled = True
                if cell.invalid:
                    text += " !"
                if cell.states:
                    text += f" ({cell.state})"
            line.append(text)
            if table.baseline is not None and column != table.baseline and speed_metrics:
                ups = [table.speedup(row, column, m) for m in speed_metrics]
                line.append(
                    "-"
                    if all(u is None for u in ups)
                    else " / ".join("-" if u is None else f"{u:.2f}×" for u in ups)
                )
            if report.cost:
                line.append(money(cell.cost_per_million, cell.currency) if cell else "-")
        body.append(line)
    notes = wide_notes(report, table, speed_metrics, pooled)
    return header, body, notes


def wide_notes(
    report: Report, table: WideTable, speed_metrics: list[str], pooled: bool
) -> list[str]:
    notes = []
    if table.baseline is not None and speed_metrics:
        better = [m for m in speed_metrics if m in HIGHER_IS_BETTER]
        notes.append(
            f"speed-up: against {table.label(table.baseline)} in the same row "
            f"({' / '.join(speed_metrics)}); above 1 is faster than the baseline"
            + (f" ({', '.join(better)}: ours / baseline's)" if better else "")
        )
    elif report.baselined and speed_metrics:
        notes.append(f"speed-up: no column of these {table.task} cells is the baseline")
    if table.task == GENERATION:
        notes.append(
            "text generation, per generate call: mean and p99 end to end, TTFT (time to "
            "first token), TPOT (time per output token after the first), tok/s (the batch's "
            "new tokens per second)"
        )
    if pooled:
        notes.append("*: several jobs measured this cell; statistics of their pooled raw samples")
    for reason, labels in group_notes(table.invalid_cells(), table.label):  # one per reason
        notes.append(f"!: {note_text(reason, labels)}")
    failed = table.failed_cells()
    for cell in failed[:10]:
        notes.append(
            f"failed: {cell.model} · {cell.input} · batch {cell.batch_size} · "
            f"{table.label(cell.column_key)}: {cell.error}"
        )
    if len(failed) > 10:
        notes.append(f"... and {len(failed) - 10} more failed cells (`farm status` lists them)")
    if report.cost:
        notes.append(
            "cost / M inferences: the pool's price per hour × mean latency ÷ batch, for a "
            "million sequences (`farm pools` lists the prices)"
        )
        if report.unpriced:
            notes.append(
                f"no price for pool(s) {', '.join(report.unpriced)}: "
                "`farm pools price POOL PRICE_PER_HOUR`"
            )
    if table.random_weights:
        notes.append(RANDOM_WEIGHTS_NOTE.removeprefix("note: "))
    if report.checks is not None:
        notes += check_notes(table, report.checks)
    return notes


def check_notes(table: WideTable, checks: Mapping[int, Any]) -> list[str]:
    """What each column's output check measured against fp32 eager (its worst cell): what
    the task's check records, e.g. max |logit diff| or min cosine, and the agreements."""
    notes = []
    for column in table.columns:
        jobs = [j for row in table.rows if (c := table.cell(row, column)) for j in c.job_ids]
        if jobs:
            text = check_text(worst_check(checks.get(j) for j in jobs))
            notes.append(f"output check, {table.label(column)} (worst of its cells): {text}")
    return notes


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---" if i < 2 else "---:" for i in range(len(header))) + " |")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    parts = []
    for title, (header, body, notes) in wide_grids(report):
        out = f"### {title}\n\n" + markdown_table(header, body)
        if notes:
            out += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        parts.append(out)
    return "\n".join(parts)


# The table scrolls within the page rather than overflow it; headers (long column labels)
# wrap, numbers do not.
HTML_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:100%}
.wide{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4;overflow-wrap:anywhere;min-width:6em;max-width:14em}
td:nth-child(n+3){white-space:nowrap}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
img{max-width:100%;margin:1em 0}li{margin:.2em 0;overflow-wrap:anywhere}
"""


def html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>\n" for line in body
    )
    table = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
    return f'<div class="wide">\n{table}</div>\n'


def render_html(report: Report, charts: Sequence[tuple[str, str]] = ()) -> str:
    """A self-contained page: the table, its notes and charts (PNG as base64 data URIs)."""
    title = html.escape(f"Farm report: {report.title}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{HTML_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for table in report.tables:
        header, body, notes = wide_grid(report, table)
        if len(report.tables) > 1:
            parts.append(f"<h2>{html.escape(table.task)}</h2>")
        parts.append(html_table(header, body))
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    for caption, png_base64 in charts:
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png_base64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- comparisons -------------------------------------------------------------------------


def compare_grid(result: CompareReport) -> Grid:
    """One line per pair; where text generation pairs were compared on TTFT and TPOT too,
    a `metric` column and a line per metric (end to end first)."""
    header, body, notes, _ = compare_lines(result)
    return header, body, notes


def compare_lines(
    result: CompareReport,
) -> tuple[list[str], list[list[str]], list[str], list[str]]:
    """compare_grid's header, lines and notes, and each line's verdict (for colours)."""
    m = result.metric
    labels = column_labels({c.column_key: None for p in result.pairs for c in (p.a, p.b)})
    differ = any(p.a.column_key != p.b.column_key for p in result.pairs)
    per_metric = bool(result.compared)
    header = ["model", "input (tokens)", "batch"]
    header += ["A", "B"] if differ else ["cell"]
    header += ["metric"] if per_metric else []
    header += [f"A {m} ms", f"B {m} ms", "B/A", "change", "p", "verdict"]
    body, verdicts = [], []
    for p in result.pairs:
        tokens = f" ({p.a.tokens})" if p.a.tokens else ""
        batch = f"{p.a.batch_size}" + (" batched" if p.a.batching == "batched" else "")
        line = [p.a.model, p.a.input + tokens, batch]
        a, b = labels[p.a.column_key], labels[p.b.column_key]
        line += [a, b] if differ else [a]
        flags = f" ({p.flags})" if p.flags else ""
        rows: list[tuple[str, Versus | Pair]] = [("end-to-end", p)]
        rows += [(GENERATION_COMPARE[k], v) for k, v in p.by_metric.items()]
        for name, v in rows if per_metric else rows[:1]:
            ratio, change = v.ratio, v.change
            body.append([
                *line,
                *([name] if per_metric else []),
                number(v.value_a, m),
                number(v.value_b, m),
                "-" if ratio is None else f"{ratio:.3f}",
                "-" if change is None else f"{change:+.1%}",
                "-" if v.p is None else (f"{v.p:.1e}" if v.p < 0.001 else f"{v.p:.3f}"),
                (v.verdict or "not tested") + flags,
            ])  # fmt: skip
            verdicts.append(v.verdict or "")
    return header, body, compare_notes(result), verdicts


def compare_notes(result: CompareReport) -> list[str]:
    counts = result.counts()
    thresholds = sorted({p.threshold for p in result.pairs})
    if result.threshold is not None:
        why = "given"
    elif result.noise:
        why = (
            "calibrated noise floor of "
            + ", ".join(
                f"{pool} {floors[0]:.1%}/{floors[1]:.1%} (mean/p99)"
                for pool, floors in sorted(result.noise.items())
            )
            + "; 3% where none"
        )
    else:
        why = "default: no calibration for these pools"
    notes = [
        f"A: {result.a_label}; B: {result.b_label}",
        f"verdict: p < {result.alpha:g} (Mann-Whitney U on the raw samples) and |B/A - 1| "
        f"above the threshold ({', '.join(f'{t:.1%}' for t in thresholds)}, {why})",
        f"{result.matched} cells matched"
        + (f" on all but {', '.join(result.varied)}" if result.varied else "")
        + f": {counts[FASTER]} faster, {counts[SLOWER]} slower, {counts[SAME]} no significant "
        f"difference" + (" among those shown" if result.hidden else ""),
    ]
    for name in result.compared:
        found = result.counts(name)
        notes.append(
            f"{GENERATION_COMPARE[name]} (text generation, the {result.metric} of the per-call "
            f"values, U test on them): {found[FASTER]} faster, {found[SLOWER]} slower, "
            f"{found[SAME]} no significant difference"
        )
    if result.hidden:
        notes.append(
            f"{result.hidden} more cells not shown, {result.beyond} of them differing by more "
            "than the threshold (not tested; --limit 0 shows and tests all)"
        )
    extra = [p for p in result.regressions if p not in result.pairs]
    if extra:
        notes.append(f"{len(extra)} significant regression(s) among the cells not shown")
    if result.only_a or result.only_b:
        notes.append(f"unmatched: {result.only_a} cell(s) only in A, {result.only_b} only in B")
    return notes


def render_compare_markdown(result: CompareReport) -> str:
    header, body, notes = compare_grid(result)
    return (
        f"### B against A: {result.metric}\n\n"
        + markdown_table(header, body)
        + "\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )
