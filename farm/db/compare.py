"""The compare layer: the same cells on two sides, a U test per cell, a verdict.

A side is a campaign, optionally narrowed by a selector (`pool=icelake`,
`backend=pytorch`, `dtype=bf16`, ...). Two cells are "the same cell" when they agree on
the model identity (weights hash), the input text, batch and batching, the backend with
its options, the allocator, the measure mode and the pool — less whatever the selectors
vary: `--a pool=icelake --b pool=zen4` matches cells on everything but the pool.

The metric of every matched cell comes from SQL without touching a samples blob (a
one-job cell's stored summary; the exact pooled mean of a multi-job one), so the cells
to show are chosen cheaply; their raw samples are then loaded and the Mann–Whitney U
test runs on those cells only (and, with `fail_on_regression`, on every cell that
could be a regression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from farm.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, FASTER, SAME, SLOWER, compare_samples
from farm.db.pools import noise_floors
from farm.db.report import aggregate_cells as _aggregate
from farm.db.report import resolve_campaigns, samples_ms, set_pooled
from farm.reporting import (
    METRICS,
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
# Which calibrated noise bounds an effect on each metric.
NOISE_OF = {"mean": 0, "p50": 0, "p90": 1, "p99": 1}
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
IDENTITY = ("weights", "input_text", "batch", "batching", "backend", "options", "allocator",
            "mode", "pool")  # fmt: skip


def identity_values(cell: Cell) -> tuple[Any, ...]:
    """The cell's identity, in the order of IDENTITY."""
    return (
        cell.weights_sha256 or cell.model,
        cell.input_text if cell.input_text is not None else cell.input,
        cell.batch_size,
        cell.batching,
        cell.backend,
        cell.options_key or options_text(cell.backend_options),
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
    """Match the cells of A and B, choose those to show, test them, give verdicts."""
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
    varied = varied_fields(sel_a, sel_b)
    keep = [f for f in IDENTITY if f not in varied]
    index_a = _index(side_a, keep, "A")
    index_b = _index(side_b, keep, "B")
    common = [k for k in index_a if k in index_b]
    if not common:
        raise ReportError(_no_match(a_label, b_label, keep, side_a, side_b))
    pools = {c.pool for c in side_a + side_b}
    noise = noise_floors(session, pools) if threshold is None else {}
    attr = METRICS[metric]
    thresholds: dict[tuple[str, str], float] = {}
    pairs = []
    for key in common:
        a, b = index_a[key], index_b[key]
        pools_ab = (a.pool, b.pool)
        limit_ab = thresholds.get(pools_ab)
        if limit_ab is None:
            limit_ab = thresholds[pools_ab] = _threshold(threshold, noise, metric, *pools_ab)
        # The estimate from SQL: exact for one-job cells, and for the mean of any cell.
        pairs.append(Pair(a, b, limit_ab, getattr(a, attr), getattr(b, attr)))

    shown = pairs if not limit or len(pairs) <= limit else _largest(pairs, limit)
    shown_ids = {id(p) for p in shown}
    to_test = list(shown)
    if fail_on_regression:
        to_test += [p for p in pairs if id(p) not in shown_ids and _may_regress(p)]
    _test(session, to_test, metric, alpha)
    beyond = sum(
        1
        for p in pairs
        if id(p) not in shown_ids and (p.change is None or abs(p.change) > p.threshold)
    )
    order = {id(p): i for i, p in enumerate(pairs)}
    shown.sort(key=lambda p: order[id(p)])
    return CompareReport(
        a_label=a_label,
        b_label=b_label,
        metric=metric,
        alpha=alpha,
        threshold=threshold,
        varied=sorted(varied),
        pairs=shown,
        matched=len(pairs),
        only_a=len(index_a) - len(common),
        only_b=len(index_b) - len(common),
        beyond=beyond,
        regressions=[p for p in to_test if p.verdict == SLOWER],
        noise=noise,
    )


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


def _threshold(
    given: float | None,
    noise: dict[str, tuple[float, float]],
    metric: str,
    pool_a: str,
    pool_b: str,
) -> float:
    if given is not None:
        return given
    floors = [noise[p][NOISE_OF[metric]] for p in (pool_a, pool_b) if p in noise]
    return max(floors) if floors else DEFAULT_THRESHOLD


def _largest(pairs: list[Pair], limit: int) -> list[Pair]:
    """The `limit` cells with the largest effect; unknown estimates first (they may be)."""

    def size(p: Pair) -> float:
        change = p.change
        return math.inf if change is None else abs(change)

    return sorted(pairs, key=size, reverse=True)[:limit]


def _may_regress(pair: Pair) -> bool:
    change = pair.change
    return change is None or change > pair.threshold


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
