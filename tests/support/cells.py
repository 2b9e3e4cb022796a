"""Report cells built by hand: the blog's four cells with round numbers (farm.reports.cells)."""

from __future__ import annotations

from typing import Any

from farm.reports.cells import Cell


def cell(input_name: str, backend: str, pool: str, mean: float, p99: float, **kw: Any) -> Cell:
    fields: dict[str, Any] = dict(
        model="m",
        input=input_name,
        batch_size=kw.pop("batch", 1),
        batching="sequential",
        backend=backend,
        backend_options=kw.pop("options", {}),
        pool=pool,
        jobs=1,
        results=1,
        n=1000,
        mean_ms=mean,
        p99_ms=p99,
        first_job=kw.pop("first", 0),
        tokens=kw.pop("tokens", 10),
    )
    fields.update(kw)
    return Cell(**fields)


def blog() -> list[Cell]:
    """The blog's four cells (fresh each time: some tests set their cost)."""
    return [
        cell("short", "pytorch", "icelake", 30.0, 49.6, first=1),
        cell("short", "ipex", "spr", 15.0, 24.8, first=2, options={"dtype": "bf16"}),
        cell("long", "pytorch", "icelake", 120.0, 139.6, first=3, tokens=151),
        cell("long", "ipex", "spr", 60.0, 79.6, first=4, options={"dtype": "bf16"}, tokens=151),
    ]


BLOG = blog()  # read only


class MemoryReports:
    """`farm.app.reports.ReportQueries` over cells and job rows held in memory (no SQL):
    enough for the report use cases' own rules. Campaign 1 is 'blog', with `cells`."""

    def __init__(
        self,
        cells: list[Cell],
        rows: list[dict[str, Any]] | None = None,
        prices: dict[str, tuple[float, str]] | None = None,
        jobs: int | None = None,
    ) -> None:
        self._cells, self._rows, self._prices = cells, rows or [], prices or {}
        self._jobs = len(cells) if jobs is None else jobs

    def campaigns(self, refs: Any) -> list[tuple[int, str]]:
        return [(1, "blog") for _ in dict.fromkeys(refs)]

    def job_count(self, campaign_ids: list[int]) -> int:
        return self._jobs

    def cells(self, campaign_ids: list[int], filters: Any = None, *args: Any, **kw: Any) -> Any:
        pools = filters.pools if filters else ()
        return [c for c in self._cells if not pools or c.pool in pools]

    def job_rows(self, campaign_ids: list[int], filters: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def prices(self, pools: set[str]) -> dict[str, tuple[float, str]]:
        return {p: v for p, v in self._prices.items() if p in pools}

    def noise_floors(self, pools: Any) -> dict[str, tuple[float, float]]:
        return {}

    def samples(self, job_ids: Any) -> Any:
        return iter(())

    def samples_ms(self, job_ids: Any) -> Any:
        return {}

    def match(self, *args: Any) -> Any:
        raise AssertionError("not used by these tests")
