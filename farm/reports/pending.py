"""Jobs without a result yet, folded into the cells their stack's results made."""

from __future__ import annotations

from typing import Any

from farm.reports.cells import Cell, cell_key, merge
from farm.reports.labels import STACK
from farm.stacks import stack_name


def fold_pending(cells: list[Cell]) -> list[Cell]:
    """Jobs without a result know their stack's name, not the lock their results record:
    where the column's measured cells of that stack name have one lock, they take it (and
    join the measured cell of their row, if any), rather than make a column of their own."""
    if all(c.results for c in cells) or not any("@" in c.stack for c in cells):
        return cells
    def column(c: Cell, stack: str) -> tuple[Any, ...]:  # the column with `stack` for its stack
        key = c.column_key
        return (*key[:STACK], stack, *key[STACK + 1 :])

    locks: dict[tuple[Any, ...], set[str]] = {}  # column with its stack's name → stacks
    for c in cells:
        if c.results:
            locks.setdefault(column(c, stack_name(c.stack)), set()).add(c.stack)
    measured = {cell_key(c): c for c in cells if c.results}
    out = []
    for c in cells:
        found = locks.get(column(c, c.stack), ()) if not c.results else ()
        if len(found) == 1 and "@" not in c.stack:
            c.stack = next(iter(found))
            into = measured.get(cell_key(c))
            if into is not None:
                merge(into, c)
                continue
            measured[cell_key(c)] = c
        out.append(c)
    return out
