"""The report use cases: report, per-job rows, compare, export, plot's data.

They read through a `ReportQueries` port; `farm.db.reports.SqlReports` implements it and
the CLI wires it in. Nothing here knows SQL: the cells come aggregated, the layout, the
exports and the U test are the core's (`farm.reports`, `farm.significance`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from farm.app.gencompare import test_generation
from farm.errors import NotFound
from farm.reports.cells import (
    GENERATION,
    IDENTITY,
    Cell,
    ReportError,
    merge,
    priced,
    set_pooled,
)
from farm.reports.comparison import (
    COMPARE_METRICS,
    DEFAULT_LIMIT,
    CompareReport,
    Matches,
    Pair,
    Side,
    empty_side,
    index_side,
    no_match,
    same_measure,
    side_label,
    varied_fields,
)
from farm.reports.exports import RAW_KEYS, RAW_TTFT
from farm.reports.layout import Report, task_tables
from farm.reports.selectors import Filters, matches
from farm.significance import DEFAULT_ALPHA, compare_samples
from farm.stats import NS_PER_MS, decode_samples

ID_CHUNK = 5000  # job ids per query when building the cells of compare's pairs


class ReportQueries(Protocol):
    """What the report use cases read: campaigns, cells, job rows, samples, prices, pairs."""

    def campaigns(self, refs: Iterable[str]) -> list[tuple[int, str]]:
        """(id, name) of each campaign reference (id or name), in order, without repeats."""

    def job_count(self, campaign_ids: list[int]) -> int:
        """How many jobs these campaigns have, whatever their state."""

    def cells(
        self,
        campaign_ids: list[int],
        filters: Filters | None = None,
        identity: bool = False,
        pool: bool = True,
        job_ids: Sequence[int] | None = None,
    ) -> list[Cell]:
        """The campaigns' cells in order of first job (see farm.db.reports.cells)."""

    def job_rows(self, campaign_ids: list[int], filters: Filters) -> list[dict[str, Any]]:
        """One object per job (the JSON contract's keys), in campaign and job order."""

    def prices(self, pools: set[str]) -> dict[str, tuple[float, str]]:
        """pool → (price per hour, currency), for the priced pools among these."""

    def noise_floors(self, pools: set[str] | None) -> dict[str, tuple[float, float]]:
        """pool → calibrated (mean, p99) noise, for the calibrated pools among these."""

    def samples(self, job_ids: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        """(job id, encoded raw samples) in job order."""

    def samples_ms(self, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
        """job id → its raw samples in ms."""

    def ttft_ms(self, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
        """job id → its time-to-first-token samples in ms (text generation's jobs)."""

    def output_checks(self, job_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        """job id → the output check its result recorded (None where none was)."""

    def match(
        self,
        a: Side,
        b: Side,
        keep: list[str],
        metric: str,
        threshold: float | None,
        filters: Filters,
        limit: int | None,
        fail_on_regression: bool,
    ) -> Matches:
        """The pairs of A and B to show and test (ranked by estimated effect), with totals."""


# --- report ------------------------------------------------------------------------------


def require_cells(
    queries: ReportQueries,
    campaigns: list[tuple[int, str]],
    cells: list[Cell],
    filters: Filters,
) -> None:
    """A clear message when there is nothing to report: an empty campaign, or filters."""
    names = ", ".join(f"{cid} ({name})" for cid, name in campaigns)
    what = "campaign" if len(campaigns) == 1 else "campaigns"
    if not cells:
        if queries.job_count([cid for cid, _ in campaigns]) == 0:
            raise NotFound(f"{what} {names} has no jobs: nothing to report")
        raise ReportError(f"no job of {what} {names} matches {filters.describe()}")


def apply_prices(queries: ReportQueries, cells: list[Cell]) -> list[str]:
    """Fill each cell's cost per million inferences; return the pools that have no price."""
    pools = {c.pool for c in cells}
    known = queries.prices(pools)
    for cell in cells:
        found = known.get(cell.pool)
        if found is not None:
            cell.with_cost(*found)
    return sorted(pools - set(known))


def report(
    queries: ReportQueries,
    refs: Iterable[str],
    filters: Filters | None = None,
    metrics: Sequence[str] | None = None,
    baseline: dict[str, str] | None = None,
    cost: bool = False,
    checks: bool = False,
) -> Report:
    """`farm report`: campaigns → cells (pooled where needed) → the blog's table, one per
    task. By default mean and p99, and TTFT / TPOT / tokens/s in text generation's.
    checks=True loads the jobs' output checks, for the views that say what they measured."""
    filters = filters or Filters()
    campaigns = queries.campaigns(refs)
    cells = queries.cells([cid for cid, _ in campaigns], filters)
    require_cells(queries, campaigns, cells, filters)
    unpriced = apply_prices(queries, cells) if cost else []
    rep = Report(campaigns, task_tables(cells, metrics, baseline), cost, unpriced)
    if checks:
        rep.checks = queries.output_checks(j for c in cells for j in c.job_ids)
    return rep


def job_rows(
    queries: ReportQueries, refs: Iterable[str], filters: Filters, cost: bool = False
) -> list[dict[str, Any]]:
    """`farm report --format json` and `export --jobs`: one object per job, priced if asked."""
    found = queries.campaigns(refs)
    rows = queries.job_rows([cid for cid, _ in found], filters)
    if cost:
        known = queries.prices({r["pool"] for r in rows})
        for row in rows:
            row["price_per_hour"], row["currency"], row["cost_per_million"] = priced(
                known.get(row["pool"]), row["mean_ms"], row["batch_size"],
                row["throughput"] if row.get("cores_per_instance") else None,
            )
    return rows


def plot_data(
    queries: ReportQueries,
    refs: Iterable[str],
    filters: Filters,
    metric: str,
    baseline: dict[str, str] | None,
) -> Report:
    """`farm plot`: the report of one metric, which must have results to draw."""
    rep = report(queries, refs, filters, (metric,), baseline)
    if not rep.has_results:
        raise ReportError(f"{rep.title} has no results yet: nothing to plot")
    return rep


# --- export --raw ------------------------------------------------------------------------


def raw_jobs(queries: ReportQueries, refs: Iterable[str], filters: Filters) -> list[dict[str, Any]]:
    """The jobs whose raw samples `farm export --raw` writes: those with a result."""
    found = queries.campaigns(refs)
    rows = queries.job_rows([cid for cid, _ in found], filters)
    with_results = [r for r in rows if r["n"]]
    if not with_results:
        require_cells(queries, found, [], filters)  # no jobs / no match: say which
        raise ReportError("no results to export yet; `farm status` tells more")
    return with_results


def write_raw(queries: ReportQueries, rows: list[dict[str, Any]], out: IO[str]) -> int:
    """One CSV line per sample, job by job (loaded in chunks, decoded one job at a time);
    with text generation's jobs, each call's TTFT in a last column (empty for the others)."""
    writer = csv.writer(out, lineterminator="\n")
    generation = [r["job"] for r in rows if r.get("task") == GENERATION]
    writer.writerow(RAW_KEYS + (RAW_TTFT,) if generation else RAW_KEYS)
    ttft = queries.ttft_ms(generation) if generation else {}
    by_job = {r["job"]: r for r in rows}
    count = 0
    for job_id, blob in queries.samples(by_job):
        r = by_job[job_id]
        options = json.dumps(r["backend_options"], sort_keys=True)
        fixed = (
            r["campaign"], job_id, r["model"], r["input"], r["tokens"], r["batch_size"],
            r["batching"], r["backend"], options, r["allocator"], r["pool"], r["host"],
            r["worker"],
        )  # fmt: skip
        values = decode_samples(blob).astype(np.float64) / NS_PER_MS
        if generation:
            first = ttft.get(job_id)
            writer.writerows(
                (*fixed, i, repr(float(v)), "" if first is None else repr(float(first[i])))
                for i, v in enumerate(values)
            )
        else:
            writer.writerows((*fixed, i, repr(float(v))) for i, v in enumerate(values))
        count += values.size
    return count


# --- compare -----------------------------------------------------------------------------


def compare(
    queries: ReportQueries,
    a_ref: str,
    b_ref: str | None = None,
    a_selector: dict[str, str] | None = None,
    b_selector: dict[str, str] | None = None,
    filters: Filters | None = None,
    metric: str = "mean",
    threshold: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    limit: int | None = DEFAULT_LIMIT,
    fail_on_regression: bool = False,
) -> CompareReport:
    """`farm compare`: match the cells of A and B, choose those to show, test, give verdicts.

    Matching happens in the query (the pairs ranked by estimated effect, only the `limit`
    largest coming back, plus with `fail_on_regression` every pair that may be a
    regression); then the cells of those pairs are built from their jobs, their raw
    samples loaded and the Mann–Whitney U test run on them only. When nothing matches, a
    slower path says exactly why.
    """
    if metric not in COMPARE_METRICS:
        raise ReportError(f"compare works on {', '.join(COMPARE_METRICS)}, not {metric!r}")
    filters = filters or Filters()
    sel_a, sel_b = a_selector or {}, b_selector or {}
    (a_id, a_name), *_ = queries.campaigns([a_ref])
    (b_id, b_name), *_ = queries.campaigns([b_ref if b_ref is not None else a_ref])
    if a_id == b_id and sel_a == sel_b:
        raise ReportError(
            f"campaign {a_id} compared with itself: say what differs with --a/--b "
            "(e.g. --a pool=icelake --b pool=zen4) or --pools/--backends"
        )
    a_label = side_label(a_id, a_name, sel_a)
    b_label = side_label(b_id, b_name, sel_b)
    same_measure(sel_a, sel_b)
    varied = varied_fields(sel_a, sel_b)
    keep = [f for f in IDENTITY if f not in varied]
    found = queries.match(
        Side(a_id, sel_a), Side(b_id, sel_b), keep, metric, threshold, filters, limit,
        fail_on_regression,
    )  # fmt: skip
    if not found.pairs or found.ambiguous_a or found.ambiguous_b:
        # Say precisely what is wrong (the slow way: only when there is nothing to show).
        _diagnose(queries, Side(a_id, sel_a), Side(b_id, sel_b), filters, keep, a_label, b_label)
        raise ReportError(f"no cell of A ({a_label}) matches one of B ({b_label})")
    side_jobs: dict[int, set[int]] = {a_id: set(), b_id: set()}
    for m in found.pairs:
        side_jobs[a_id].update(m.a_jobs)
        side_jobs[b_id].update(m.b_jobs)
    cells = pair_cells(queries, side_jobs)
    shown: list[Pair] = []
    to_test: list[Pair] = []
    beyond_shown = 0
    for m in found.pairs:
        a, b = _side_cell(cells, m.a_jobs), _side_cell(cells, m.b_jobs)
        pair = Pair(a, b, m.threshold, m.a_est, m.b_est)
        if not limit or m.rank <= limit:
            shown.append(pair)
            if m.change is None or abs(m.change) > m.threshold:
                beyond_shown += 1
        to_test.append(pair)
    noise = queries.noise_floors({p.a.pool for p in to_test} | {p.b.pool for p in to_test})
    _test(queries, to_test, metric, alpha)
    shown.sort(key=lambda p: p.a.first_job)
    return CompareReport(
        a_label=a_label,
        b_label=b_label,
        metric=metric,
        alpha=alpha,
        threshold=threshold,
        varied=sorted(varied),
        pairs=shown,
        matched=found.matched,
        only_a=found.count_a - found.matched,
        only_b=found.count_b - found.matched,
        beyond=found.beyond - beyond_shown,
        regressions=[p for p in to_test if p.regressed],
        noise=noise if threshold is None else {},
    )


def pair_cells(queries: ReportQueries, side_jobs: dict[int, set[int]]) -> dict[int, Cell]:
    """job id → the cell (strict identity) it belongs to, for these jobs of each campaign
    only (per campaign: A and B may share cells' identities)."""
    by_job: dict[int, Cell] = {}
    for campaign, job_ids in side_jobs.items():
        ids = sorted(job_ids)
        for i in range(0, len(ids), ID_CHUNK):
            chunk = ids[i : i + ID_CHUNK]
            for cell in queries.cells([campaign], None, True, False, job_ids=chunk):
                for job in cell.job_ids:
                    by_job[job] = cell
    return by_job


def _side_cell(cells: dict[int, Cell], jobs: list[int]) -> Cell:
    """One side of a pair: its jobs' cell (jobs a chunk boundary split merged back)."""
    parts = list({id(cells[j]): cells[j] for j in jobs}.values())
    cell = parts[0]
    for other in parts[1:]:
        merge(cell, other)
    return cell


def _diagnose(
    queries: ReportQueries,
    a: Side,
    b: Side,
    filters: Filters,
    keep: list[str],
    a_label: str,
    b_label: str,
) -> None:
    """Raise the precise reason nothing could be compared: an empty or ambiguous side, or
    identity fields that keep the sides apart."""
    cells_a = queries.cells([a.campaign_id], filters, identity=True, pool=False)
    cells_b = (
        cells_a
        if b.campaign_id == a.campaign_id
        else queries.cells([b.campaign_id], filters, identity=True, pool=False)
    )
    side_a = [c for c in cells_a if matches(a.selector, c)]
    side_b = [c for c in cells_b if matches(b.selector, c)]
    for name, label, side in (("A", a_label, a), ("B", b_label, b)):
        if not (side_a if name == "A" else side_b):
            raise ReportError(empty_side(name, label, side.selector, filters))
    index_a = index_side(side_a, keep, "A")
    index_b = index_side(side_b, keep, "B")
    if not any(k in index_b for k in index_a):
        raise ReportError(no_match(a_label, b_label, keep, side_a, side_b))


def _test(queries: ReportQueries, pairs: list[Pair], metric: str, alpha: float) -> None:
    """Load the samples of these cells only; exact statistics and the U test for each."""
    if not pairs:
        return
    ids = {j for p in pairs for c in (p.a, p.b) for j in c.job_ids}
    values = queries.samples_ms(ids)
    for pair in pairs:
        arrays = []
        for cell in (pair.a, pair.b):
            parts = [values[j] for j in cell.job_ids if j in values]
            arr = np.concatenate(parts) if parts else np.empty(0)
            if cell.results > 1:
                set_pooled(cell, arr)
            arrays.append(arr)
        if arrays[0].size == 0 or arrays[1].size == 0:
            continue
        result = compare_samples(arrays[0], arrays[1], metric, pair.threshold, alpha)
        pair.value_a, pair.value_b = result.a, result.b
        pair.p, pair.verdict = result.test.p, result.verdict
    test_generation(queries, pairs, values, metric, alpha)
