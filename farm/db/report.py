"""Report queries: one row per job (the JSON contract), and cells aggregated in SQL.

The keys of `REPORT_KEYS` are a contract read by other tools: later versions may add
keys, never rename or drop these.

Aggregation happens in SQL where it can: one GROUP BY over the jobs and their results
selects only the columns it needs (never the samples). A cell measured by one job shows
that job's stored summary; a cell several jobs measured (repeats, several campaigns)
gets its percentiles from their pooled raw samples (`farm.stats.pooled`), loaded for
those cells only — never averaged percentiles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, String, case, cast, func, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from farm.db.models import Campaign, Job, Result
from farm.errors import NotFound
from farm.reporting import (
    DEFAULT_METRICS,
    Cell,
    Filters,
    ReportError,
    WideTable,
    no_gc,
    options_text,
    wide_table,
)
from farm.stats import NS_PER_MS, Summary, decode_samples

REPORT_KEYS = (
    "campaign", "job", "state", "model", "input", "tokens", "batch_size", "backend",
    "pool", "host", "worker", "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms",
)  # fmt: skip

SAMPLES_CHUNK = 500


_OPTIONS: dict[str | None, tuple[dict[str, Any], str]] = {}


def parse_options(text: str | None) -> tuple[dict[str, Any], str]:
    """Backend options as stored → (dict, canonical k=v text), memoised (few distinct values)."""
    found = _OPTIONS.get(text)
    if found is None:
        options = json.loads(text) if text else {}
        found = _OPTIONS[text] = (options, options_text(options))
    return found


def tune_for_aggregation(session: Session) -> bool:
    """PostgreSQL: sort or hash 100,000 groups in memory, without JIT (compiling it cost
    more than it saved). Returns whether grouping keys should compare bytewise."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.execute(sql_text("SET LOCAL work_mem = '64MB'"))
    session.execute(sql_text("SET LOCAL jit = off"))
    return True


def bytewise(keys: list[Any], on: bool) -> list[Any]:
    """Text grouping keys compared byte for byte (COLLATE "C"): sorting 100,000 groups under
    a libc collation such as C.UTF-8 took a third of the query. Order and labels unchanged."""
    if not on:
        return keys
    return [k.collate("C").label(k.key) if isinstance(k.type, String) else k for k in keys]


def fetch_all(session: Session, stmt: Any) -> Sequence[Any]:
    """Every row of a large result. On psycopg rows come in binary: parsing 3 million
    numbers from text was most of the client's time for 100,000 cells."""
    conn = session.connection()
    driver = conn.connection.driver_connection
    if conn.dialect.driver != "psycopg" or driver is None:
        return conn.execute(stmt).all()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    with driver.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


_REASONS: dict[str | None, tuple[str, ...]] = {}


def parse_reasons(text: str | None) -> tuple[str, ...]:
    """A result's stored reasons (JSON text) → its reasons, memoised: most are alike."""
    found = _REASONS.get(text)
    if found is None:
        if len(_REASONS) > 10_000:  # reasons may carry numbers: keep the memo bounded
            _REASONS.clear()
        found = _REASONS[text] = tuple(str(r) for r in json.loads(text) or ()) if text else ()
    return found


def filter_conditions(campaign_ids: Iterable[int], filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Job.campaign_id.in_(list(campaign_ids))]
    if filters.models:
        where.append(Job.model.in_(filters.models))
    if filters.inputs:
        where.append(Job.input_name.in_(filters.inputs))
    if filters.batches:
        where.append(Job.batch_size.in_(filters.batches))
    if filters.backends:
        where.append(Job.backend.in_(filters.backends))
    if filters.pools:
        where.append(Job.pool.in_(filters.pools))
    return where


# --- per job -----------------------------------------------------------------------------


