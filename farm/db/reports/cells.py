"""The cell query: the campaigns' cells aggregated in SQL, raw samples for pooling.

One GROUP BY over the jobs and their results selects only the columns it needs (never
the samples). A cell measured by one job shows that job's stored summary; a cell several
jobs measured (repeats, several campaigns) gets its percentiles from their pooled raw
samples (`farm.reports.cells.pool_samples`), loaded for those cells only — never
averaged percentiles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from farm.db.models import Job, Result
from farm.db.reports.tuning import bytewise, fetch_all, tune_for_aggregation
from farm.generation import generation_stats
from farm.nogc import no_gc
from farm.reports.cells import (
    GENERATION_ATTRS,
    IDENTITY,
    Cell,
    cell_key,
    merge,
    options_text,
    pool_samples,
    throughput,
    unpooled,
)
from farm.reports.pending import fold_pending
from farm.reports.selectors import Filters
from farm.stats import NS_PER_MS, decode_samples

SAMPLES_CHUNK = 500
GENERATION_INPUT = re.compile(r"(.+) \+(\d{1,9}) new")  # a generation row's input label

_OPTIONS: dict[str | None, tuple[dict[str, Any], str]] = {}
_REASONS: dict[str | None, tuple[str, ...]] = {}


def stack_column() -> ColumnElement[str]:
    """The stack a job's result ran in (NAME@LOCK), else the stack the job was sent to."""
    return func.coalesce(Result.stack, Job.stack)


def stack_condition(wanted: str) -> ColumnElement[bool]:
    """`ipex`: every lock of the stack; `ipex@LOCK`: that one (farm.stacks.stack_matches)."""
    stack = stack_column()
    if "@" in wanted:
        return stack == wanted
    return or_(stack == wanted, stack.startswith(f"{wanted}@", autoescape=True))


def identity_columns() -> dict[str, Any]:
    """The SQL of each identity field (`farm.reports.cells.IDENTITY`), in its order."""
    columns = {
        "weights": func.coalesce(Result.weights_sha256, Job.model),
        "input_text": Job.input_hash,
        "batch": Job.batch_size,
        "batching": Job.batching,
        "backend": Job.backend,
        "options": Job.options,
        "allocator": Job.allocator,
        "mode": Job.mode,
        "measure": Job.measure,
        "pool": Job.pool,
        "stack": stack_column(),
        "instances": Job.instances,
        "cores_per_instance": Job.cores_per_instance,
        "task": Job.task,
        "new_tokens": Job.new_tokens,
        "prompt_tokens": Job.prompt_tokens,
    }
    assert tuple(columns) == IDENTITY
    return columns


def parse_options(text: str | None) -> tuple[dict[str, Any], str]:
    """Backend options as stored → (dict, canonical k=v text), memoised (few distinct values)."""
    found = _OPTIONS.get(text)
    if found is None:
        options = json.loads(text) if text else {}
        found = _OPTIONS[text] = (options, options_text(options))
    return found


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
        where.append(input_condition(filters.inputs))
    if filters.batches:
        where.append(Job.batch_size.in_(filters.batches))
    if filters.backends:
        where.append(Job.backend.in_(filters.backends))
    if filters.pools:
        where.append(Job.pool.in_(filters.pools))
    if filters.stacks:
        where.append(or_(*(stack_condition(s) for s in filters.stacks)))
    if filters.measures:
        where.append(Job.measure.in_(filters.measures))
    if filters.tasks:
        where.append(Job.task.in_(filters.tasks))
    return where


def input_condition(inputs: Sequence[str]) -> ColumnElement[bool]:
    """Jobs of these inputs: a name, or a text generation row's label as reports show it
    (`short +32 new`: input short with 32 new tokens), so a label is typed back as seen."""
    either: list[ColumnElement[bool]] = [Job.input_name.in_(inputs)]
    for text in inputs:
        found = GENERATION_INPUT.fullmatch(text)
        if found is not None:
            either.append(and_(Job.input_name == found[1], Job.new_tokens == int(found[2])))
    return or_(*either) if len(either) > 1 else either[0]


