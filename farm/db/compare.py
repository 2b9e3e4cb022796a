"""The compare layer: the same cells on two sides, a U test per cell, a verdict.

A side is a campaign, optionally narrowed by a selector (`pool=icelake`,
`backend=pytorch`, `dtype=bf16`, ...). Two cells are "the same cell" when they agree on
the model identity (weights hash), the input text, batch and batching, the backend with
its options, the allocator, the measure mode and the pool — less whatever the selectors
vary: `--a pool=icelake --b pool=zen4` matches cells on everything but the pool.

Matching happens in SQL, in one narrow statement (`farm.db.matching`): the pairs ranked
by estimated effect, only the `limit` largest coming back (plus, with
`fail_on_regression`, every pair that may be a regression). The cells of those pairs are
then built from their jobs, their raw samples loaded, and the Mann–Whitney U test runs
on them only. When nothing matches, a slower path says exactly why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from farm.compare import DEFAULT_ALPHA, FASTER, SAME, SLOWER, compare_samples
from farm.db.matching import IDENTITY, Side, match
from farm.db.pools import noise_floors
from farm.db.report import _merge, resolve_campaigns, samples_ms, set_pooled
from farm.db.report import aggregate_cells as _aggregate
from farm.reporting import (
    Cell,
    Filters,
    ReportError,
    column_label,
    matches,
    options_text,
    selector_text,
)

COMPARE_METRICS = ("mean", "p50", "p90", "p99")
DEFAULT_LIMIT = 50
ID_CHUNK = 5000  # job ids per statement when building the cells of the pairs
# Identity fields a selector key varies (a varied field is left out of the match).
VARIES = {
    "model": ("weights",),
    "input": ("input_text",),
    "batch": ("batch",),
    "batching": ("batching",),
    "backend": ("backend", "options"),
    "pool": ("pool",),
    "allocator": ("allocator",),
    "mode": ("mode",),
}


def identity_values(cell: Cell) -> tuple[Any, ...]:
    """The cell's identity, in the order of IDENTITY."""
    return (
        cell.weights_sha256 or cell.model,
        cell.input_text if cell.input_text is not None else cell.input,
        cell.batch_size,
        cell.batching,
        cell.backend,
        cell.options_key if cell.options_key is not None else options_text(cell.backend_options),
        cell.allocator,
        cell.mode,
        cell.pool,
    )


def identity(cell: Cell) -> dict[str, Any]:
    return dict(zip(IDENTITY, identity_values(cell), strict=True))


def varied_fields(*selectors: dict[str, str]) -> set[str]:
    varied: set[str] = set()
    for selector in selectors:
        for key in selector:
            varied.update(VARIES.get(key, ("options",)))  # any other key: a backend option
    return varied


@dataclass
class Pair:
    """One matched cell: A and B, the metric on each, and (when tested) the verdict."""

    a: Cell
    b: Cell
    threshold: float
    value_a: float | None = None
    value_b: float | None = None
    p: float | None = None
    verdict: str | None = None  # None: not tested

    @property
    def ratio(self) -> float | None:
        if self.value_a is None or self.value_b is None or self.value_a <= 0:
            return None
        return self.value_b / self.value_a

    @property
    def change(self) -> float | None:
        r = self.ratio
        return None if r is None else r - 1.0

    @property
    def speedup(self) -> float | None:
        r = self.ratio
        return None if r is None or r <= 0 else 1.0 / r

    @property
    def tested(self) -> bool:
        return self.p is not None

    @property
    def flags(self) -> str:
        marks = []
        if self.a.invalid:
            marks.append("A invalid")
        if self.b.invalid:
            marks.append("B invalid")
        return ", ".join(marks)


@dataclass
class CompareReport:
    a_label: str
    b_label: str
    metric: str
    alpha: float
    threshold: float | None  # given on the command line; None: default or calibrated
    varied: list[str]
    pairs: list[Pair]  # the cells shown, in report order
    matched: int
    only_a: int
    only_b: int
    beyond: int  # matched cells not shown whose metric differs by more than the threshold
    regressions: list[Pair] = field(default_factory=list)  # significant slowdowns found
    noise: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        return self.matched - len(self.pairs)

    def counts(self) -> dict[str, int]:
        out = {FASTER: 0, SLOWER: 0, SAME: 0}
        for pair in self.pairs:
            if pair.verdict:
                out[pair.verdict] += 1
        return out


def compare(
    session: Session,
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
    """Match the cells of A and B in SQL, choose those to show, test them, give verdicts."""
    if metric not in COMPARE_METRICS:
        raise ReportError(f"compare works on {', '.join(COMPARE_METRICS)}, not {metric!r}")
    filters = filters or Filters()
    sel_a, sel_b = a_selector or {}, b_selector or {}
    (a_id, a_name), *_ = resolve_campaigns(session, [a_ref])
    (b_id, b_name), *_ = resolve_campaigns(session, [b_ref if b_ref is not None else a_ref])
    if a_id == b_id and sel_a == sel_b:
        raise ReportError(
            f"campaign {a_id} compared with itself: say what differs with --a/--b "
            "(e.g. --a pool=icelake --b pool=zen4) or --pools/--backends"
        )
    a_label = _side_label(a_id, a_name, sel_a)
    b_label = _side_label(b_id, b_name, sel_b)
    varied = varied_fields(sel_a, sel_b)
    keep = [f for f in IDENTITY if f not in varied]
    found = match(
        session, Side(a_id, sel_a), Side(b_id, sel_b), keep, metric, threshold, filters,
        limit, fail_on_regression,
    )  # fmt: skip
    if not found.pairs or found.ambiguous_a or found.ambiguous_b:
        # Say precisely what is wrong (the slow way: only when there is nothing to show).
        _diagnose(session, a_id, b_id, sel_a, sel_b, filters, keep, a_label, b_label)
        raise ReportError(f"no cell of A ({a_label}) matches one of B ({b_label})")
    side_jobs: dict[int, set[int]] = {a_id: set(), b_id: set()}
    for m in found.pairs:
        side_jobs[a_id].update(m.a_jobs)
        side_jobs[b_id].update(m.b_jobs)
    cells = pair_cells(session, side_jobs)
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
    noise = noise_floors(session, {p.a.pool for p in to_test} | {p.b.pool for p in to_test})
    _test(session, to_test, metric, alpha)
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
        regressions=[p for p in to_test if p.verdict == SLOWER],
        noise=noise if threshold is None else {},
    )


