"""The tables people compare, as pure data: cells, selectors, the blog layout, speed-ups, cost.

A *cell* is one model × input × batch × backend (with its options) × pool × allocator,
aggregated over the jobs that measured it (one job, or repeats and several campaigns
pooled). The blog's appendix layout puts rows model × input × batch and columns
backend@pool; a *baseline* column turns every other column into speed-ups, cell for cell.
Nothing here touches the database: `farm.db.report` fills the cells.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from farm.errors import FarmError
from farm.stats import _T975, Z95

# --metric name → Cell attribute. Latencies are in ms; throughput in sequences per second.
METRICS: dict[str, str] = {
    "mean": "mean_ms",
    "p50": "p50_ms",
    "p90": "p90_ms",
    "p99": "p99_ms",
    "min": "min_ms",
    "max": "max_ms",
    "std": "std_ms",
    "throughput": "throughput",
}
HIGHER_IS_BETTER = frozenset({"throughput"})
NO_SPEEDUP = frozenset({"std"})  # a ratio of spreads is no speed-up
DEFAULT_METRICS = ("mean", "p99")

ROW_FIELDS = ("model", "input", "batch", "batching")
COLUMN_FIELDS = ("backend", "pool", "allocator")
SELECTOR_FIELDS = (*ROW_FIELDS, *COLUMN_FIELDS, "mode")


@contextmanager
def no_gc() -> Iterator[None]:
    """Building 100,000 cells creates objects without cycles: collecting only slows it.

    On the way out they are frozen (`gc.freeze`): otherwise the next collections walk all
    of them, a tenth of a large report's time, to find nothing. Reference counting still
    frees them; only cyclic garbage made before is left to the end of a short CLI process.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.freeze()
            gc.enable()


class ReportError(FarmError):
    """A report that cannot be made as asked: nothing matches, an ambiguous baseline, ..."""


def metric_unit(metric: str) -> str:
    return "seq/s" if metric in HIGHER_IS_BETTER else "ms"


