"""What `farm recommend` decides, as pure rules on the report's cells.

For each row of the report (model × input × batch, and measure: a forward cell times
another thing than a pipeline cell), the candidates are the row's cells whose every result
passed its output check and that no validity reason bearing on the objective excludes: a
p99 objective needs a supported p99, a mean objective does not (a percentile's reasons bear
on that percentile only; a noisy host, an unconverged warm-up, too short a run or another
precision than asked bear on every metric). The best is the candidate with the best value
of the objective — the report's own number — and its margin over the runner-up is tested
as `farm compare` tests (Mann–Whitney U on the raw samples, and an effect above the
threshold: `farm.significance`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.reports.cells import GENERATION, Cell, ReportError
from farm.reports.notes import group_reasons
from farm.significance import DEFAULT_THRESHOLD, FASTER, mann_whitney_u, verdict
from farm.verdict import MIN_SAMPLES

OUTPUT_CHECK = "output check:"  # how farm.verdict.check_reasons begins each of its reasons
# A reason about one percentile only (farm.verdict): it bears on that percentile alone.
PERCENTILE_REASON = re.compile(r"(p\d+(?:\.\d+)?) (?:not supported|interval not within)")


@dataclass(frozen=True)
class Objective:
    """What "best" means: the cell attribute that holds it (the report's number), whether
    more is better, and which calibrated noise floor bounds an effect on it."""

    name: str
    attr: str
    unit: str
    higher_is_better: bool
    noise: int  # 0: the pools' mean noise, 1: their p99 noise (farm pools' calibration)


OBJECTIVES = {
    "mean": Objective("mean", "mean_ms", "ms", False, 0),
    "p99": Objective("p99", "p99_ms", "ms", False, 1),
    "throughput": Objective("throughput", "throughput", "seq/s", True, 0),
    "cost": Objective("cost", "cost_per_million", "per million inferences", False, 0),
}


# Text generation's throughput: new tokens per second of the whole batch (a row's cells make
# as many new tokens a sequence, so it ranks them as sequences per second would).
TOKENS_PER_S = Objective("throughput", "tokens_per_s", "tok/s", True, 0)


def task_objective(goal: Objective, task: str) -> Objective:
    """The objective as a task's cells measure it: throughput is tokens/s in text generation."""
    return TOKENS_PER_S if goal.name == "throughput" and task == GENERATION else goal


def shown_objective(goals: list[Objective]) -> Objective:
    """The one objective a recommendation names: its tasks' units joined where they differ."""
    units = list(dict.fromkeys(g.unit for g in goals))
    if len(units) < 2:
        return goals[0]
    return Objective(goals[0].name, goals[0].attr, " or ".join(units), goals[0].higher_is_better,
                     goals[0].noise)  # fmt: skip


def find_objective(name: str) -> Objective:
    found = OBJECTIVES.get(name)
    if found is None:
        raise ReportError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return found


def bears_on(reason: str, goal: Objective, n: int | None = None) -> bool:
    """Whether a validity reason excludes a cell for this objective. A percentile its own
    results did not support is supported by `n` samples pooled over several jobs when
    they are enough (farm.verdict.MIN_SAMPLES)."""
    found = PERCENTILE_REASON.match(reason)
    if found is None:
        return True
    if found[1] != goal.name:
        return False
    need = MIN_SAMPLES.get(found[1])
    if "not supported" in reason and need is not None and n is not None:
        return n < need
    return True


def exclusions(cell: Cell, goal: Objective, checks: Mapping[int, Any]) -> list[str]:
    """Why this cell cannot be recommended for `goal` (empty: it qualifies). `checks`: each
    job's recorded output check (job id → the check, None where none was recorded)."""
    if not cell.results:
        return [f"no result yet ({cell.state})"]
    failed = [r for r in cell.reasons if r.startswith(OUTPUT_CHECK)]
    if failed:
        return failed
    for job in cell.job_ids:
        check = checks.get(job)
        if check is None:
            return ["output check: none recorded"]
        if check.get("status") != "checked":
            return [f"output check: {check.get('status')} ({check.get('reason', 'no reason')})"]
    bearing = [r for r in cell.reasons if bears_on(r, goal, cell.n if cell.pooled else None)]
    if bearing:
        return bearing
    if getattr(cell, goal.attr) is None:
        if goal.name == "cost":
            return [f"no price for pool {cell.pool}: `farm pools price {cell.pool} PRICE`"]
        return [f"no {goal.name} value"]
    return []


def ranked(cells: list[Cell], goal: Objective) -> list[Cell]:
    """The qualifying cells best first (ties: the report's order)."""
    sign = -1.0 if goal.higher_is_better else 1.0
    return sorted(cells, key=lambda c: (sign * getattr(c, goal.attr), c.first_job))


def per_call(samples_ms: npt.NDArray[np.float64], cell: Cell, goal: Objective) -> Any:
    """The raw samples as the U test compares them for `goal`, lower being better: latency
    for mean and p99; for throughput the worker's time per sequence (a call's latency over
    its batch and the instances running at once), for cost that time × the pool's price."""
    if goal.name in ("mean", "p99"):
        return samples_ms
    per_sequence = samples_ms / (cell.batch_size * max(cell.instances, 1))
    return per_sequence * (cell.price_per_hour or 0.0) if goal.name == "cost" else per_sequence


def threshold(noise: Mapping[str, tuple[float, float]], goal: Objective, *pools: str) -> float:
    """The smallest effect that counts, as `farm compare` sets it: the larger calibrated
    noise floor of the pools (of the objective's kind), 3 % where none is calibrated."""
    floors = [noise[p][goal.noise] for p in pools if p in noise]
    return max(floors) if floors else DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Margin:
    """The best against the runner-up: how much better, the U test's p and its verdict."""

    margin: float  # runner-up worse by this fraction of the best (0.25: 25 % worse)
    ratio: float  # best / runner-up, in the lower-is-better sense (below 1: the best leads)
    p_value: float | None  # None: no raw samples on a side
    threshold: float
    significant: bool


def margin(
    goal: Objective,
    best: tuple[float, Any],
    runner: tuple[float, Any],
    threshold: float,
    alpha: float,
) -> Margin:
    """(value, samples as `per_call` gives them) of each; the verdict as `farm compare`
    gives it with the runner-up as A and the best as B: significant when B is faster."""
    b, r = best[0], runner[0]
    ratio = (r / b if b > 0 else float("inf")) if goal.higher_is_better else (
        b / r if r > 0 else float("inf")
    )
    up = 1.0 / ratio - 1.0 if ratio > 0 else float("inf")
    if best[1] is None or runner[1] is None or not len(best[1]) or not len(runner[1]):
        return Margin(up, ratio, None, threshold, False)
    p = mann_whitney_u(runner[1], best[1]).p
    return Margin(up, ratio, p, threshold, verdict(ratio, p, threshold, alpha) == FASTER)


@dataclass(frozen=True)
class Pick:
    """One cell of a row, as the recommendation names it."""

    column: str  # backend(options)@pool... as the report labels the column
    backend: str
    backend_options: Mapping[str, Any]
    pool: str
    stack: str
    value: float | None
    n: int | None
    jobs: tuple[int, ...]
    validity: str | None  # the cell's verdict: valid, invalid or unknown (None)
    currency: str | None = None  # the cost objective's

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "backend": self.backend,
            "backend_options": dict(self.backend_options),
            "pool": self.pool,
            "stack": self.stack,
            "value": self.value,
            "n": self.n,
            "jobs": list(self.jobs),
            "validity": self.validity,
            "currency": self.currency,
        }