def pair_cells(session: Session, side_jobs: dict[int, set[int]]) -> dict[int, Cell]:
    """job id → the cell (strict identity) it belongs to, for these jobs of each campaign
    only (per campaign: A and B may share cells' identities)."""
    by_job: dict[int, Cell] = {}
    for campaign, job_ids in side_jobs.items():
        ids = sorted(job_ids)
        for i in range(0, len(ids), ID_CHUNK):
            chunk = ids[i : i + ID_CHUNK]
            for cell in _aggregate(session, [campaign], None, True, False, job_ids=chunk):
                for job in cell.job_ids:
                    by_job[job] = cell
    return by_job


def _side_cell(cells: dict[int, Cell], jobs: list[int]) -> Cell:
    """One side of a pair: its jobs' cell (jobs a chunk boundary split merged back)."""
    parts = list({id(cells[j]): cells[j] for j in jobs}.values())
    cell = parts[0]
    for other in parts[1:]:
        _merge(cell, other)
    return cell


def _diagnose(
    session: Session,
    a_id: int,
    b_id: int,
    sel_a: dict[str, str],
    sel_b: dict[str, str],
    filters: Filters,
    keep: list[str],
    a_label: str,
    b_label: str,
) -> None:
    """Raise the precise reason nothing could be compared: an empty or ambiguous side, or
    identity fields that keep the sides apart."""
    cells_a = _aggregate(session, [a_id], filters, identity=True, pool_samples=False)
    cells_b = (
        cells_a
        if b_id == a_id
        else _aggregate(session, [b_id], filters, identity=True, pool_samples=False)
    )
    side_a = [c for c in cells_a if matches(sel_a, c)]
    side_b = [c for c in cells_b if matches(sel_b, c)]
    for label, sel, side in (("A", sel_a, side_a), ("B", sel_b, side_b)):
        if not side:
            raise ReportError(_empty_side(label, a_label, b_label, sel, filters))
    index_a = _index(side_a, keep, "A")
    index_b = _index(side_b, keep, "B")
    if not any(k in index_b for k in index_a):
        raise ReportError(_no_match(a_label, b_label, keep, side_a, side_b))


def label_of(side: str, a_label: str, b_label: str) -> str:
    return a_label if side == "A" else b_label


def _empty_side(
    side: str, a_label: str, b_label: str, selector: dict[str, str], filters: Filters
) -> str:
    what = f"side {side} ({label_of(side, a_label, b_label)}) has no result"
    if filters:
        what += f" for {filters.describe()}"
    return what + ("" if selector else "; is the campaign finished? `farm status` tells")


def _no_match(
    a_label: str, b_label: str, keep: list[str], side_a: list[Cell], side_b: list[Cell]
) -> str:
    """Say which identity fields keep the sides apart, and how to vary them."""
    message = f"no cell of A ({a_label}) matches one of B ({b_label}); cells match on " + (
        ", ".join(keep)
    )
    apart = []
    for f in keep:
        values_a = {identity(c)[f] for c in side_a}
        values_b = {identity(c)[f] for c in side_b}
        if not values_a & values_b:
            apart.append(f)
    keys = {"weights": "model", "input_text": "input", "options": "backend"}
    if apart:
        hint = ", ".join(dict.fromkeys(keys.get(f, f) for f in apart))
        message += f"; A and B differ in {', '.join(apart)}: name {hint} in --a and --b"
        if "weights" in apart:
            message += " (the same model label with other weights is another model)"
    return message


def _side_label(cid: int, name: str, selector: dict[str, str]) -> str:
    label = f"campaign {cid} ({name})"
    return f"{label} {selector_text(selector)}" if selector else label


def _index(cells: list[Cell], keep: list[str], side: str) -> dict[tuple[Any, ...], Cell]:
    index: dict[tuple[Any, ...], Cell] = {}
    positions = [IDENTITY.index(f) for f in keep]
    for cell in cells:
        values = identity_values(cell)
        key = tuple([values[i] for i in positions])
        if key in index:
            other, ident = identity(index[key]), identity(cell)
            differ = [f for f in IDENTITY if other[f] != ident[f]]
            raise ReportError(
                f"side {side} has several cells for {cell.model} · {cell.input} · batch "
                f"{cell.batch_size} ({column_label(index[key].column_key)} and "
                f"{column_label(cell.column_key)}: they differ in {', '.join(differ)}); "
                f"narrow --{side.lower()}, e.g. with a backend option or pool"
            )
        index[key] = cell
    return index


def _test(session: Session, pairs: list[Pair], metric: str, alpha: float) -> None:
    """Load the samples of these cells only; exact statistics and the U test for each."""
    if not pairs:
        return
    ids = {j for p in pairs for c in (p.a, p.b) for j in c.job_ids}
    values = samples_ms(session, ids)
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
