"""What the pages show, as plain data for the templates: the blog table with its marks,
links and notes, and the download list. Every figure and text is the report code's
(`farm.reports.text`'s cell and money texts, the table's speed-ups)."""

from __future__ import annotations

from typing import Any

from farm.reports.cells import NO_SPEEDUP, Cell
from farm.reports.layout import Report, WideTable
from farm.reports.notes import group_notes
from farm.reports.text import metric_text, money, wide_grid

# (file name, what it is, the CLI command that writes the same bytes)
EXPORTS = (
    ("report.md", "the table as Markdown", "farm report ID --format markdown"),
    ("report.html", "the static HTML report", "farm report ID --format html"),
    ("report.csv", "one line per cell", "farm report ID --format csv"),
    ("jobs.json", "one object per job", "farm report ID --format json"),
    ("jobs.csv", "one line per job", "farm report ID --format csv --per-job"),
    ("cells.json", "one object per cell", "farm export ID --cells --format json"),
    ("raw.csv", "every timed call", "farm export ID --raw"),
    ("bmf.json", "Bencher Metric Format", "farm export ID --bmf"),
)


def cell_view(rep: Report, row: Any, column: Any, table: WideTable) -> dict[str, Any]:
    """One cell of a blog table: its text as `farm report` prints it, marks, links."""
    cell: Cell | None = table.cell(row, column)
    out: dict[str, Any] = {"text": "-", "marks": "", "reasons": [], "jobs": [], "state": ""}
    if cell is None:
        return out
    out["jobs"] = list(cell.job_ids)
    out["state"] = cell.state
    if not cell.results:
        out["text"] = cell.state
        if cell.error:
            out["reasons"] = [cell.error]
        return out
    out["text"] = " / ".join(metric_text(cell, m) for m in table.metrics)
    marks = ("*" if cell.pooled else "") + ("!" if cell.invalid else "")
    out["marks"] = marks
    out["reasons"] = list(cell.reasons) if cell.invalid else []
    out["invalid"] = bool(cell.invalid)
    if cell.states:
        out["text"] += f" ({cell.state})"
    speed = [m for m in table.metrics if m not in NO_SPEEDUP]
    if table.baseline is not None and column != table.baseline and speed:
        ups = [table.speedup(row, column, m) for m in speed]
        out["speedup"] = (
            "-" if all(u is None for u in ups)
            else " / ".join("-" if u is None else f"{u:.2f}×" for u in ups)
        )  # fmt: skip
    if rep.cost:
        out["cost"] = money(cell.cost_per_million, cell.currency)
    return out


def blog_table(rep: Report, table: WideTable | None = None) -> dict[str, Any]:
    """Header, rows and notes of one of the campaign page's tables (one per task; the
    CLI's grid, with links)."""
    table = table if table is not None else rep.table
    header, _, notes = wide_grid(rep, table)
    columns = [{"label": table.label(c), "baseline": c == table.baseline} for c in table.columns]
    rows = []
    for row in table.rows:
        model, _, batch, batching = row
        rows.append(
            {
                "model": model,
                "input": table.input_label(row),
                "batch": f"{batch}" + (" batched" if batching == "batched" else ""),
                "batch_size": batch,
                "input_name": row[1],
                "cells": [cell_view(rep, row, c, table) for c in table.columns],
            }
        )
    speed = [m for m in table.metrics if m not in NO_SPEEDUP]
    what = header[3].removeprefix(table.label(table.columns[0])).strip() if columns else ""
    return {
        "columns": columns,
        "rows": rows,
        "what": what,
        "speedups": table.baseline is not None and bool(speed),
        "cost": rep.cost,
        "notes": [n for n in notes if not n.startswith("!: ")],
        "validity": group_reasons(table),
        "task": table.task,
        "title": rep.table_title(table),
    }


def group_reasons(table: WideTable) -> list[dict[str, Any]]:
    """One line per distinct validity reason (up to its numbers) with the cells it
    affects, as the report's notes group them (`farm.reports.notes.group_notes`)."""
    groups = group_notes(table.invalid_cells(), table.label)
    return [{"reason": reason, "cells": cells} for reason, cells in groups]


def progress(row: dict[str, Any]) -> dict[str, Any]:
    """Percent ended and the states per pool as text, for a campaign overview row."""
    total = row["jobs"] or 0
    pct = 100.0 * row["ended"] / total if total else 0.0
    pools = [
        f"{pool}: " + ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        for pool, states in sorted(row["pools"].items())
    ]
    return {**row, "pct": round(pct, 1), "pool_text": pools}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