def pick(cell: Cell, column: str, goal: Objective) -> Pick:
    value = getattr(cell, goal.attr)
    return Pick(
        column, cell.backend, dict(cell.backend_options), cell.pool, cell.stack,
        value, cell.n, tuple(cell.job_ids), cell.verdict, cell.currency,
    )  # fmt: skip


@dataclass(frozen=True)
class Excluded:
    """A cell of the row left out, and why."""

    column: str
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Choice:
    """One row's recommendation: the best, the runner-up, the margin; or why nothing."""

    model: str
    input: str
    tokens: int | None
    batch_size: int
    batching: str
    measure: str
    best: Pick | None
    runner_up: Pick | None
    margin: Margin | None
    qualified: int  # how many cells of the row qualified
    excluded: tuple[Excluded, ...]

    @property
    def why(self) -> str | None:
        """Why nothing qualifies (None when something does)."""
        if self.best is not None:
            return None
        if not self.excluded:
            return "no cell"
        pairs = [(reason, e.column) for e in self.excluded for reason in e.reasons]
        return "; ".join(f"{r} ({', '.join(cols)})" for r, cols in group_reasons(pairs))

    @property
    def verdict(self) -> str:
        """In words: significant, not significant, the only candidate, or nothing."""
        if self.best is None:
            return "nothing qualifies"
        if self.margin is None:
            return "only candidate"
        if self.margin.p_value is None:
            return "not tested (no raw samples)"
        return "significant" if self.margin.significant else "not significant"

    def to_json(self) -> dict[str, Any]:
        m = self.margin
        return {
            "model": self.model,
            "input": self.input,
            "tokens": self.tokens,
            "batch_size": self.batch_size,
            "batching": self.batching,
            "measure": self.measure,
            "best": self.best.to_json() if self.best else None,
            "runner_up": self.runner_up.to_json() if self.runner_up else None,
            "margin": m.margin if m else None,
            "ratio": m.ratio if m else None,
            "p_value": m.p_value if m else None,
            "threshold": m.threshold if m else None,
            "significant": m.significant if m else None,
            "verdict": self.verdict,
            "qualified": self.qualified,
            "excluded": [e.to_json() for e in self.excluded],
            "why": self.why,
        }


@dataclass(frozen=True)
class Recommendation:
    """`farm recommend`'s answer: one choice per row, in the report's row order."""

    campaigns: tuple[tuple[int, str], ...]
    objective: Objective
    alpha: float
    choices: tuple[Choice, ...]
    unpriced: tuple[str, ...] = ()  # pools without a price (the cost objective)
    random_weights: bool = False

    @property
    def title(self) -> str:
        names = ", ".join(f"{cid} ({name})" for cid, name in self.campaigns)
        return f"campaign{'s' if len(self.campaigns) > 1 else ''} {names}"

    def to_json(self) -> dict[str, Any]:
        return {
            "campaigns": [{"id": cid, "name": name} for cid, name in self.campaigns],
            "objective": self.objective.name,
            "unit": self.objective.unit,
            "higher_is_better": self.objective.higher_is_better,
            "alpha": self.alpha,
            "unpriced": list(self.unpriced),
            "random_weights": self.random_weights,
            "choices": [c.to_json() for c in self.choices],
        }
