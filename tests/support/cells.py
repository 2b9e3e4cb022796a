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
