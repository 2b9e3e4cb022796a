"""The report's cell: one model × input × batch × backend (with options) × pool × allocator
× software stack (the one its results ran in: NAME@LOCK, `farm.stacks.stack_id`) × measure
(what a timed call covers: the pipeline call, or the model forward alone).

A cell is aggregated over the jobs that measured it (one job, or repeats and several
campaigns pooled). `farm.db.reports` fills cells from SQL; everything here is pure data:
the cell, its labels and identity, merging two cells, pooling raw samples into one, cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.errors import FarmError
from farm.flops import gflops, percent_of_peak
from farm.reports.labels import ColumnKey, RowKey, column_label, layout_text
from farm.stats import Summary

# --metric name → Cell attribute. Latencies are in ms; throughput in sequences per second
# (of all instances together over their common window, for a throughput-mode cell).
METRICS: dict[str, str] = {
    "mean": "mean_ms",
    "p50": "p50_ms",
    "p90": "p90_ms",
    "p99": "p99_ms",
    "min": "min_ms",
    "max": "max_ms",
    "std": "std_ms",
    "throughput": "throughput",
    "gflops": "gflops",  # achieved GFLOP/s: FLOPs per call over the mean latency
    "efficiency": "efficiency",  # % of the host's peak in the backend's precision
    # text-generation (farm.generation): time to first token, time per output token (mean
    # and p99 of the per-call values, ms) and new tokens per second of the whole batch.
    "ttft": "ttft_ms",
    "ttft_p99": "ttft_p99_ms",
    "tpot": "tpot_ms",
    "tpot_p99": "tpot_p99_ms",
    "tokens_per_s": "tokens_per_s",
}
GENERATION_METRICS = ("ttft", "ttft_p99", "tpot", "tpot_p99", "tokens_per_s")
GENERATION_ATTRS = tuple(METRICS[m] for m in GENERATION_METRICS)
HIGHER_IS_BETTER = frozenset({"throughput", "gflops", "efficiency", "tokens_per_s"})
UNITS = {"throughput": "seq/s", "gflops": "GFLOP/s", "efficiency": "% of peak",
         "tokens_per_s": "tok/s"}  # fmt: skip
NO_SPEEDUP = frozenset({"std"})  # a ratio of spreads is no speed-up
DEFAULT_METRICS = ("mean", "p99")
GENERATION = "text-generation"  # the task whose cells have GENERATION_METRICS


def task_metrics(task: str, asked: Sequence[str] | None = None) -> tuple[str, ...]:
    """What a task's table shows: the metrics asked that the task has (TTFT, TPOT and
    tokens/s only for text generation), else mean and p99, and for text generation its own
    five beside them. Empty when none of those asked applies to the task."""
    generation = task == GENERATION
    if not asked:
        return (*DEFAULT_METRICS, *GENERATION_METRICS) if generation else DEFAULT_METRICS
    return tuple(m for m in asked if generation or m not in GENERATION_METRICS)


# The identity fields that make "the same cell" for `farm compare` (less those the
# selectors vary). `identity_values` gives a cell's, `farm.db.reports.cells` their SQL.
IDENTITY = ("weights", "input_text", "batch", "batching", "backend", "options", "allocator",
            "mode", "measure", "pool", "stack", "instances", "cores_per_instance", "task",
            "new_tokens", "prompt_tokens")  # fmt: skip




class ReportError(FarmError):
    """A report that cannot be made as asked: nothing matches, an ambiguous baseline, ..."""


def metric_unit(metric: str) -> str:
    return UNITS.get(metric, "ms")


def plain(value: Any) -> str:
    """An option value as reports and selectors write it (`jit=true`, `dtype=bf16`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def options_text(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={plain(v)}" for k, v in sorted(options.items()))


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
    stack: str = "main"  # the software stack its results ran in (NAME@LOCK or NAME)
    measure: str = "pipeline"  # what a timed call covers: pipeline or forward
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
    price_per_hour: float | None = None
    currency: str | None = None
    cost_per_million: float | None = None
    flops: float | None = None  # FLOPs per call (farm.flops)
    peak_gflops: float | None = None  # the peak its results are read against (mean of them)

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s at the cell's mean latency (pooled where several jobs met)."""
        return gflops(self.flops, self.mean_ms)

    @property
    def efficiency(self) -> float | None:
        """% of the peak; None without FLOPs or without a peak for every result."""
        return percent_of_peak(self.gflops, self.peak_gflops)
    # Throughput mode: copies measured at once and CPUs each (1 and 0: the latency mode).
    instances: int = 1
    cores_per_instance: int = 0
    # The task; text-generation's dimensions (0: none) and metrics (farm.generation).
    task: str = "text-classification"
    new_tokens: int = 0
    prompt_tokens: int = 0
    ttft_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_ms: float | None = None
    tpot_p99_ms: float | None = None
    tokens_per_s: float | None = None

    @property
    def layout(self) -> str:
        """'NxC' for a throughput-mode cell, '' otherwise (its column says so)."""
        return layout_text(self.instances, self.cores_per_instance)

    @property
    def row_key(self) -> RowKey:
        return (self.model, self.input, self.batch_size, self.batching)

    @property
    def column_key(self) -> ColumnKey:
        options = self.options_key
        if options is None:
            options = options_text(self.backend_options)
        return (
            self.backend, options, self.pool, self.allocator, self.layout, self.stack, self.measure
        )

    @property
    def column_label(self) -> str:
        """The column's label without its stack (a report adds it where labels would clash)."""
        return column_label(self.column_key)

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

    @property
    def aggregate(self) -> float | None:
        """The throughput of every instance together (throughput mode), else None."""
        return self.throughput if self.cores_per_instance else None

    def with_cost(self, price_per_hour: float | None, currency: str | None) -> None:
        price = None if price_per_hour is None else (price_per_hour, currency or "")
        cost = priced(price, self.mean_ms, self.batch_size, self.aggregate)[2]
        self.price_per_hour, self.currency = price_per_hour, currency
        if cost is not None:
            self.cost_per_million = cost


# farm.db.reports builds cells positionally (ten times cheaper for 100,000 of them): this
# order is part of Cell's interface.
CELL_FIELDS = (
    "model", "input", "batch_size", "batching", "backend", "backend_options", "pool",
    "allocator", "mode", "stack", "measure", "options_key", "weights_sha256", "input_text",
    "tokens",
    "tokens_max", "jobs", "results", "job_ids", "first_job", "n", "mean_ms", "std_ms",
    "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms", "throughput", "pooled", "valid",
    "invalid", "reasons", "states", "error", "random_weights",
)  # fmt: skip
assert tuple(f.name for f in fields(Cell))[: len(CELL_FIELDS)] == CELL_FIELDS


def cost_per_million(price_per_hour: float, mean_ms: float, batch_size: int) -> float:
    """What a million inferences (sequences) cost on a worker priced per hour.

    One pipeline call handles `batch_size` sequences in `mean_ms`: price/3600 × seconds per
    call / batch × 10⁶.
    """
    return price_per_hour / 3600.0 * (mean_ms / 1000.0) / batch_size * 1e6


def priced(
    price: tuple[float, str] | None,
    mean_ms: float | None,
    batch_size: int,
    aggregate: float | None = None,
) -> tuple[float | None, str | None, float | None]:
    """(price per hour, currency, cost per million inferences) of a cell or a job measured
    on a pool with this price (None: the pool has none). A throughput-mode cell's cost comes
    from its `aggregate` sequences/s: every instance busy on the one priced worker."""
    if price is None:
        return None, None, None
    per_hour, currency = price
    if aggregate:
        return per_hour, currency, per_hour / 3600.0 / aggregate * 1e6
    cost = cost_per_million(per_hour, mean_ms, batch_size) if mean_ms is not None else None
    return per_hour, currency, cost


def throughput(stored: float | None, mean_ms: float | None, batch_size: int) -> float | None:
    """Sequences per second: the stored value, else batch / mean latency."""
    if stored is not None:
        return stored
    return batch_size * 1000.0 / mean_ms if mean_ms else None


# --- identity ----------------------------------------------------------------------------


def identity_values(cell: Cell) -> tuple[Any, ...]:
    """The cell's identity, in the order of IDENTITY (labels where no hash is known)."""
    return (
        cell.weights_sha256 or cell.model,
        cell.input_text if cell.input_text is not None else cell.input,
        cell.batch_size,
        cell.batching,
        cell.backend,
        cell.options_key if cell.options_key is not None else options_text(cell.backend_options),
        cell.allocator,
        cell.mode,
        cell.measure,
        cell.pool,
        cell.stack,
        cell.instances,
        cell.cores_per_instance,
        cell.task,
        cell.new_tokens,
        cell.prompt_tokens,
    )


def identity(cell: Cell) -> dict[str, Any]:
    return dict(zip(IDENTITY, identity_values(cell), strict=True))


def cell_key(cell: Cell) -> tuple[Any, ...]:
    """What makes two cells one: the labels a report shows and the identity compare matches."""
    return (cell.model, cell.input, *identity_values(cell))


# --- merging and pooling -----------------------------------------------------------------


def merge(into: Cell, other: Cell) -> None:
    """Fold `other` into `into`: counts add up; a mean over both, percentiles left to pool."""
    into.jobs += other.jobs
    into.results += other.results
    into.job_ids += other.job_ids
    into.first_job = min(into.first_job, other.first_job)
    into.valid += other.valid
    into.invalid += other.invalid
    into.reasons = list(dict.fromkeys(into.reasons + other.reasons))
    into.random_weights |= other.random_weights
    if into.results == other.results:  # `into` had no result: take the other's
        into.flops, into.peak_gflops = other.flops, other.peak_gflops
    elif other.results and into.peak_gflops != other.peak_gflops:
        into.peak_gflops = None  # mixed roofs: no single % to show
    into.error = into.error or other.error
    for state, count in other.states.items():
        into.states[state] = into.states.get(state, 0) + count
    if other.tokens is not None:
        into.tokens = min(into.tokens or other.tokens, other.tokens)
        into.tokens_max = max(into.tokens_max or 0, other.tokens_max or 0)
    if into.results == other.results:  # `into` had none: take the other's summary
        for attr in ("n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms",
                     *GENERATION_ATTRS):  # fmt: skip
            setattr(into, attr, getattr(other, attr))
        into.throughput = other.throughput
    elif other.results:
        if into.cores_per_instance and into.throughput and other.throughput:
            mine = into.results - other.results  # aggregates: their mean over the jobs
            into.throughput = (into.throughput * mine + other.throughput * other.results) / (
                into.results
            )
        total = (into.mean_ms or 0.0) * (into.n or 0) + (other.mean_ms or 0.0) * (other.n or 0)
        into.n = (into.n or 0) + (other.n or 0)
        for attr in GENERATION_ATTRS:  # from the pooled raw samples (farm.db.reports)
            setattr(into, attr, None)
        into.min_ms = min(x for x in (into.min_ms, other.min_ms) if x is not None)
        into.max_ms = max(x for x in (into.max_ms, other.max_ms) if x is not None)
        unpooled(into, total)


def unpooled(cell: Cell, weighted_sum: float | None) -> None:
    """A multi-job cell before its samples are pooled: the exact mean, nothing else."""
    cell.mean_ms = weighted_sum / cell.n if weighted_sum is not None and cell.n else None
    cell.std_ms = cell.p50_ms = cell.p90_ms = cell.p99_ms = None  # min and max stay exact
    if not cell.cores_per_instance:  # a throughput-mode cell keeps its jobs' mean aggregate
        cell.throughput = cell.batch_size * 1000.0 / cell.mean_ms if cell.mean_ms else None


def set_pooled(cell: Cell, values_ms: npt.NDArray[np.float64]) -> None:
    """The cell's statistics from samples pooled over its jobs (never averaged percentiles)."""
    if values_ms.size == 0:
        return
    summary = Summary.from_ms(values_ms)
    for key, value in summary.as_dict().items():
        setattr(cell, key, value)
    mean = summary.mean_ms
    if not cell.cores_per_instance:  # a throughput-mode cell keeps its jobs' mean aggregate
        cell.throughput = cell.batch_size * 1000.0 / mean if mean > 0 else None
    cell.pooled = True


def pool_samples(cells: list[Cell], samples: dict[int, npt.NDArray[np.float64]]) -> None:
    """Fill the statistics of multi-job cells from their jobs' raw samples (ms, by job id)."""
    for cell in cells:
        parts = [samples[j] for j in cell.job_ids if j in samples]
        if parts:
            set_pooled(cell, np.concatenate(parts))
