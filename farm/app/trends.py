"""One cell's metric across campaigns over time (nightly runs), as asv and Bencher show it,
with `farm compare`'s verdict between each point and the one before.

The values are the report's (`report`), the verdicts compare's (`compare`, the U test on
the raw samples): no number is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from farm.app.reports import ReportQueries, compare, report
from farm.errors import NotFound
from farm.reports.cells import Cell, ReportError
from farm.reports.comparison import COMPARE_METRICS
from farm.reports.selectors import Filters, parse_selector


@dataclass(frozen=True)
class TrendCell:
    """Which cell: a row (model, input, batch) and a column as reports label it."""

    model: str
    input: str
    batch: int
    column: str  # e.g. 'pytorch@icelake', 'ipex(dtype=bf16)@spr'

    @property
    def filters(self) -> Filters:
        return Filters(models=(self.model,), inputs=(self.input,), batches=(self.batch,))

    def describe(self) -> str:
        return f"{self.model} · {self.input} · batch {self.batch} · {self.column}"


@dataclass(frozen=True)
class TrendPoint:
    campaign: int
    name: str
    created_at: str | None
    value: float | None  # None: the campaign has no result for this cell
    n: int | None = None
    job_ids: tuple[int, ...] = ()
    invalid: bool = False
    reasons: tuple[str, ...] = ()
    # Against the previous point with a value: compare's ratio, p-value and verdict.
    ratio: float | None = None
    p: float | None = None
    verdict: str | None = None
    note: str | None = None  # why there is no verdict, when there is none


@dataclass(frozen=True)
class Trend:
    cell: TrendCell
    metric: str
    points: list[TrendPoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": asdict(self.cell),
            "metric": self.metric,
            "points": [asdict(p) for p in self.points],
        }


def find_cell(cells: Sequence[tuple[str, Cell]], cell: TrendCell) -> Cell | None:
    """The cell among (column label, cell) pairs that has this row and column."""
    for label, found in cells:
        if label == cell.column and (found.model, found.input, found.batch_size) == (
            cell.model, cell.input, cell.batch,
        ):  # fmt: skip
            return found
    return None


def trend(
    queries: ReportQueries,
    campaigns: Sequence[tuple[int, str, str | None]],
    cell: TrendCell,
    metric: str = "mean",
    alpha: float = 0.01,
) -> Trend:
    """The cell's `metric` in each campaign (oldest first) and the verdict against the
    previous campaign that measured it."""
    if metric not in COMPARE_METRICS:
        raise ReportError(f"trends show {', '.join(COMPARE_METRICS)}, not {metric!r}")
    if not campaigns:
        raise NotFound("no campaign of that name; `farm campaigns` lists them")
    selector = parse_selector(cell.column, "column")
    points: list[TrendPoint] = []
    previous: int | None = None
    for cid, name, created in campaigns:
        try:
            rep = report(queries, [str(cid)], cell.filters, (metric,))
        except (NotFound, ReportError):
            points.append(TrendPoint(cid, name, created, None, note="not measured"))
            continue
        table = rep.table
        labelled = [(table.label(key[1]), c) for key, c in table.cells.items()]
        found = find_cell(labelled, cell)
        if found is None or not found.results:
            points.append(TrendPoint(cid, name, created, None, note="no result"))
            continue
        point = TrendPoint(
            cid, name, created, found.value(metric), found.n, tuple(found.job_ids),
            bool(found.invalid), tuple(found.reasons),
        )  # fmt: skip
        if previous is not None:
            point = _against(queries, previous, point, selector, cell, metric, alpha)
        points.append(point)
        previous = cid
    return Trend(cell, metric, points)


def _against(
    queries: ReportQueries,
    previous: int,
    point: TrendPoint,
    selector: dict[str, str],
    cell: TrendCell,
    metric: str,
    alpha: float,
) -> TrendPoint:
    try:
        result = compare(queries, str(previous), str(point.campaign), selector, selector,
                         cell.filters, metric=metric, alpha=alpha, limit=0)  # fmt: skip
    except ReportError as exc:
        return _with(point, note=str(exc))
    pairs = [p for p in result.pairs if p.a.batch_size == cell.batch]
    if len(pairs) != 1:
        return _with(point, note=f"{len(pairs)} matching cells: not one to compare")
    pair = pairs[0]
    return _with(point, ratio=pair.ratio, p=pair.p, verdict=pair.verdict)


def _with(point: TrendPoint, **changes: Any) -> TrendPoint:
    return TrendPoint(**{**asdict(point), **changes})