def report_rows(
    session: Session, campaign_ids: list[int], filters: Filters | None = None
) -> list[dict[str, Any]]:
    """One object per job, with its result's summary when it has one (no samples loaded)."""
    stmt = select(
        Job.id,
        Job.campaign_id,
        Campaign.name,
        Job.state,
        Job.model,
        Job.input_name,
        Job.batch_size,
        Job.batching,
        Job.backend,
        Job.options,
        Job.allocator,
        Job.pool,
        Job.worker,
        Job.attempts,
        Job.error,
        Result.id,
        Result.host,
        Result.tokens,
        Result.n,
        Result.mean_ms,
        Result.p50_ms,
        Result.p90_ms,
        Result.p99_ms,
        Result.std_ms,
        Result.min_ms,
        Result.max_ms,
        Result.throughput,
        Result.verdict,
        cast(Result.reasons, String),  # as text: few distinct values, parsed once each
        Result.model_identity["weights"].as_string(),
        Result.weights_sha256,
        Result.model_identity["tokenizer"].as_string(),
        Result.output_check,
    ).select_from(Job)
    stmt = (
        stmt.join(Campaign, Campaign.id == Job.campaign_id)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(*filter_conditions(campaign_ids, filters or Filters()))
        .order_by(Job.campaign_id, Job.id)
    )
    rows = []
    for r in fetch_all(session, stmt):
        has = r[15] is not None
        rows.append(
            {
                "campaign": r[1],
                "campaign_name": r[2],
                "job": r[0],
                "state": r[3],
                "model": r[4],
                "input": r[5],
                "tokens": r[17],
                "batch_size": r[6],
                "batching": r[7],
                "backend": r[8],
                "backend_options": dict(parse_options(r[9])[0]),
                "allocator": r[10],
                "pool": r[11],
                "host": r[16],
                "worker": r[12],
                "attempts": r[13],
                "error": r[14],
                "n": r[18],
                "mean_ms": r[19],
                "p50_ms": r[20],
                "p90_ms": r[21],
                "p99_ms": r[22],
                "std_ms": r[23],
                "min_ms": r[24],
                "max_ms": r[25],
                "throughput": _throughput(r[26], r[19], r[6]) if has else None,
                "verdict": r[27],
                "reasons": list(parse_reasons(r[28])),
                "weights": r[29],
                "weights_sha256": r[30],
                "tokenizer": r[31],
                "output_check": r[32],
            }
        )
    return rows


def _throughput(stored: float | None, mean_ms: float | None, batch: int) -> float | None:
    """Sequences per second: the stored value, else batch / mean latency."""
    if stored is not None:
        return stored
    return batch * 1000.0 / mean_ms if mean_ms else None


# --- cells -------------------------------------------------------------------------------


def campaign_job_counts(session: Session, campaign_ids: list[int]) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Job).where(Job.campaign_id.in_(campaign_ids))
        )
        or 0
    )


def aggregate_cells(
    session: Session,
    campaign_ids: list[int],
    filters: Filters | None = None,
    identity: bool = False,
    pool_samples: bool = True,
    job_ids: Sequence[int] | None = None,
) -> list[Cell]:
    """The campaigns' cells, aggregated in SQL; pooled samples only where several jobs meet.

    identity=True groups by `farm compare`'s strict identity (weights hash, input text and
    measure mode on top of the report's fields) and keeps only jobs with a result.
    pool_samples=False leaves the percentiles of multi-job cells unset (the caller pools
    the samples itself, for the cells it shows). job_ids: only these jobs.
    """
    keys: list[Any] = [
        Job.model,
        Job.input_name,
        Job.batch_size,
        Job.batching,
        Job.backend,
        Job.options,
        Job.pool,
        Job.allocator,
    ]
    if identity:
        keys += [Job.mode, Result.weights_sha256, Job.input_hash]
    keys = bytewise(keys, tune_for_aggregation(session))
    has_result = Result.id.is_not(None)
    invalid = Result.verdict == "invalid"
    results = func.count(Result.id)
    aggs: list[Any] = [
        func.count(Job.id),
        results,
        func.min(Job.id),
        func.min(case((has_result, Job.id))),
        func.min(Result.tokens),
        func.max(Result.tokens),
        func.sum(Result.n),
        func.sum(Result.n * Result.mean_ms),
        func.max(Result.mean_ms),
        func.max(Result.std_ms),
        func.min(Result.min_ms),
        func.max(Result.max_ms),
        func.max(Result.p50_ms),
        func.max(Result.p90_ms),
        func.max(Result.p99_ms),
        func.max(Result.throughput),
        func.count(case((Result.verdict == "valid", 1))),
        func.count(case((invalid, 1))),
        func.aggregate_strings(case((invalid, cast(Result.reasons, String))), "\n"),
        func.count(case((Result.random_weights, 1))),
        func.min(case((Job.state == "failed", Job.error))),
        # The states of the jobs without a result (NULL, nothing to aggregate, for the rest).
        func.aggregate_strings(case((Result.id.is_(None), Job.state)), ","),
    ]
    where = filter_conditions(campaign_ids, filters or Filters())
    if identity:
        where.append(has_result)
    if job_ids is not None:
        where.append(Job.id.in_(job_ids))
    joined = select(*keys, *aggs).select_from(Job).outerjoin(Result, Result.job_id == Job.id)
    # In order of first job, the order reports show (sorting ints here is cheaper than in Python).
    stmt = joined.where(*where).group_by(*keys).order_by(func.min(Job.id))

    with no_gc():
        cells = _build_cells(fetch_all(session, stmt), len(keys), identity)
        several = {key: cell for key, cell in cells.items() if cell.results > 1}
        if several:  # their job ids: rare, so not aggregated for every cell (a fifth of it)
            ids = select(*keys, Job.id).select_from(Job).join(Result, Result.job_id == Job.id)
            for row in fetch_all(session, ids.where(*where).order_by(Job.id)):
                cell = several.get(row[:-1])
                if cell is not None:
                    cell.job_ids.append(row[-1])
        out = _merge_same_options(cells)
    if pool_samples:
        pool_cells(session, [c for c in out if c.results > 1])
    return out