def campaign_job_count(session: Session, campaign_ids: list[int]) -> int:
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
    pool: bool = True,
    job_ids: Sequence[int] | None = None,
) -> list[Cell]:
    """The campaigns' cells, aggregated in SQL; pooled samples only where several jobs meet.

    identity=True groups by `farm compare`'s strict identity (weights hash, input text and
    measure mode on top of the report's fields) and keeps only jobs with a result.
    pool=False leaves the percentiles of multi-job cells unset (the caller pools the
    samples itself, for the cells it shows). job_ids: only these jobs.
    """
    stmt, keys, where = cell_statement(session, campaign_ids, filters, identity, job_ids)
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
        if not identity:  # a job yet without a result joins its stack's measured cell
            out = fold_pending(out)
    if pool:
        multi = [c for c in out if c.results > 1]
        if multi:
            pool_samples(multi, samples_ms(session, (j for c in multi for j in c.job_ids)))
        pool_generation(session, [c for c in multi if c.task == "text-generation"])
    return out


def cell_statement(
    session: Session,
    campaign_ids: list[int],
    filters: Filters | None = None,
    identity: bool = False,
    job_ids: Sequence[int] | None = None,
) -> tuple[Select[Any], list[Any], list[ColumnElement[bool]]]:
    """The one GROUP BY behind the cells (its keys and conditions too); on PostgreSQL it
    tunes the transaction for it (tuning.py)."""
    keys: list[Any] = [
        Job.model,
        Job.input_name,
        Job.batch_size,
        Job.batching,
        Job.backend,
        Job.options,
        Job.pool,
        Job.allocator,
        stack_column(),
        Job.measure,  # forward and pipeline cells never pool: a column each
    ]
    if identity:
        ident = identity_columns()
        keys += [ident["mode"], Result.weights_sha256, ident["input_text"]]
    keys += [Job.instances, Job.cores_per_instance]  # the throughput-mode layout
    keys += [Job.task, Job.new_tokens, Job.prompt_tokens]  # a task's cells never pool another's
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
        func.avg(Result.throughput),  # one job's; several: the mean (see unpooled)
        func.count(case((Result.verdict == "valid", 1))),
        func.count(case((invalid, 1))),
        func.aggregate_strings(case((invalid, cast(Result.reasons, String))), "\n"),
        func.count(case((Result.random_weights, 1))),
        func.min(case((Job.state == "failed", Job.error))),
        # The states of the jobs without a result (NULL, nothing to aggregate, for the rest).
        func.aggregate_strings(case((Result.id.is_(None), Job.state)), ","),
        func.max(Result.flops),
        # The peak when every result has one (they agree within a pool's hosts), else NULL.
        case((func.count(Result.peak_gflops) == results, func.avg(Result.peak_gflops))),
        *(func.max(getattr(Result, attr)) for attr in GENERATION_ATTRS),  # one job's
    ]
    where = filter_conditions(campaign_ids, filters or Filters())
    if identity:
        where.append(has_result)
    if job_ids is not None:
        where.append(Job.id.in_(job_ids))
    joined = select(*keys, *aggs).select_from(Job).outerjoin(Result, Result.job_id == Job.id)
    # In order of first job, the order reports show (sorting ints here is cheaper than in Python).
    return joined.where(*where).group_by(*keys).order_by(func.min(Job.id)), keys, where


def pool_generation(session: Session, cells: list[Cell]) -> None:
    """Generation metrics of multi-job cells from their jobs' pooled per-call samples."""
    ids = [j for c in cells for j in c.job_ids]
    if not ids:
        return
    stmt = select(Result.job_id, Result.samples, Result.ttft_samples).where(
        Result.job_id.in_(ids), Result.ttft_samples.is_not(None)
    )
    found = {
        job: (decode_samples(s), decode_samples(t))
        for job, s, t in session.execute(stmt)
        if t is not None
    }
    for cell in cells:
        parts = [found[j] for j in cell.job_ids if j in found]
        if len(parts) == len(cell.job_ids):
            samples, ttft = (np.concatenate(p) for p in zip(*parts, strict=True))
            stats = generation_stats(samples, ttft, cell.batch_size, cell.new_tokens)
            for attr in GENERATION_ATTRS:
                setattr(cell, attr, stats[attr])


