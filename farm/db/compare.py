"""The compare layer: the same cells on two sides, a U test per cell, a verdict.

A side is a campaign, optionally narrowed by a selector (`pool=icelake`,
`backend=pytorch`, `dtype=bf16`, ...). Two cells are "the same cell" when they agree on
the model identity (weights hash), the input text, batch and batching, the backend with
its options, the allocator, the measure mode and the pool — less whatever the selectors
vary: `--a pool=icelake --b pool=zen4` matches cells on everything but the pool.

Matching happens in SQL, in one statement: each side aggregated per matched key, the
sides joined, each pair's estimated effect computed from the stored summaries (a
one-job cell's own; the exact pooled mean of a multi-job one; a multi-job percentile is
unknown until pooled and ranks first), and only the `limit` largest effects come back
(plus, with `fail_on_regression`, every pair that may be a regression). Their raw
samples are then loaded and the Mann–Whitney U test runs on those cells only. When
nothing matches, a slower path says exactly why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Float, String, and_, case, cast, false, func, literal, or_, select, true
from sqlalchemy.orm import Session

from farm.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, FASTER, SAME, SLOWER, compare_samples
from farm.db.models import Job, Result
from farm.db.pools import noise_floors
from farm.db.report import (
    SpecFields,
    _reasons,
    _unpooled,
    filter_conditions,
    parse_options,
    resolve_campaigns,
    samples_ms,
    set_pooled,
)
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
    matched = MatchQuery(session, metric, threshold, keep, filters)
    rows = matched.run(a_id, sel_a, b_id, sel_b, limit, fail_on_regression)
    if not rows or rows[0].ambiguous_a or rows[0].ambiguous_b:
        # Say precisely what is wrong (the slow way: only when there is nothing to show).
        _diagnose(session, a_id, b_id, sel_a, sel_b, filters, keep, a_label, b_label)
        raise ReportError(f"no cell of A ({a_label}) matches one of B ({b_label})")
    noise = noise_floors(session, {r.a_pool for r in rows} | {r.b_pool for r in rows})
    shown: list[Pair] = []
    to_test: list[Pair] = []
    beyond_shown = 0
    for r in rows:
        pair = Pair(_cell(r, "a_"), _cell(r, "b_"), r.threshold, r.a_est, r.b_est)
        if not limit or r.rank <= limit:
            shown.append(pair)
            if r.change is None or abs(r.change) > r.threshold:
                beyond_shown += 1
        to_test.append(pair)
    _test(session, to_test, metric, alpha)
    shown.sort(key=lambda p: p.a.first_job)
    first = rows[0]
    return CompareReport(
        a_label=a_label,
        b_label=b_label,
        metric=metric,
        alpha=alpha,
        threshold=threshold,
        varied=sorted(varied),
        pairs=shown,
        matched=first.matched,
        only_a=first.count_a - first.matched,
        only_b=first.count_b - first.matched,
        beyond=(first.beyond or 0) - beyond_shown,
        regressions=[p for p in to_test if p.verdict == SLOWER],
        noise=noise if threshold is None else {},
    )


# Per side and matched key: what a Cell needs (aggregated over the side's jobs).
SIDE_COLUMNS = (
    "model", "input", "batch", "batching", "backend", "options", "pool", "allocator", "mode",
    "jobs", "results", "first_job", "ids", "tokens", "tokens_max", "n", "weighted", "mean",
    "std", "min", "max", "p50", "p90", "p99", "throughput", "valid", "invalid", "reasons",
    "random", "ambiguous", "est",
)  # fmt: skip


class MatchQuery:
    """One statement: both sides aggregated per matched key, joined, ranked by effect.

    Returns the `limit` pairs with the largest estimated effect (and, for the regression
    gate, every pair that may be a regression), each carrying the totals: pairs matched,
    cells per side, pairs beyond the threshold, ambiguous keys per side.
    """

    def __init__(
        self,
        session: Session,
        metric: str,
        threshold: float | None,
        keep: list[str],
        filters: Filters,
    ) -> None:
        self.session, self.metric, self.threshold = session, metric, threshold
        self.keep, self.filters = keep, filters
        self.spec = SpecFields(session)
        s = self.spec
        self.identity: dict[str, Any] = {
            "weights": func.coalesce(
                Result.model_identity["weights_sha256"].as_string(), Job.model
            ),
            "input_text": func.coalesce(s.input_text, Job.input_name),
            "batch": Job.batch_size,
            "batching": s.batching_or_default(),
            "backend": Job.backend,
            "options": func.coalesce(s.options, ""),
            "allocator": s.allocator_or_default(),
            "mode": s.mode(),
            "pool": Job.pool,
        }

    def _selector(self, campaign_id: int, selector: dict[str, str]) -> list[Any]:
        s, where = self.spec, []
        simple = {
            "model": Job.model,
            "input": Job.input_name,
            "batching": s.batching_or_default(),
            "backend": Job.backend,
            "pool": Job.pool,
            "allocator": s.allocator_or_default(),
            "mode": s.mode(),
        }
        options = {k: v for k, v in selector.items() if k not in simple and k != "batch"}
        for key, value in selector.items():
            if key in simple:
                where.append(simple[key] == value)
            elif key == "batch":
                where.append(Job.batch_size == (int(value) if value.isdigit() else -1))
        if options:  # backend options: which stored option sets have them (few distinct)
            stmt = s.join(select(s.options).distinct().select_from(Job))
            stmt = stmt.where(Job.campaign_id == campaign_id)
            texts = [t for (t,) in self.session.execute(stmt)]
            wanted = [
                t for t in texts
                if all(_option(parse_options(t)[0], k) == v for k, v in options.items())
            ]  # fmt: skip
            where.append(s.options.in_(wanted) if wanted else false())
        return where

    def _side(self, campaign_id: int, selector: dict[str, str], name: str) -> Any:
        s, ident = self.spec, self.identity
        results = func.count(Result.id)
        invalid = Result.verdict == "invalid"
        kept = [ident[f] for f in self.keep]
        others = [ident[f] for f in IDENTITY if f not in self.keep]
        ambiguous = or_(false(), *(func.min(e) != func.max(e) for e in others))
        if self.metric == "mean":
            est = func.sum(Result.n * Result.mean_ms) / func.sum(Result.n)
        else:
            est = case((results == 1, func.max(getattr(Result, f"{self.metric}_ms"))))
        columns: list[Any] = [
            func.min(Job.model), func.min(Job.input_name), func.min(Job.batch_size),
            func.min(s.batching_or_default()), func.min(Job.backend), func.min(s.options),
            func.min(Job.pool), func.min(s.allocator_or_default()), func.min(s.mode()),
            func.count(Job.id), results, func.min(Job.id),
            case((results > 1, func.aggregate_strings(cast(Job.id, String), ","))),
            func.min(Result.tokens), func.max(Result.tokens), func.sum(Result.n),
            func.sum(Result.n * Result.mean_ms), func.max(Result.mean_ms),
            func.max(Result.std_ms), func.min(Result.min_ms), func.max(Result.max_ms),
            func.max(Result.p50_ms), func.max(Result.p90_ms), func.max(Result.p99_ms),
            func.max(Result.throughput),
            func.count(case((Result.verdict == "valid", 1))), func.count(case((invalid, 1))),
            func.aggregate_strings(case((invalid, cast(Result.reasons, String))), "\n"),
            func.count(case((Result.model_identity["weights"].as_string() == "random", 1))),
            case((ambiguous, 1), else_=0), est,
        ]  # fmt: skip
        labelled = [e.label(f"k{i}") for i, e in enumerate(kept)]
        labelled += [c.label(n) for c, n in zip(columns, SIDE_COLUMNS, strict=True)]
        stmt = s.join(select(*labelled).select_from(Job))
        stmt = stmt.join(Result, Result.job_id == Job.id)
        stmt = stmt.where(*filter_conditions([campaign_id], self.filters))
        stmt = stmt.where(*self._selector(campaign_id, selector))
        return stmt.group_by(*kept).cte(name)

    def _threshold(self, a: Any, b: Any) -> Any:
        """The threshold of a pair: given, else the larger calibrated floor of its pools."""
        if self.threshold is not None:
            return literal(self.threshold, Float)
        floors = {
            pool: noise[NOISE_OF[self.metric]]
            for pool, noise in noise_floors(self.session, None).items()
        }
        if not floors:
            return literal(DEFAULT_THRESHOLD, Float)

        def floor(pool: Any) -> Any:
            return case(*((pool == p, f) for p, f in floors.items()), else_=None)

        x, y = floor(a.c.pool), floor(b.c.pool)
        return case(
            (x.is_(None), func.coalesce(y, DEFAULT_THRESHOLD)),
            (y.is_(None), x),
            (x > y, x),
            else_=y,
        )

    def run(
        self,
        a_id: int,
        sel_a: dict[str, str],
        b_id: int,
        sel_b: dict[str, str],
        limit: int | None,
        fail_on_regression: bool,
    ) -> list[Any]:
        a = self._side(a_id, sel_a, "side_a")
        b = self._side(b_id, sel_b, "side_b")
        on = and_(true(), *(a.c[f"k{i}"] == b.c[f"k{i}"] for i in range(len(self.keep))))
        threshold = self._threshold(a, b)
        change = case((a.c.est > 0, b.c.est / a.c.est - 1.0))
        size = func.coalesce(func.abs(change), 1e300)
        beyond = or_(change.is_(None), func.abs(change) > threshold)
        pairs = (
            select(
                *(a.c[n].label(f"a_{n}") for n in SIDE_COLUMNS),
                *(b.c[n].label(f"b_{n}") for n in SIDE_COLUMNS),
                threshold.label("threshold"),
                change.label("change"),
                func.row_number().over(order_by=(size.desc(), a.c.first_job)).label("rank"),
                func.count().over().label("matched"),
                func.sum(case((beyond, 1), else_=0)).over().label("beyond"),
                select(func.count()).select_from(a).scalar_subquery().label("count_a"),
                select(func.count()).select_from(b).scalar_subquery().label("count_b"),
            )
            .select_from(a.join(b, on))
            .subquery("pairs")
        )
        stmt = select(
            pairs,
            select(func.count()).select_from(a).where(a.c.ambiguous > 0).scalar_subquery()
            .label("ambiguous_a"),
            select(func.count()).select_from(b).where(b.c.ambiguous > 0).scalar_subquery()
            .label("ambiguous_b"),
        )  # fmt: skip
        if limit:
            shown = pairs.c.rank <= limit
            if fail_on_regression:
                may_regress = or_(pairs.c.change.is_(None), pairs.c.change > pairs.c.threshold)
                shown = or_(shown, may_regress)
            stmt = stmt.where(shown)
        return list(self.session.connection().execute(stmt).all())


def _option(options: dict[str, Any], key: str) -> str | None:
    if key not in options:
        return None
    value = options[key]
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _cell(r: Any, p: str) -> Cell:
    """A Cell from one side's columns of a MatchQuery row (prefix 'a_' or 'b_')."""
    g = r._mapping
    opts, opts_key = parse_options(g[p + "options"])
    results = g[p + "results"]
    ids = g[p + "ids"]
    cell = Cell(
        model=g[p + "model"],
        input=g[p + "input"],
        batch_size=g[p + "batch"],
        batching=g[p + "batching"],
        backend=g[p + "backend"],
        backend_options=opts,
        options_key=opts_key,
        pool=g[p + "pool"],
        allocator=g[p + "allocator"],
        mode=g[p + "mode"],
        tokens=g[p + "tokens"],
        tokens_max=g[p + "tokens_max"],
        jobs=g[p + "jobs"],
        results=results,
        job_ids=[int(x) for x in ids.split(",")] if ids else [g[p + "first_job"]],
        first_job=g[p + "first_job"],
        n=int(g[p + "n"]) if g[p + "n"] is not None else None,
        mean_ms=g[p + "mean"],
        std_ms=g[p + "std"],
        min_ms=g[p + "min"],
        max_ms=g[p + "max"],
        p50_ms=g[p + "p50"],
        p90_ms=g[p + "p90"],
        p99_ms=g[p + "p99"],
        throughput=g[p + "throughput"],
        valid=g[p + "valid"],
        invalid=g[p + "invalid"],
        reasons=_reasons(g[p + "reasons"]),
        random_weights=bool(g[p + "random"]),
    )
    if results > 1:
        _unpooled(cell, g[p + "weighted"])
    elif cell.throughput is None and cell.mean_ms:
        cell.throughput = cell.batch_size * 1000.0 / cell.mean_ms
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
