"""The report queries in SQL, and `SqlReports`: the adapter `farm.app.reports` reads through.

`cells` aggregates cells in SQL, `jobs` gives one row per job, `matching` pairs the cells
of two compare sides, `tuning` makes PostgreSQL fast at 100,000 cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from farm.db.pools import noise_floors, prices
from farm.db.reports.cells import (
    aggregate_cells,
    campaign_job_count,
    load_samples,
    output_checks,
    samples_ms,
    ttft_ms,
)
from farm.db.reports.jobs import report_rows, resolve_campaigns
from farm.db.reports.matching import match
from farm.db.session import transaction
from farm.reports.cells import Cell
from farm.reports.comparison import Matches, Side
from farm.reports.selectors import Filters


class SqlReports:
    """`farm.app.reports.ReportQueries` on one SQLAlchemy transaction.

    Used as a context manager: every query of one command reads the same transaction (and
    PostgreSQL's SET LOCAL tuning lasts until its end), committed or rolled back on exit.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._stack = ExitStack()
        self._session: Session | None = None

    def __enter__(self) -> SqlReports:
        self._session = self._stack.enter_context(transaction(self._factory))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._session = None
        return self._stack.__exit__(kind, exc, traceback)

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("SqlReports is used inside `with`: one transaction per command")
        return self._session

    def campaigns(self, refs: Iterable[str]) -> list[tuple[int, str]]:
        return resolve_campaigns(self.session, refs)

    def job_count(self, campaign_ids: list[int]) -> int:
        return campaign_job_count(self.session, campaign_ids)

    def cells(
        self,
        campaign_ids: list[int],
        filters: Filters | None = None,
        identity: bool = False,
        pool: bool = True,
        job_ids: Sequence[int] | None = None,
    ) -> list[Cell]:
        return aggregate_cells(self.session, campaign_ids, filters, identity, pool, job_ids)

    def job_rows(self, campaign_ids: list[int], filters: Filters) -> list[dict[str, Any]]:
        return report_rows(self.session, campaign_ids, filters)

    def prices(self, pools: set[str]) -> dict[str, tuple[float, str]]:
        return prices(self.session, pools)

    def noise_floors(self, pools: set[str] | None) -> dict[str, tuple[float, float]]:
        return noise_floors(self.session, pools)

    def samples(self, job_ids: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        return load_samples(self.session, job_ids)

    def samples_ms(self, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
        return samples_ms(self.session, job_ids)

    def ttft_ms(self, job_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float64]]:
        return ttft_ms(self.session, job_ids)

    def output_checks(self, job_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        return output_checks(self.session, job_ids)

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
        return match(
            self.session, a, b, keep, metric, threshold, filters, limit, fail_on_regression
        )