def _build_cells(rows: Sequence[Any], nk: int, identity: bool) -> dict[tuple[Any, ...], Cell]:
    """Cells from aggregated rows (in order of first job), keyed by their group; built
    positionally: for 100,000 cells every attribute lookup and temporary counts. The job
    ids of a cell several jobs measured are left for the caller to fill."""
    cells: dict[tuple[Any, ...], Cell] = {}
    parse = parse_options
    for r in rows:
        (model, input_name, batch, batching, backend, options, pool, allocator, stack,
         measure) = r[:10]  # fmt: skip
        (jobs, n_results, first, result_job, tok, tok_max, n, weighted, mean, std, lo,
         hi, p50, p90, p99, thr, n_valid, n_invalid, reasons, random, error, open_states,
         flops, peak) = r[nk : nk + 24]  # fmt: skip
        opts, opts_key = parse(options)
        # Positional: ten times cheaper than keywords for 100,000 cells (order of Cell's fields).
        cell = Cell(
            model, input_name, batch, batching, backend, opts, pool, allocator,
            r[10] if identity else "fixed", stack, measure, opts_key,
            r[11] if identity else None, r[12] if identity else None,
            tok, tok_max, jobs, n_results,
            [result_job] if n_results == 1 else [],
            first, int(n) if n is not None else None,
            mean, std, lo, hi, p50, p90, p99, throughput(thr, mean, batch), False, n_valid,
            n_invalid, _reasons(reasons) if reasons else [],
            _states(open_states) if open_states else {},
            error, bool(random),
        )  # fmt: skip
        cell.flops, cell.peak_gflops = flops, peak
        cell.instances, cell.cores_per_instance = r[nk - 5], r[nk - 4]
        cell.task, cell.new_tokens, cell.prompt_tokens = r[nk - 3], r[nk - 2], r[nk - 1]
        if cell.task == "text-generation":
            cell.input = f"{input_name} +{cell.new_tokens} new"
            if n_results == 1:
                for attr, value in zip(GENERATION_ATTRS, r[nk + 24 :], strict=True):
                    setattr(cell, attr, value)
        if n_results > 1:  # until pooled: the exact pooled mean, no percentiles
            unpooled(cell, weighted)
        cells[r[:nk]] = cell
    return cells


def _merge_same_options(cells: dict[tuple[Any, ...], Cell]) -> list[Cell]:
    """Option sets stored differently but shown alike ({"x": 1} and {"x": "1"}): one cell."""
    texts = {key[5] for key in cells}
    if len({parse_options(t)[1] for t in texts}) == len(texts):
        return list(cells.values())
    merged: dict[tuple[Any, ...], Cell] = {}
    for cell in cells.values():
        key = cell_key(cell)
        if key in merged:
            merge(merged[key], cell)
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


def _chunks(job_ids: Iterable[int]) -> Iterator[list[int]]:
    ids = sorted(set(job_ids))
    for i in range(0, len(ids), SAMPLES_CHUNK):
        yield ids[i : i + SAMPLES_CHUNK]


def ttft_ms(session: Session, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
    """job id → its time-to-first-token samples in ms (text generation's jobs only)."""
    out = {}
    for chunk in _chunks(job_ids):
        stmt = select(Result.job_id, Result.ttft_samples).where(
            Result.job_id.in_(chunk), Result.ttft_samples.is_not(None)
        )
        for job, blob in session.execute(stmt):
            if blob is not None:
                out[job] = decode_samples(blob).astype(np.float64) / NS_PER_MS
    return out


def output_checks(session: Session, job_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
    """job id → the output check its result recorded (None where none was)."""
    out: dict[int, dict[str, Any] | None] = {}
    for chunk in _chunks(job_ids):
        stmt = select(Result.job_id, Result.output_check).where(Result.job_id.in_(chunk))
        out.update((job, check) for job, check in session.execute(stmt))
    return out
