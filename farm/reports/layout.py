"""The blog's layout: rows model × input × batch, columns backend@pool, speed-ups, the view.

A measure other than the pipeline call is a column of its own (`openvino@spr [forward]`),
so forward and pipeline cells of a backend stand side by side.

A *baseline* column turns every other column into speed-ups, cell for cell.

A report has one such table per task (a campaign has one task; campaigns reported together
may mix them): each task's table shows its own metrics (text generation: TTFT, TPOT and
tokens/s beside the end-to-end latency), and cells of two tasks never share a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from farm.nogc import no_gc
from farm.reports.cells import (
    DEFAULT_METRICS,
    HIGHER_IS_BETTER,
    METRICS,
    NO_SPEEDUP,
    Cell,
    ReportError,
    options_text,
    task_metrics,
)
from farm.reports.labels import ColumnKey, RowKey, column_label, column_labels, row_label
from farm.reports.selectors import ROW_FIELDS, matches, selector_text


@dataclass
class WideTable:
    """Rows model × input × batch, columns backend@pool, one Cell where measured."""

    metrics: tuple[str, ...]
    rows: list[RowKey]
    columns: list[ColumnKey]
    cells: dict[tuple[RowKey, ColumnKey], Cell]
    baseline: ColumnKey | None = None
    labels: dict[ColumnKey, str] = field(default_factory=dict)  # with [stack] where needed
    task: str = "text-classification"  # the task of every cell of the table

    def label(self, column: ColumnKey) -> str:
        """The column's header: [stack] only where two columns differ by nothing else."""
        found = self.labels.get(column)
        return found if found is not None else column_label(column)

    def cell(self, row: RowKey, column: ColumnKey) -> Cell | None:
        return self.cells.get((row, column))

    def row_label(self, row: RowKey) -> str:
        tokens = [c.tokens for col in self.columns if (c := self.cell(row, col)) and c.tokens]
        tokens_max = [
            c.tokens_max for col in self.columns if (c := self.cell(row, col)) and c.tokens_max
        ]
        return row_label(row, min(tokens, default=None), max(tokens_max, default=None))

    def input_label(self, row: RowKey) -> str:
        label = self.row_label(row)
        return label.split(" · ")[1]

    def speedup(self, row: RowKey, column: ColumnKey, metric: str) -> float | None:
        """How many times better than the baseline cell of the same row (None: not known)."""
        if self.baseline is None or metric in NO_SPEEDUP:
            return None
        base, cell = self.cell(row, self.baseline), self.cell(row, column)
        return speedup(base, cell, metric)

    @property
    def random_weights(self) -> bool:
        return any(c.random_weights for c in self.cells.values())

    def invalid_cells(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.invalid]

    def failed_cells(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.states.get("failed")]


@dataclass
class Report:
    """What `farm report` shows: the campaigns and their cells in the blog's layout, one
    table per task (in order of first job; one WideTable given alone is the only one)."""

    campaigns: list[tuple[int, str]]
    tables: list[WideTable]
    cost: bool = False
    unpriced: list[str] = field(default_factory=list)  # pools without a price (with --cost)
    # job id → its output check, when loaded: what each column's check measured.
    checks: dict[int, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tables, WideTable):
            self.tables = [self.tables]

    @property
    def table(self) -> WideTable:
        """The table of a one-task report; a report of several tasks has `tables`."""
        if len(self.tables) != 1:
            tasks = ", ".join(t.task for t in self.tables)
            raise ReportError(f"{self.title} has a table per task ({tasks}): read `tables`")
        return self.tables[0]

    @property
    def title(self) -> str:
        names = ", ".join(f"{cid} ({name})" for cid, name in self.campaigns)
        return f"campaign{'s' if len(self.campaigns) > 1 else ''} {names}"

    def table_title(self, table: WideTable) -> str:
        """The report's title, with the table's task where the report has several."""
        return self.title if len(self.tables) == 1 else f"{self.title} · {table.task}"

    @property
    def cells(self) -> list[Cell]:
        """Every cell of every table."""
        return [c for t in self.tables for c in t.cells.values()]

    @property
    def has_results(self) -> bool:
        return any(c.results for t in self.tables for c in t.cells.values())

    @property
    def baselined(self) -> bool:
        """Whether a baseline leads any table (its speed-ups)."""
        return any(t.baseline is not None for t in self.tables)


def speedup(base: Cell | None, cell: Cell | None, metric: str) -> float | None:
    if base is None or cell is None or metric in NO_SPEEDUP:
        return None
    b, c = base.value(metric), cell.value(metric)
    if b is None or c is None or b <= 0 or c <= 0:
        return None
    return c / b if metric in HIGHER_IS_BETTER else b / c