def _build_cells(rows: Sequence[Any], nk: int, identity: bool) -> dict[tuple[Any, ...], Cell]:
    """Cells from aggregated rows (in order of first job), keyed by their group; built
    positionally: for 100,000 cells every attribute lookup and temporary counts. The job
    ids of a cell several jobs measured are left for the caller to fill."""
    cells: dict[tuple[Any, ...], Cell] = {}
    parse = parse_options
    for r in rows:
        (model, input_name, batch, batching, backend, options, pool, allocator) = r[:8]
        (jobs, n_results, first, result_job, tok, tok_max, n, weighted, mean, std, lo,
         hi, p50, p90, p99, thr, n_valid, n_invalid, reasons, random, error, open_states,
         ) = r[nk:]  # fmt: skip
        opts, opts_key = parse(options)
        if thr is None and mean:
            thr = batch * 1000.0 / mean
        # Positional: ten times cheaper than keywords for 100,000 cells (order of Cell's fields).
        cell = Cell(
            model, input_name, batch, batching, backend, opts, pool, allocator,
            r[8] if identity else "fixed", opts_key,
            r[9] if identity else None, r[10] if identity else None,
            tok, tok_max, jobs, n_results,
            [result_job] if n_results == 1 else [],
            first, int(n) if n is not None else None,
            mean, std, lo, hi, p50, p90, p99, thr, False, n_valid, n_invalid,
            _reasons(reasons) if reasons else [],
            _states(open_states) if open_states else {},
            error, bool(random),
        )  # fmt: skip
        if n_results > 1:  # until pooled: the exact pooled mean, no percentiles
            _unpooled(cell, weighted)
        cells[r[:nk]] = cell
    return cells


def _merge_same_options(cells: dict[tuple[Any, ...], Cell]) -> list[Cell]:
    """Option sets stored differently but shown alike ({"x": 1} and {"x": "1"}): one cell."""
    texts = {key[5] for key in cells}
    if len({parse_options(t)[1] for t in texts}) == len(texts):
        return list(cells.values())
    merged: dict[tuple[Any, ...], Cell] = {}
    for cell in cells.values():
        key = (*cell.row_key, *cell.column_key, cell.mode, cell.weights_sha256, cell.input_text)
        if key in merged:
            _merge(merged[key], cell)
        else:
            merged[key] = cell
    return list(merged.values())


def _states(text: str) -> dict[str, int]:
    states: dict[str, int] = {}
    for state in text.split(","):
        states[state] = states.get(state, 0) + 1
    return states


def _reasons(text: str | None) -> list[str]:
    """The reasons of several results (one JSON list a line), each once, in order."""
    seen: dict[str, None] = {}
    for line in (text or "").split("\n"):
        if line.strip():
            seen.update(dict.fromkeys(parse_reasons(line)))
    return list(seen)


def _merge(into: Cell, other: Cell) -> None:
    into.jobs += other.jobs
    into.results += other.results
    into.job_ids += other.job_ids
    into.first_job = min(into.first_job, other.first_job)
    into.valid += other.valid
    into.invalid += other.invalid
    into.reasons = list(dict.fromkeys(into.reasons + other.reasons))
    into.random_weights |= other.random_weights
    into.error = into.error or other.error
    for state, count in other.states.items():
        into.states[state] = into.states.get(state, 0) + count
    if other.tokens is not None:
        into.tokens = min(into.tokens or other.tokens, other.tokens)
        into.tokens_max = max(into.tokens_max or 0, other.tokens_max or 0)
    if into.results == other.results:  # `into` had none: take the other's summary
        for attr in ("n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms"):
            setattr(into, attr, getattr(other, attr))
        into.throughput = other.throughput
    elif other.results:
        total = (into.mean_ms or 0.0) * (into.n or 0) + (other.mean_ms or 0.0) * (other.n or 0)
        into.n = (into.n or 0) + (other.n or 0)
        into.min_ms = min(x for x in (into.min_ms, other.min_ms) if x is not None)
        into.max_ms = max(x for x in (into.max_ms, other.max_ms) if x is not None)
        _unpooled(into, total)


