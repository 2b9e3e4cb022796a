"""Match the cells of two compare sides in one narrow SQL statement.

Both sides' jobs are grouped together by the identity fields they must share (one pass,
no join of two aggregates): each group carries, per side, the number of results, the
estimated metric, the first job and the job ids. Groups with both sides are pairs,
ranked by estimated effect; only the `limit` largest come back (plus, for the regression
gate, every pair that may be a regression), with the totals: pairs, cells per side,
pairs beyond the threshold, ambiguous groups. The cells of the pairs returned are then
built from their job ids alone (`farm.db.reports.cells.aggregate_cells`).

The estimate is the stored summary of a one-job side, the exact pooled mean of a
multi-job one; a multi-job percentile is unknown until pooled, and ranks first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from farm.db.models import Job, Result
from farm.db.pools import noise_floors
from farm.db.reports.cells import (
    filter_conditions,
    identity_columns,
    parse_options,
    stack_condition,
)
from farm.db.reports.tuning import bytewise, tune_for_aggregation
from farm.reports.cells import IDENTITY
from farm.reports.comparison import Match, Matches, Side
from farm.reports.selectors import LAYOUT_FIELDS, Filters, option_value
from farm.significance import DEFAULT_THRESHOLD

# Which calibrated noise bounds an effect on each metric (mean noise, p99 noise).
NOISE_OF = {"mean": 0, "p50": 0, "p90": 1, "p99": 1}
SIMPLE_SELECTORS = {
    "model": Job.model,
    "input": Job.input_name,
    "batching": Job.batching,
    "backend": Job.backend,
    "pool": Job.pool,
    "allocator": Job.allocator,
    "mode": Job.mode,
    "measure": Job.measure,
}


def match(
    session: Session,
    a: Side,
    b: Side,
    keep: list[str],
    metric: str,
    threshold: float | None,
    filters: Filters,
    limit: int | None,
    fail_on_regression: bool,
) -> Matches:
    """Rank the pairs of A and B in SQL; return the ones to show and test, and the totals."""
    in_bytes = tune_for_aggregation(session)
    in_a = and_(Job.campaign_id == a.campaign_id, *_selector(session, a))
    in_b = and_(Job.campaign_id == b.campaign_id, *_selector(session, b))
    ident = identity_columns()
    kept = bytewise([ident[f] for f in keep], in_bytes)
    others = [ident[f] for f in IDENTITY if f not in keep]
    columns: list[Any] = []
    for name, side in (("a", in_a), ("b", in_b)):
        columns += [c.label(f"{name}_{label}") for label, c in _side_columns(side, others, metric)]
    groups = (
        select(*columns)
        .select_from(Job)
        .join(Result, Result.job_id == Job.id)
        .where(*filter_conditions({a.campaign_id, b.campaign_id}, filters), or_(in_a, in_b))
        .group_by(*kept)
        .subquery("groups")
    )
    g = groups.c
    both = and_(g.a_results > 0, g.b_results > 0)
    pair_threshold = _threshold(session, metric, threshold, g.a_pool, g.b_pool)
    change = case((and_(both, g.a_est > 0), g.b_est / g.a_est - 1.0))
    size = func.coalesce(func.abs(change), 1e300)
    beyond = and_(both, or_(change.is_(None), func.abs(change) > pair_threshold))
    everything = func.count().over()  # a window over all groups: totals ride on every row

    def total(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0)).over()

    ranked = select(
        g.a_ids, g.a_first, g.b_ids, g.b_first, g.a_est, g.b_est, both.label("both"),
        pair_threshold.label("threshold"), change.label("change"),
        func.row_number()
        .over(order_by=(case((both, 0), else_=1), size.desc(), g.a_first))
        .label("rank"),
        total(both).label("matched"), total(g.a_results > 0).label("count_a"),
        total(g.b_results > 0).label("count_b"), total(beyond).label("beyond"),
        total(g.a_ambiguous > 0).label("ambiguous_a"),
        total(g.b_ambiguous > 0).label("ambiguous_b"), everything.label("groups"),
    ).subquery("ranked")  # fmt: skip
    r = ranked.c
    shown: ColumnElement[bool] = r.rank <= limit if limit else literal(True)
    if limit and fail_on_regression:
        shown = or_(shown, r.change.is_(None), r.change > r.threshold)
    # The first row always comes back: it carries the totals even when nothing matched.
    stmt = select(ranked).where(or_(r.rank == 1, and_(r.both, shown))).order_by(r.rank)
    rows = session.execute(stmt).all()
    if not rows:
        return Matches([], 0, 0, 0, 0, 0, 0)
    first = rows[0]
    pairs = [
        Match(row.rank, _ids(row.a_ids, row.a_first), _ids(row.b_ids, row.b_first),
              row.a_est, row.b_est, float(row.threshold), row.change)
        for row in rows if row.both
    ]  # fmt: skip
    return Matches(
        pairs,
        int(first.matched),
        int(first.count_a),
        int(first.count_b),
        int(first.beyond or 0),
        int(first.ambiguous_a),
        int(first.ambiguous_b),
    )


def _side_columns(
    side: ColumnElement[bool], others: list[ColumnElement[Any]], metric: str
) -> list[tuple[str, Any]]:
    """One side's narrow aggregates within a group: only its rows count (FILTER)."""

    def of(aggregate: Any) -> Any:
        return aggregate.filter(side)

    results = of(func.count(Result.id))
    if metric == "mean":
        est = of(func.sum(Result.n * Result.mean_ms)) / of(func.sum(Result.n))
    else:
        est = case((results == 1, of(func.max(getattr(Result, f"{metric}_ms")))))
    ambiguous = or_(false(), *(of(func.min(e)) != of(func.max(e)) for e in others))
    return [
        ("results", results),
        ("est", est),
        ("first", of(func.min(Job.id))),
        ("ids", case((results > 1, of(func.aggregate_strings(cast(Job.id, String), ","))))),
        ("pool", of(func.min(Job.pool))),
        ("ambiguous", case((ambiguous, 1), else_=0)),
    ]


