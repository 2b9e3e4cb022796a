"""What `farm compare` shows: matched pairs of cells, their verdicts, and why nothing matched.

A side is a campaign, optionally narrowed by a selector (`pool=icelake`, `backend=pytorch`,
`dtype=bf16`, ...). Two cells are "the same cell" when they agree on the identity
(`farm.reports.cells.IDENTITY`) less whatever the selectors vary: `--a pool=icelake
--b pool=zen4` matches cells on everything but the pool. The U test is `farm.significance`.

A pair of text generation cells is also compared on TTFT and TPOT (the same statistic of
their per-call values, the U test on those), each with its own verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farm.reports.cells import IDENTITY, Cell, ReportError, identity, identity_values
from farm.reports.labels import column_labels
from farm.reports.selectors import Filters, selector_text
from farm.significance import FASTER, SAME, SLOWER

COMPARE_METRICS = ("mean", "p50", "p90", "p99")
# Text generation's per-call metrics compared beside the end-to-end latency: name → label.
GENERATION_COMPARE = {"ttft": "TTFT", "tpot": "TPOT"}
DEFAULT_LIMIT = 50
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
    "stack": ("stack",),  # only then are cells of two stacks the same cell
    "instances": ("instances",),
    "cores_per_instance": ("cores_per_instance",),
    # Compare never matches across measures: naming one narrows a side, varies nothing.
    "measure": (),
}


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a campaign and the selector that narrows it."""

    campaign_id: int
    selector: dict[str, str]


@dataclass
class Match:
    """One matched pair as ranked by the query: each side's estimate and job ids."""

    rank: int
    a_jobs: list[int]
    b_jobs: list[int]
    a_est: float | None
    b_est: float | None
    threshold: float
    change: float | None


@dataclass
class Matches:
    """The pairs to show and test, and the totals of every pair the query ranked."""

    pairs: list[Match]
    matched: int
    count_a: int
    count_b: int
    beyond: int  # pairs whose estimated change is past the threshold (or unknown)
    ambiguous_a: int  # groups of a side whose jobs differ in a field the selectors vary
    ambiguous_b: int


def same_measure(a: dict[str, str], b: dict[str, str]) -> None:
    """Compare never matches across measures: a forward cell and a pipeline cell time
    different things, so --a and --b naming different ones is refused outright."""
    if "measure" in a and "measure" in b and a["measure"] != b["measure"]:
        raise ReportError(
            f"--a and --b select different measures ({a['measure']} and {b['measure']}): a "
            "forward cell times the model call alone, a pipeline cell the whole call, so "
            "they never match; name the same measure on both sides, or none"
        )


def varied_fields(*selectors: dict[str, str]) -> set[str]:
    varied: set[str] = set()
    for selector in selectors:
        for key in selector:
            varied.update(VARIES.get(key, ("options",)))  # any other key: a backend option
    return varied


class Ratios:
    """B/A as a change and a speed-up, derived from a class's `ratio` (None: no ratio)."""

    @property
    def ratio(self) -> float | None:
        raise NotImplementedError

    @property
    def change(self) -> float | None:
        r = self.ratio
        return None if r is None else r - 1.0

    @property
    def speedup(self) -> float | None:
        r = self.ratio
        return None if r is None or r <= 0 else 1.0 / r


@dataclass
class Versus(Ratios):
    """B against A on one more metric of a pair: the statistic of each side's per-call
    values, the U test's p on them and the verdict (text generation's TTFT and TPOT)."""

    value_a: float
    value_b: float
    p: float
    verdict: str

    @property
    def ratio(self) -> float | None:
        return self.value_b / self.value_a if self.value_a > 0 else None


@dataclass
class Pair(Ratios):
    """One matched cell: A and B, the metric on each, and (when tested) the verdict."""

    a: Cell
    b: Cell
    threshold: float
    value_a: float | None = None
    value_b: float | None = None
    p: float | None = None
    verdict: str | None = None  # None: not tested
    # Text generation: TTFT and TPOT compared too (GENERATION_COMPARE's names), when tested.
    by_metric: dict[str, Versus] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        """Significantly slower in B, end to end or on any metric compared beside it."""
        return SLOWER in (self.verdict, *(v.verdict for v in self.by_metric.values()))

    @property
    def ratio(self) -> float | None:
        if self.value_a is None or self.value_b is None or self.value_a <= 0:
            return None
        return self.value_b / self.value_a

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

    def counts(self, metric: str | None = None) -> dict[str, int]:
        """Verdicts of the pairs shown: end to end, or on one of GENERATION_COMPARE."""
        out = {FASTER: 0, SLOWER: 0, SAME: 0}
        for pair in self.pairs:
            versus = pair.by_metric.get(metric) if metric else None
            verdict = pair.verdict if metric is None else versus and versus.verdict
            if verdict:
                out[verdict] += 1
        return out

    @property
    def compared(self) -> list[str]:
        """The metrics of GENERATION_COMPARE some pair shown was compared on."""
        return [m for m in GENERATION_COMPARE if any(m in p.by_metric for p in self.pairs)]


def side_label(cid: int, name: str, selector: dict[str, str]) -> str:
    label = f"campaign {cid} ({name})"
    return f"{label} {selector_text(selector)}" if selector else label


def empty_side(side: str, label: str, selector: dict[str, str], filters: Filters) -> str:
    """Why side A or B has nothing to compare."""
    what = f"side {side} ({label}) has no result"
    if filters:
        what += f" for {filters.describe()}"
    return what + ("" if selector else "; is the campaign finished? `farm status` tells")


def no_match(
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


def index_side(cells: list[Cell], keep: list[str], side: str) -> dict[tuple[Any, ...], Cell]:
    """The cells of a side by the identity fields kept; an error when two share them."""
    index: dict[tuple[Any, ...], Cell] = {}
    positions = [IDENTITY.index(f) for f in keep]
    for cell in cells:
        values = identity_values(cell)
        key = tuple([values[i] for i in positions])
        if key in index:
            other, ident = identity(index[key]), identity(cell)
            differ = [f for f in IDENTITY if other[f] != ident[f]]
            labels = column_labels([index[key].column_key, cell.column_key])
            one, two = labels[index[key].column_key], labels[cell.column_key]
            raise ReportError(
                f"side {side} has several cells for {cell.model} · {cell.input} · batch "
                f"{cell.batch_size} ({one} and {two}: they differ in {', '.join(differ)}); "
                f"narrow --{side.lower()}, e.g. with a backend option or pool"
            )
        index[key] = cell
    return index