def options_text(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={_plain(v)}" for k, v in sorted(options.items()))


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class Cell:
    """One cell of the report, aggregated over the jobs that measured it."""

    model: str
    input: str
    batch_size: int
    batching: str
    backend: str
    backend_options: dict[str, Any]
    pool: str
    allocator: str = "default"
    mode: str = "fixed"  # the measure mode: a fixed count of calls, or adaptive
    options_key: str | None = None  # options_text(backend_options), precomputed in bulk
    # The strict identity `farm compare` matches on (filled for compare queries).
    weights_sha256: str | None = None
    input_text: str | None = None  # the md5 of the input text, to match on
    tokens: int | None = None
    tokens_max: int | None = None
    jobs: int = 0  # jobs of the cell, with or without a result
    results: int = 0  # jobs with a result
    job_ids: list[int] = field(default_factory=list)  # jobs with a result
    first_job: int = 0
    n: int | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput: float | None = None
    pooled: bool = False  # statistics from the pooled raw samples of several jobs
    valid: int = 0  # results whose verdict is 'valid'
    invalid: int = 0  # results whose verdict is 'invalid'
    reasons: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # jobs without a result, by state
    error: str | None = None  # one failure reason, when a job failed
    random_weights: bool = False
    # Hook: the output check against the fp32 reference, once results carry it.
    output_check: str | None = None
    price_per_hour: float | None = None
    currency: str | None = None
    cost_per_million: float | None = None

    @property
    def row_key(self) -> tuple[str, str, int, str]:
        return (self.model, self.input, self.batch_size, self.batching)

    @property
    def column_key(self) -> tuple[str, str, str, str]:
        options = self.options_key
        if options is None:
            options = options_text(self.backend_options)
        return (self.backend, options, self.pool, self.allocator)

    @property
    def column_label(self) -> str:
        return column_label(self.column_key)

    @property
    def row_label(self) -> str:
        return row_label(self.row_key, self.tokens, self.tokens_max)

    def value(self, metric: str) -> float | None:
        if metric not in METRICS:
            raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        value: float | None = getattr(self, METRICS[metric])
        return value

    @property
    def verdict(self) -> str | None:
        """'invalid' when any result is, 'valid' when every result is, else unknown (None)."""
        if self.invalid:
            return "invalid"
        if self.results and self.valid == self.results:
            return "valid"
        return None

    @property
    def state(self) -> str:
        """'succeeded' when every job has a result, else the states of those without."""
        if not self.states:
            return "succeeded" if self.results else "-"
        parts = [f"{state} {count}" for state, count in sorted(self.states.items())]
        return ", ".join(parts)

    def with_cost(self, price_per_hour: float | None, currency: str | None) -> None:
        self.price_per_hour, self.currency = price_per_hour, currency
        if price_per_hour is not None and self.mean_ms is not None:
            self.cost_per_million = cost_per_million(price_per_hour, self.mean_ms, self.batch_size)


# farm.db.report builds cells positionally (ten times cheaper for 100,000 of them): this
# order is part of Cell's interface.
CELL_FIELDS = (
    "model", "input", "batch_size", "batching", "backend", "backend_options", "pool",
    "allocator", "mode", "options_key", "weights_sha256", "input_text", "tokens", "tokens_max",
    "jobs", "results", "job_ids", "first_job", "n", "mean_ms", "std_ms", "min_ms", "max_ms",
    "p50_ms", "p90_ms", "p99_ms", "throughput", "pooled", "valid", "invalid", "reasons",
    "states", "error", "random_weights",
)  # fmt: skip
assert tuple(f.name for f in fields(Cell))[: len(CELL_FIELDS)] == CELL_FIELDS


def column_label(key: tuple[str, str, str, str]) -> str:
    backend, options, pool, allocator = key
    label = f"{backend}({options})" if options else backend
    label += f"@{pool}"
    return label if allocator == "default" else f"{label}+{allocator}"


def row_label(
    key: tuple[str, str, int, str], tokens: int | None = None, tokens_max: int | None = None
) -> str:
    model, input_name, batch, batching = key
    tok = ""
    if tokens is not None:
        tok = f" ({tokens})" if tokens_max in (None, tokens) else f" ({tokens}-{tokens_max})"
    batched = " batched" if batching == "batched" else ""
    return f"{model} · {input_name}{tok} · batch {batch}{batched}"


def cost_per_million(price_per_hour: float, mean_ms: float, batch_size: int) -> float:
    """What a million inferences (sequences) cost on a worker priced per hour.

    One pipeline call handles `batch_size` sequences in `mean_ms`: price/3600 × seconds per
    call / batch × 10⁶.
    """
    return price_per_hour / 3600.0 * (mean_ms / 1000.0) / batch_size * 1e6


# --- selectors --------------------------------------------------------------------------


# A column as reports print it: backend(options)@pool+allocator, e.g. ipex(dtype=bf16)@spr.
COLUMN_LABEL = re.compile(
    r"(?P<backend>[^()@+=,\s]+)(?:\((?P<options>[^()]*)\))?@(?P<pool>[^()@+=,\s]+)"
    r"(?:\+(?P<allocator>[^()@+=,\s]+))?"
)


def parse_selector(text: str, what: str = "selector") -> dict[str, str]:
    """'backend=pytorch,pool=icelake' → {'backend': 'pytorch', 'pool': 'icelake'}.

    Keys: model, input, batch, batching, backend, pool, allocator, mode; any other key is
    a backend option (e.g. dtype=bf16). A column label as a report prints it
    ('pytorch(dtype=fp32)@icelake') selects exactly that column.
    """
    label = COLUMN_LABEL.fullmatch(text.strip())
    if label is not None:
        options = parse_selector(label["options"], what) if label["options"] else {}
        return {
            "backend": label["backend"],
            **{k: v for k, v in options.items() if k not in ("backend", "pool", "allocator")},
            "pool": label["pool"],
            "allocator": label["allocator"] or "default",
        }
    selector: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ReportError(
                f"{what} {text!r}: expected KEY=VALUE pairs separated by commas, "
                "e.g. backend=pytorch,pool=icelake"
            )
        if key in selector:
            raise ReportError(f"{what} {text!r} names {key!r} twice")
        selector[key] = value
    if not selector:
        raise ReportError(f"{what} is empty; e.g. backend=pytorch,pool=icelake")
    return selector


def selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def _field_value(cell: Cell, key: str) -> str | None:
    if key == "model":
        return cell.model
    if key == "input":
        return cell.input
    if key == "batch":
        return str(cell.batch_size)
    if key == "batching":
        return cell.batching
    if key == "backend":
        return cell.backend
    if key == "pool":
        return cell.pool
    if key == "allocator":
        return cell.allocator
    if key == "mode":
        return cell.mode
    if key in cell.backend_options:
        return _plain(cell.backend_options[key])
    return None


def matches(selector: dict[str, str], cell: Cell) -> bool:
    if not selector:
        return True
    return all(_field_value(cell, k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Filters:
    """What the report's filter options keep (empty: everything)."""

    models: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    batches: tuple[int, ...] = ()
    backends: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()

    def describe(self) -> str:
        parts: list[str] = []
        for flag, values in (
            ("--model", self.models),
            ("--input", self.inputs),
            ("--batch", self.batches),
            ("--backend", self.backends),
            ("--pool", self.pools),
        ):
            parts.extend(f"{flag} {v}" for v in values)
        return " ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.models or self.inputs or self.batches or self.backends or self.pools)


# --- the blog's layout -------------------------------------------------------------------

RowKey = tuple[str, str, int, str]
ColumnKey = tuple[str, str, str, str]


@dataclass
class WideTable:
    """Rows model × input × batch, columns backend@pool, one Cell where measured."""

    metrics: tuple[str, ...]
    rows: list[RowKey]
    columns: list[ColumnKey]
    cells: dict[tuple[RowKey, ColumnKey], Cell]
    baseline: ColumnKey | None = None

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
    row_keys = [k for k in selector if k in ROW_FIELDS or k == "mode"]
    if row_keys:
        raise ReportError(
            f"--baseline {selector_text(selector)!r} names {', '.join(row_keys)}: a baseline "
            "is a column (backend, pool, allocator or a backend option), compared row by row"
        )
    columns: dict[ColumnKey, Cell] = {}
    for cell in cells:  # one cell stands for its column: a baseline names columns only
        columns.setdefault(cell.column_key, cell)
    found = [key for key, cell in columns.items() if matches(selector, cell)]
    known = ", ".join(column_label(c) for c in columns)
    if not found:
        raise ReportError(
            f"--baseline {selector_text(selector)!r} matches no column of this report; "
            f"the columns are: {known}"
        )
    if len(found) > 1:
        names = ", ".join(column_label(c) for c in found)
        raise ReportError(
            f"--baseline {selector_text(selector)!r} matches several columns ({names}); "
            "name more of backend, pool, allocator or a backend option"
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
            column = (c.backend, options, c.pool, c.allocator)
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
    return WideTable(tuple(metrics), row_list, column_list, grid, base)


# --- machine-readable rows ---------------------------------------------------------------

TIDY_KEYS = (
    "model", "input", "tokens", "batch_size", "batching", "backend", "backend_options",
    "allocator", "pool", "column", "jobs", "results", "state", "n", "mean_ms", "p50_ms",
    "p90_ms", "p99_ms", "std_ms", "min_ms", "max_ms", "throughput", "pooled", "verdict",
    "reasons", "output_check",
)  # fmt: skip


def tidy_rows(table: WideTable, cost: bool = False) -> list[dict[str, Any]]:
    """One row per cell (long format, what pandas wants), with speed-ups and cost if asked."""
    out = []
    speed_metrics = [m for m in table.metrics if m not in NO_SPEEDUP] if table.baseline else []
    labels = {column: column_label(column) for column in table.columns}
    options_json: dict[str, str] = {}  # per option set, not per cell (100,000 cells)
    for row in table.rows:
        for column in table.columns:
            cell = table.cell(row, column)
            if cell is None:
                continue
            options = options_json.get(column[1])
            if options is None:
                options = options_json[column[1]] = json.dumps(cell.backend_options, sort_keys=True)
            record: dict[str, Any] = {
                "model": cell.model,
                "input": cell.input,
                "tokens": cell.tokens,
                "batch_size": cell.batch_size,
                "batching": cell.batching,
                "backend": cell.backend,
                "backend_options": options,
                "allocator": cell.allocator,
                "pool": cell.pool,
                "column": labels[column],
                "jobs": cell.jobs,
                "results": cell.results,
                "state": cell.state,
                "n": cell.n,
                "mean_ms": cell.mean_ms,
                "p50_ms": cell.p50_ms,
                "p90_ms": cell.p90_ms,
                "p99_ms": cell.p99_ms,
                "std_ms": cell.std_ms,
                "min_ms": cell.min_ms,
                "max_ms": cell.max_ms,
                "throughput": cell.throughput,
                "pooled": cell.pooled,
                "verdict": cell.verdict,
                "reasons": "; ".join(cell.reasons),
                "output_check": cell.output_check,
            }
            if table.baseline is not None:
                record["baseline"] = column_label(table.baseline)
                for metric in speed_metrics:
                    record[f"speedup_{metric}"] = table.speedup(row, column, metric)
            if cost:
                record["price_per_hour"] = cell.price_per_hour
                record["currency"] = cell.currency
                record["cost_per_million"] = cell.cost_per_million
            out.append(record)
    return out


def t975(n: int) -> float:
    """Two-sided 95 % Student t quantile for n samples (normal from 31 on)."""
    return _T975[n - 2] if 2 <= n <= 30 else Z95


def mean_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """95 % interval of a mean from its summary (a single sample: the mean itself)."""
    if n < 2:
        return mean, mean
    half = t975(n) * std / math.sqrt(n)
    return mean - half, mean + half


def benchmark_name(cell: Cell) -> str:
    batched = " batched" if cell.batching == "batched" else ""
    return f"{cell.model}/{cell.input}/batch {cell.batch_size}{batched}/{cell.column_label}"


def bencher_metric_format(cells: Iterable[Cell]) -> dict[str, dict[str, dict[str, float]]]:
    """Bencher Metric Format: latency in ns (mean, 95 % interval), throughput in seq/s."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cell in cells:
        if cell.mean_ms is None or cell.n is None:
            continue
        lo, hi = mean_interval(cell.mean_ms, cell.std_ms or 0.0, cell.n)
        per_s = 1000.0 * cell.batch_size
        out[benchmark_name(cell)] = {
            "latency": {
                "value": cell.mean_ms * 1e6,
                "lower_value": lo * 1e6,
                "upper_value": hi * 1e6,
            },
            "throughput": {
                "value": per_s / cell.mean_ms,
                "lower_value": per_s / hi if hi > 0 else 0.0,
                "upper_value": per_s / lo if lo > 0 else per_s / cell.mean_ms,
            },
        }
    return out