def _ids(text_ids: str | None, first: int | None) -> list[int]:
    if text_ids:
        return sorted(int(x) for x in text_ids.split(","))
    return [first] if first is not None else []


def _selector(session: Session, side: Side) -> list[ColumnElement[bool]]:
    """SQL conditions for a side's selector (`pool=icelake`, `batch=8`, `dtype=bf16`, ...)."""
    where: list[ColumnElement[bool]] = []
    options = {}
    for key, value in side.selector.items():
        if key in SIMPLE_SELECTORS:
            where.append(SIMPLE_SELECTORS[key] == value)
        elif key in ("batch", *LAYOUT_FIELDS):
            column = Job.batch_size if key == "batch" else getattr(Job, key)
            where.append(column == (int(value) if value.isdigit() else -1))
        elif key == "stack":
            where.append(stack_condition(value))
        else:
            options[key] = value
    if options:  # backend options: which stored option sets have them (few distinct)
        stmt = select(Job.options).distinct().where(Job.campaign_id == side.campaign_id)
        texts = [t for (t,) in session.execute(stmt)]
        wanted = [
            t for t in texts
            if all(option_value(parse_options(t)[0], k) == v for k, v in options.items())
        ]  # fmt: skip
        where.append(Job.options.in_(wanted) if wanted else false())
    return where


def _threshold(
    session: Session, metric: str, given: float | None, pool_a: Any, pool_b: Any
) -> Any:
    """The threshold of a pair: given, else the larger calibrated floor of its pools."""
    if given is not None:
        return literal(given, Float)
    floors = {
        pool: noise[NOISE_OF[metric]] for pool, noise in noise_floors(session, None).items()
    }
    if not floors:
        return literal(DEFAULT_THRESHOLD, Float)

    def floor(pool: Any) -> Any:
        return case(*((pool == p, f) for p, f in floors.items()), else_=None)

    x, y = floor(pool_a), floor(pool_b)
    return case(
        (x.is_(None), func.coalesce(y, DEFAULT_THRESHOLD)),
        (y.is_(None), x),
        (x > y, x),
        else_=y,
    )
