"""`farm compare` of text generation cells on TTFT and TPOT, beside the end-to-end latency.

The same statistic (mean, p50, ...) of each side's per-call values, pooled over its jobs,
and the Mann–Whitney U test on those (`farm.significance`), a verdict each: TTFT from the
raw TTFT samples, TPOT per call from them and the end-to-end samples (farm.generation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from farm.generation import tpot_ns
from farm.reports.cells import GENERATION, Cell
from farm.reports.comparison import GENERATION_COMPARE, Pair, Versus
from farm.significance import compare_samples

Int64s = npt.NDArray[np.int64]


class TtftSamples(Protocol):
    """What these tests read besides the end-to-end samples (`farm.app.reports.ReportQueries`
    has it)."""

    def ttft_ms(self, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
        """job id → its time-to-first-token samples in ms (text generation's jobs)."""


def test_generation(
    queries: TtftSamples,
    pairs: list[Pair],
    values: dict[int, npt.NDArray[np.float64]],
    metric: str,
    alpha: float,
) -> None:
    """Text generation's pairs on TTFT and TPOT too: the same statistic of each side's
    per-call values (pooled over its jobs), the U test on those, a verdict each."""
    pairs = [p for p in pairs if p.a.task == GENERATION and p.b.task == GENERATION]
    if not pairs:
        return
    ttft = queries.ttft_ms({j for p in pairs for c in (p.a, p.b) for j in c.job_ids})
    for pair in pairs:
        sides = [per_call_generation(c, values, ttft) for c in (pair.a, pair.b)]
        for name in GENERATION_COMPARE:
            a, b = (side.get(name) for side in sides)
            if a is None or b is None or not a.size or not b.size:
                continue
            found = compare_samples(a, b, metric, pair.threshold, alpha)
            pair.by_metric[name] = Versus(found.a, found.b, found.test.p, found.verdict)


def per_call_generation(
    cell: Cell,
    e2e: dict[int, npt.NDArray[np.float64]],
    ttft: dict[int, npt.NDArray[np.float64]],
) -> dict[str, npt.NDArray[np.float64]]:
    """A generation cell's per-call TTFT and TPOT in ms, pooled over its jobs (in the same
    job order as its end-to-end samples); {} unless every job has both, TPOT only from two
    new tokens on."""
    if not cell.job_ids or any(j not in e2e or j not in ttft for j in cell.job_ids):
        return {}
    first = np.concatenate([ttft[j] for j in cell.job_ids])
    calls = np.concatenate([e2e[j] for j in cell.job_ids])
    out = {"ttft": first}
    # farm.generation's formula, whatever the unit: ms in, ms out.
    per_token = tpot_ns(cast(Int64s, calls), cast(Int64s, first), cell.new_tokens)
    if per_token is not None:
        out["tpot"] = per_token
    return out