def _unpooled(cell: Cell, weighted_sum: float | None) -> None:
    """A multi-job cell before its samples are pooled: the exact mean, nothing else."""
    cell.mean_ms = weighted_sum / cell.n if weighted_sum is not None and cell.n else None
    cell.std_ms = cell.p50_ms = cell.p90_ms = cell.p99_ms = None  # min and max stay exact
    cell.throughput = cell.batch_size * 1000.0 / cell.mean_ms if cell.mean_ms else None


def load_samples(session: Session, job_ids: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """(job id, samples blob) for these jobs in id order, fetched in chunks."""
    ids = sorted(set(job_ids))
    for i in range(0, len(ids), SAMPLES_CHUNK):
        chunk = ids[i : i + SAMPLES_CHUNK]
        stmt = (
            select(Result.job_id, Result.samples)
            .where(Result.job_id.in_(chunk))
            .order_by(Result.job_id)
        )
        for row in session.execute(stmt):
            yield row[0], row[1]


def samples_ms(session: Session, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
    """job id → its raw samples in ms."""
    return {
        job: decode_samples(blob).astype(np.float64) / NS_PER_MS
        for job, blob in load_samples(session, job_ids)
    }


def pool_cells(session: Session, cells: list[Cell]) -> None:
    """Fill the statistics of multi-job cells from their pooled raw samples."""
    if not cells:
        return
    values = samples_ms(session, (j for c in cells for j in c.job_ids))
    for cell in cells:
        parts = [values[j] for j in cell.job_ids if j in values]
        if parts:
            set_pooled(cell, np.concatenate(parts))


def set_pooled(cell: Cell, values_ms: npt.NDArray[np.float64]) -> None:
    """The cell's statistics from samples pooled over its jobs (never averaged percentiles)."""
    if values_ms.size == 0:
        return
    summary = Summary.from_ms(values_ms)
    for key, value in summary.as_dict().items():
        setattr(cell, key, value)
    mean = summary.mean_ms
    cell.throughput = cell.batch_size * 1000.0 / mean if mean > 0 else None
    cell.pooled = True


def resolve_campaigns(session: Session, refs: Iterable[str]) -> list[tuple[int, str]]:
    """(id, name) of each campaign reference (an id or a name), in order, without repeats."""
    from farm.db import repo

    found: dict[int, str] = {}
    for ref in refs:
        campaign = repo.find_campaign(session, ref)
        found.setdefault(campaign.id, campaign.name)
    return list(found.items())


def require_cells(
    session: Session,
    campaigns: list[tuple[int, str]],
    cells: list[Cell],
    filters: Filters,
    need_results: bool = False,
) -> None:
    """A clear message when there is nothing to report: empty campaign, filters, no results."""
    names = ", ".join(f"{cid} ({name})" for cid, name in campaigns)
    what = "campaign" if len(campaigns) == 1 else "campaigns"
    if not cells:
        if campaign_job_counts(session, [cid for cid, _ in campaigns]) == 0:
            raise NotFound(f"{what} {names} has no jobs: nothing to report")
        raise ReportError(f"no job of {what} {names} matches {filters.describe()}")
    if need_results and not any(c.results for c in cells):
        states: dict[str, int] = {}
        for c in cells:
            for state, count in c.states.items():
                states[state] = states.get(state, 0) + count
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        raise ReportError(
            f"{what} {names} has no results yet ({summary}); `farm status` tells more"
        )


@dataclass
class Report:
    """What `farm report` shows: the campaigns and their cells in the blog's layout."""

    campaigns: list[tuple[int, str]]
    table: WideTable
    cost: bool = False
    unpriced: list[str] = field(default_factory=list)  # pools without a price (with --cost)

    @property
    def title(self) -> str:
        names = ", ".join(f"{cid} ({name})" for cid, name in self.campaigns)
        return f"campaign{'s' if len(self.campaigns) > 1 else ''} {names}"


def build_report(
    session: Session,
    refs: Iterable[str],
    filters: Filters | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: dict[str, str] | None = None,
    cost: bool = False,
) -> Report:
    """The report layer: campaigns → cells (SQL, pooled where needed) → the blog's table."""
    filters = filters or Filters()
    campaigns = resolve_campaigns(session, refs)
    cells = aggregate_cells(session, [cid for cid, _ in campaigns], filters)
    require_cells(session, campaigns, cells, filters)
    unpriced: list[str] = []
    if cost:
        unpriced = apply_prices(session, cells)
    table = wide_table(cells, metrics, baseline)
    return Report(campaigns, table, cost, unpriced)


def apply_prices(session: Session, cells: list[Cell]) -> list[str]:
    """Fill each cell's cost per million inferences; return the pools that have no price."""
    from farm.db.pools import prices

    pools = {c.pool for c in cells}
    priced = prices(session, pools)
    for cell in cells:
        found = priced.get(cell.pool)
        if found is not None:
            cell.with_cost(*found)
    return sorted(pools - set(priced))
