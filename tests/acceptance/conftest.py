"""Acceptance fixtures: the fault drills' collector and the table printed at the end."""

from __future__ import annotations

from typing import Any

import pytest

DRILL_COLUMNS = ("drill", "submitted", "succeeded", "failed", "lost", "duplicated")
_drills_key = pytest.StashKey[list[dict[str, Any]]]()


def _rows(config: pytest.Config) -> list[dict[str, Any]]:
    return config.stash.setdefault(_drills_key, [])


@pytest.fixture(scope="session")
def drill_table(pytestconfig: pytest.Config) -> list[dict[str, Any]]:
    """Session-wide list of drill rows (DRILL_COLUMNS, plus an optional `note`)."""
    return _rows(pytestconfig)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = _rows(config)
    if not rows:
        return
    columns = [*DRILL_COLUMNS, "note"]
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    terminalreporter.section("fault drills: nothing lost, nothing run twice")
    terminalreporter.write_line(line(columns))
    terminalreporter.write_line("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for values in cells:
        terminalreporter.write_line(line(values))
    lost = sum(int(r.get("lost", 0)) for r in rows)
    duplicated = sum(int(r.get("duplicated", 0)) for r in rows)
    terminalreporter.write_line(f"{len(rows)} drill(s): {lost} lost, {duplicated} duplicated")
