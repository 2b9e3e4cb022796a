"""Validity notes grouped by reason: one line per distinct reason, with the cells it affects.

A report of many cells whose results fail the same rule (p99 not supported, a noisy host)
would otherwise repeat a near-identical line per cell, differing only in a count or a
duration. Reasons that differ only in their numbers are one reason here; where the numbers
differ, the line shows their range ("p99 not supported: 300–500 samples, needs at least
662"). The terminal, Markdown and HTML reports, `farm recommend` and the dashboard share it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from farm.reports.cells import Cell
from farm.reports.labels import ColumnKey, column_labels

# A number on its own (not the 99 of p99, nor a label's digits): 300, 4.1, 1.2e-05.
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w)")
NoteGroups = list[tuple[str, list[str]]]
SHOWN_CELLS = 8  # cells a text line names before "and N more"


def cell_label(cell: Cell, column: str | None = None) -> str:
    """model · input · batch · column: one cell, as notes name it."""
    batched = " batched" if cell.batching == "batched" else ""
    column = column if column is not None else cell.column_label
    return f"{cell.model} · {cell.input} · batch {cell.batch_size}{batched} · {column}"


def _pattern(reason: str) -> tuple[str, list[str]]:
    """The reason with its numbers masked, and those numbers in order."""
    return NUMBER.sub("\0", reason), NUMBER.findall(reason)


def _spans(numbers: list[list[str]]) -> list[str]:
    """Per position: the number when every reason has the same, else 'low–high'."""
    out = []
    for values in zip(*numbers, strict=True):
        distinct = sorted(set(values), key=float)
        out.append(distinct[0] if len(distinct) == 1 else f"{distinct[0]}–{distinct[-1]}")
    return out


def group_reasons(pairs: Iterable[tuple[str, str]]) -> NoteGroups:
    """(reason, label) pairs → [(reason, [labels])], one per reason up to its numbers, in
    order of first appearance; each label once per group, in order."""
    groups: dict[str, tuple[list[list[str]], dict[str, None]]] = {}
    for reason, label in pairs:
        key, numbers = _pattern(reason)
        found = groups.setdefault(key, ([], {}))
        found[0].append(numbers)
        found[1].setdefault(label, None)
    out: NoteGroups = []
    for key, (found_numbers, labels) in groups.items():
        parts = key.split("\0")
        spans = _spans(found_numbers)
        text = parts[0] + "".join(s + p for s, p in zip(spans, parts[1:], strict=True))
        out.append((text, list(labels)))
    return out


def group_notes(
    cells: Iterable[Cell], column: Callable[[ColumnKey], str] | None = None
) -> NoteGroups:
    """The invalid cells' reasons → [(reason, [cell labels])], one entry per distinct
    reason. `column` names a cell's column (a report's `WideTable.label`, which adds the
    stack where two columns need it); by default the labels these cells need among
    themselves. A cell only some of whose results are invalid says how many."""
    invalid = [c for c in cells if c.invalid]
    if column is None:
        labels = column_labels({c.column_key: None for c in invalid})
        column = labels.__getitem__
    pairs: list[tuple[str, str]] = []
    for cell in invalid:
        label = cell_label(cell, column(cell.column_key))
        if cell.invalid < cell.results:
            label += f" ({cell.invalid} of {cell.results} results)"
        pairs.extend((reason, label) for reason in cell.reasons or ["invalid (no reason recorded)"])
    return group_reasons(pairs)


def note_text(reason: str, labels: list[str], shown: int = SHOWN_CELLS) -> str:
    """One line: the reason, how many cells, the first few of them."""
    what = "1 cell" if len(labels) == 1 else f"{len(labels)} cells"
    named = ", ".join(labels[:shown])
    more = f", and {len(labels) - shown} more" if len(labels) > shown else ""
    return f"{reason} — {what}: {named}{more}"