def find_baseline(cells: Iterable[Cell], selector: dict[str, str]) -> ColumnKey:
    """The one column the selector names; a clear error when it names none or several.

    `cells` may be every cell or one per column (a baseline names columns only).
    """
    row_keys = [k for k in selector if k in ROW_FIELDS]
    if row_keys:
        raise ReportError(
            f"--baseline {selector_text(selector)!r} names {', '.join(row_keys)}: a baseline "
            "is a column (backend, pool, allocator, stack, measure or a backend option), "
            "compared row by row"
        )
    columns: dict[ColumnKey, Cell] = {}
    for cell in cells:  # one cell stands for its column: a baseline names columns only
        columns.setdefault(cell.column_key, cell)
    found = [key for key, cell in columns.items() if matches(selector, cell)]
    labels = column_labels(columns)
    known = ", ".join(labels.values())
    if not found:
        raise ReportError(
            f"--baseline {selector_text(selector)!r} matches no column of this report; "
            f"the columns are: {known}"
        )
    if len(found) > 1:
        names = ", ".join(labels[c] for c in found)
        raise ReportError(
            f"--baseline {selector_text(selector)!r} matches several columns ({names}); "
            "name more of backend, pool, allocator, stack, measure or a backend option"
        )
    return found[0]


def wide_table(
    cells: Sequence[Cell],
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: dict[str, str] | None = None,
) -> WideTable:
    """Lay the cells out as the blog's appendix: rows in order of first appearance."""
    for metric in metrics:
        if metric not in METRICS:
            raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    ordered = sorted(cells, key=attrgetter("first_job"))
    grid: dict[tuple[RowKey, ColumnKey], Cell] = {}
    rows: dict[RowKey, None] = {}
    columns: dict[ColumnKey, Cell] = {}  # each column with the first cell that stands for it
    models: dict[str, int] = {}
    inputs: dict[str, int] = {}
    with no_gc():  # 100,000 cells make 300,000 tuples, no cycles
        for c in ordered:
            row = (c.model, c.input, c.batch_size, c.batching)
            options = c.options_key
            if options is None:
                options = options_text(c.backend_options)
            column = (c.backend, options, c.pool, c.allocator, c.layout, c.stack, c.measure)
            grid[(row, column)] = c
            rows[row] = None
            if column not in columns:
                columns[column] = c
            if c.model not in models:
                models[c.model] = len(models)
            if c.input not in inputs:
                inputs[c.input] = len(inputs)
    row_list = sorted(rows, key=lambda r: (models[r[0]], inputs[r[1]], r[2], r[3]))
    column_list = list(columns)
    base = find_baseline(columns.values(), baseline) if baseline else None
    if base is not None:
        column_list.remove(base)
        column_list.insert(0, base)
    task = ordered[0].task if ordered else "text-classification"
    labels = column_labels(column_list)
    return WideTable(tuple(metrics), row_list, column_list, grid, base, labels, task)


def task_tables(
    cells: Sequence[Cell],
    metrics: Sequence[str] | None = None,
    baseline: dict[str, str] | None = None,
) -> list[WideTable]:
    """One table per task, in order of first job, each with its task's metrics
    (`farm.reports.cells.task_metrics`); the baseline is looked for among every column and
    leads each table that has it. A task none of the metrics asked applies to is left out;
    an error when that leaves nothing."""
    for metric in metrics or ():
        if metric not in METRICS:
            raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    by_task: dict[str, list[Cell]] = {}
    for cell in cells:  # each table sorts its own (wide_table)
        by_task.setdefault(cell.task, []).append(cell)
    if len(by_task) > 1:  # the tables in order of their first job
        by_task = dict(sorted(by_task.items(), key=lambda kv: min(c.first_job for c in kv[1])))
    base = find_baseline(cells, baseline) if baseline else None
    tables = []
    for task, group in by_task.items():
        shown = task_metrics(task, metrics)
        if not shown:
            continue
        table = wide_table(group, shown)
        if base is not None and base in table.columns:
            table.columns.remove(base)
            table.columns.insert(0, base)
            table.baseline = base
        tables.append(table)
    if not tables:
        raise ReportError(
            f"--metric {', '.join(metrics or ())}: text generation's metrics, and these cells "
            f"are {', '.join(by_task)}; choose among "
            + ", ".join(m for m in METRICS if task_metrics("", (m,)))
        )
    return tables
