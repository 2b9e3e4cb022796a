"""The bed (up once per session: six hosts, three pools, real workers) and the drill ledger:
every drill's submitted / succeeded / failed / lost / duplicated, read from the database,
printed at the end and appended to $FARM_TEST_ARTIFACTS/drills.md."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ledger import COLUMNS, Ledger
from tests.support.services import unavailable
from tests.support.testbed import Testbed, missing

_rows_key = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture(scope="session")
def bed() -> Iterator[Testbed]:
    """Six worker hosts (pools a, b, c × 2), Redis and PostgreSQL on the services side."""
    why = missing()
    if why is not None:
        unavailable("the multi-host test bed", why)
    testbed = Testbed()
    try:
        testbed.up()
        testbed.start_all()
        yield testbed
    finally:
        testbed.down()


@pytest.fixture(autouse=True)
def clean_bed(request: pytest.FixtureRequest) -> None:
    """Each drill starts on a healed bed with six true-clock workers, whatever the last did."""
    if "bed" in request.fixturenames:
        request.getfixturevalue("bed").reset()


@pytest.fixture(scope="session")
def ledger(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    folder = os.environ.get("FARM_TEST_ARTIFACTS")
    out = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "drills.md"
    with path.open("a") as fh:
        fh.write(f"\n## multi-host drills, {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n")
    return Ledger(pytestconfig.stash.setdefault(_rows_key, []), path)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    rows = config.stash.get(_rows_key, [])
    if not rows:
        return
    cells = [[str(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(COLUMNS)]
    terminalreporter.section("multi-host drills: nothing lost, nothing run twice")
    for values in [list(COLUMNS), *cells]:
        terminalreporter.write_line(
            "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"
        )
