"""`farm recommend`: for each row of the report, the backend@pool to pick for an objective.

The numbers are `farm report`'s (its cells, pooled where several jobs met, priced with
the pools' prices for the cost objective); the significance of the best's margin over the
runner-up is `farm compare`'s U test on the raw samples, loaded for those two cells of each
row only. The rules are `farm.reports.recommend`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from farm.app.reports import ReportQueries, report
from farm.reports.cells import Cell, ReportError
from farm.reports.layout import WideTable
from farm.reports.recommend import (
    Choice,
    Excluded,
    Objective,
    Recommendation,
    exclusions,
    find_objective,
    margin,
    per_call,
    pick,
    ranked,
    shown_objective,
    task_objective,
    threshold,
)
from farm.reports.selectors import Filters
from farm.significance import DEFAULT_ALPHA

ROWS_PER_LOAD = 500  # rows whose two leading cells' samples are loaded at once

Group = tuple[tuple[Any, ...], list[Cell]]


def recommend(
    queries: ReportQueries,
    refs: Iterable[str],
    objective: str = "mean",
    filters: Filters | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Recommendation:
    """The best backend@pool of each row (model × input × batch × measure) of CAMPAIGNS for
    the objective (mean, p99, throughput or cost), with its margin and its significance."""
    goal = find_objective(objective)
    cost = goal.name == "cost"
    metric = "mean" if cost else goal.name
    rep = report(queries, refs, filters, (metric,), cost=cost)
    ids = [cid for cid, _ in rep.campaigns]
    pools = sorted({c.pool for c in rep.cells})
    if cost and len(rep.unpriced) == len(pools):
        raise ReportError(
            f"the cost objective needs pool prices and none of {', '.join(pools)} has one: "
            "set them with `farm pools price POOL PRICE_PER_HOUR`"
        )
    checks = {r["job"]: r["output_check"] for r in queries.job_rows(ids, filters or Filters())}
    noise = queries.noise_floors(set(pools))
    choices: list[Choice] = []
    goals = {t.task: task_objective(goal, t.task) for t in rep.tables}
    groups = [(t, key, cells) for t in rep.tables for key, cells in _groups(t)]
    for start in range(0, len(groups), ROWS_PER_LOAD):
        part = groups[start : start + ROWS_PER_LOAD]
        ranking = [_rank(cells, goals[t.task], checks) for t, _, cells in part]
        leaders = [c for best, _ in ranking for c in best[:2]]
        samples = queries.samples_ms({j for c in leaders for j in c.job_ids})
        for (table, key, cells), (best, excluded) in zip(part, ranking, strict=True):
            found = goals[table.task]
            choices.append(
                _choice(table, key, cells, best, excluded, found, samples, noise, alpha)
            )
    return Recommendation(
        tuple(rep.campaigns), shown_objective(list(goals.values())), alpha, tuple(choices),
        tuple(rep.unpriced), any(t.random_weights for t in rep.tables),
    )  # fmt: skip


def _groups(table: WideTable) -> Iterator[Group]:
    """The report's rows, split by measure (forward and pipeline cells time other things),
    in the report's order, each with its cells in column order."""
    for row in table.rows:
        by_measure: dict[str, list[Cell]] = {}
        for column in table.columns:
            cell = table.cell(row, column)
            if cell is not None:
                by_measure.setdefault(cell.measure, []).append(cell)
        for measure, cells in by_measure.items():
            yield (*row, measure), cells


def _rank(
    cells: list[Cell], goal: Objective, checks: dict[int, Any]
) -> tuple[list[Cell], list[tuple[Cell, list[str]]]]:
    """The qualifying cells best first, and the others with why."""
    qualified, excluded = [], []
    for cell in cells:
        why = exclusions(cell, goal, checks)
        if why:
            excluded.append((cell, why))
        else:
            qualified.append(cell)
    return ranked(qualified, goal), excluded


def _choice(
    table: WideTable,
    key: tuple[Any, ...],
    cells: list[Cell],
    best: list[Cell],
    excluded: list[tuple[Cell, list[str]]],
    goal: Objective,
    samples: dict[int, Any],
    noise: dict[str, tuple[float, float]],
    alpha: float,
) -> Choice:
    model, input_name, batch, batching, measure = key
    tokens = [c.tokens for c in cells if c.tokens is not None]
    found = None
    if len(best) > 1:
        a, b = best[0], best[1]
        found = margin(
            goal,
            (getattr(a, goal.attr), _samples(a, goal, samples)),
            (getattr(b, goal.attr), _samples(b, goal, samples)),
            threshold(noise, goal, a.pool, b.pool),
            alpha,
        )
    return Choice(
        model=model,
        input=input_name,
        tokens=min(tokens, default=None),
        batch_size=batch,
        batching=batching,
        measure=measure,
        best=pick(best[0], table.label(best[0].column_key), goal) if best else None,
        runner_up=pick(best[1], table.label(best[1].column_key), goal) if found else None,
        margin=found,
        qualified=len(best),
        excluded=tuple(Excluded(table.label(c.column_key), tuple(why)) for c, why in excluded),
    )


def _samples(cell: Cell, goal: Objective, samples: dict[int, Any]) -> Any:
    """The cell's raw samples pooled over its jobs, as the U test compares them."""
    parts = [samples[j] for j in cell.job_ids if j in samples]
    return per_call(np.concatenate(parts), cell, goal) if parts else None
