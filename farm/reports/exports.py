"""Reports for other tools: per-cell and per-job rows, CSV, JSON, Bencher Metric Format.

Key orders are contracts: readers by name or by position keep working, so keys are only
ever added at the end.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from farm.reports.cells import GENERATION_ATTRS, NO_SPEEDUP, Cell
from farm.reports.checks import check_text, worst_check
from farm.reports.comparison import CompareReport
from farm.reports.labels import column_labels
from farm.reports.layout import Report, WideTable
from farm.stats import mean_interval

CSV_KEYS = (
    "campaign", "job", "state", "model", "input", "tokens", "batch_size", "batching", "backend",
    "pool", "host", "worker", "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "min_ms",
    "max_ms", "weights", "error",
)  # fmt: skip
# Added later, after the original columns (a reader by name or by position keeps working).
CSV_EXTRA_KEYS = (
    "campaign_name", "allocator", "throughput", "verdict", "reasons", "weights_sha256",
    "price_per_hour", "currency", "cost_per_million", "measure",
)  # fmt: skip
# `farm export --raw`: one row per timed call.
RAW_KEYS = (
    "campaign", "job", "model", "input", "tokens", "batch_size", "batching", "backend",
    "backend_options", "allocator", "pool", "host", "worker", "sample", "latency_ms",
)  # fmt: skip
RAW_TTFT = "ttft_ms"  # after RAW_KEYS, when text generation's jobs are exported


def report_tidy_rows(report: Report, cost: bool = False) -> list[dict[str, Any]]:
    """`tidy_rows` of every table of the report (one per task), one after the other, with
    the output checks the report loaded."""
    return [row for table in report.tables for row in tidy_rows(table, cost, report.checks)]


def tidy_rows(
    table: WideTable, cost: bool = False, checks: Mapping[int, Any] | None = None
) -> list[dict[str, Any]]:
    """One row per cell (long format, what pandas wants), with speed-ups and cost if asked;
    `checks` (job id → its output check) fills `output_check` with the cell's worst
    (`farm.reports.checks`)."""
    out = []
    speed_metrics = [m for m in table.metrics if m not in NO_SPEEDUP] if table.baseline else []
    labels = {column: table.label(column) for column in table.columns}
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
                # What the output check measured, the worst of the cell's jobs; empty
                # unless the checks were loaded (per job in full: `--format json`).
                "output_check": None if checks is None else _check(cell, checks),
                "stack": cell.stack,
                # Throughput mode's layout (1 and 0 for latency cells), after the rest.
                "instances": cell.instances,
                "cores_per_instance": cell.cores_per_instance,
            }
            if table.baseline is not None:
                record["baseline"] = table.label(table.baseline)
                for metric in speed_metrics:
                    record[f"speedup_{metric}"] = table.speedup(row, column, metric)
            if cost:
                record["price_per_hour"] = cell.price_per_hour
                record["currency"] = cell.currency
                record["cost_per_million"] = cell.cost_per_million
            record["gflops"] = cell.gflops
            record["efficiency_pct"] = cell.efficiency
            record["measure"] = cell.measure  # added last: readers by position keep working
            if cell.task != "text-classification":  # a classification record is as it was
                record |= {"task": cell.task, "new_tokens": cell.new_tokens,
                           "prompt_tokens": cell.prompt_tokens or None}  # fmt: skip
                record |= {attr: getattr(cell, attr) for attr in GENERATION_ATTRS}
            out.append(record)
    return out


def _check(cell: Cell, checks: Mapping[int, Any]) -> str | None:
    if not cell.job_ids:
        return None
    return check_text(worst_check(checks.get(j) for j in cell.job_ids))


def benchmark_name(cell: Cell, column: str | None = None) -> str:
    batched = " batched" if cell.batching == "batched" else ""
    column = column or cell.column_label
    return f"{cell.model}/{cell.input}/batch {cell.batch_size}{batched}/{column}"


def bencher_metric_format(cells: Iterable[Cell]) -> dict[str, dict[str, dict[str, float]]]:
    """Bencher Metric Format: latency in ns (mean, 95 % interval), throughput in seq/s;
    a text generation cell adds ttft and tpot (mean, ns) and tokens_per_s."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    cells = list(cells)
    labels = column_labels({c.column_key: None for c in cells})
    for cell in cells:
        if cell.mean_ms is None or cell.n is None:
            continue
        lo, hi = mean_interval(cell.mean_ms, cell.std_ms or 0.0, cell.n)
        per_s = 1000.0 * cell.batch_size
        name = benchmark_name(cell, labels[cell.column_key])
        out[name] = {
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
        for measure, value, scale in (("ttft", cell.ttft_ms, 1e6), ("tpot", cell.tpot_ms, 1e6),
                                      ("tokens_per_s", cell.tokens_per_s, 1.0)):  # fmt: skip
            if value is not None:
                out[name][measure] = {"value": value * scale}
    return out


def compare_rows(result: CompareReport) -> list[dict[str, Any]]:
    """One record per compared cell, for CSV and JSON."""
    out = []
    labels = column_labels({c.column_key: None for p in result.pairs for c in (p.a, p.b)})
    for p in result.pairs:
        out.append(
            {
                "model": p.a.model,
                "input": p.a.input,
                "tokens": p.a.tokens,
                "batch_size": p.a.batch_size,
                "batching": p.a.batching,
                "a_cell": labels[p.a.column_key],
                "b_cell": labels[p.b.column_key],
                "a_jobs": p.a.results,
                "b_jobs": p.b.results,
                "a_n": p.a.n,
                "b_n": p.b.n,
                "metric": result.metric,
                "a_ms": p.value_a,
                "b_ms": p.value_b,
                "ratio": p.ratio,
                "change": p.change,
                "speedup": p.speedup,
                "p_value": p.p,
                "threshold": p.threshold,
                "verdict": p.verdict,
                "a_verdict": p.a.verdict,
                "b_verdict": p.b.verdict,
            }
        )
        if p.a.task != "text-classification":  # a classification record is as it was
            out[-1] |= {"task": p.a.task, "new_tokens": p.a.new_tokens,
                        "prompt_tokens": p.a.prompt_tokens or None}  # fmt: skip
        for name, v in p.by_metric.items():  # text generation's TTFT and TPOT, when tested
            out[-1] |= {f"{name}_a_ms": v.value_a, f"{name}_b_ms": v.value_b,
                        f"{name}_ratio": v.ratio, f"{name}_change": v.change,
                        f"{name}_speedup": v.speedup, f"{name}_p_value": v.p,
                        f"{name}_verdict": v.verdict}  # fmt: skip
    return out


def render_jobs(rows: list[dict[str, Any]], fmt: str) -> str:
    """Per-job rows as JSON (one object per job) or CSV (one line per job)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    keys = CSV_KEYS + tuple(k for k in CSV_EXTRA_KEYS if any(k in r for r in rows[:1]))
    return render_csv(rows, keys)


def csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def render_csv(rows: Sequence[dict[str, Any]], keys: Iterable[str] | None = None) -> str:
    """CSV that pandas reads as it is: a header, one line per row, empty for missing."""
    if keys is not None:
        fieldnames = list(keys)
    elif len({len(r) for r in rows}) > 1:  # some rows have more keys (a task's): all of them
        fieldnames = list(dict.fromkeys(k for r in rows for k in r))
    else:
        fieldnames = list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fieldnames)
    # Tuples, not DictWriter nor a list per row, and lists and dicts looked for column by
    # column in C (set(map(type, ...))): most of the time of a 100,000-cell export went to
    # looking at every value in Python.
    values: list[tuple[Any, ...]]
    if len(fieldnames) == 1:  # itemgetter of one key gives the value, not a tuple
        values = [(row.get(fieldnames[0]),) for row in rows]
    else:
        try:  # every row has every key (per-cell rows do)
            values = list(map(itemgetter(*fieldnames), rows))
        except KeyError:
            values = [tuple(map(row.get, fieldnames)) for row in rows]
    mixed = [i for i in range(len(fieldnames))
             if {list, dict} & set(map(type, map(itemgetter(i), values)))]  # fmt: skip
    if mixed:
        values = [
            tuple(csv_value(v) if i in mixed else v for i, v in enumerate(row)) for row in values
        ]
    writer.writerows(values)
    return buf.getvalue()
