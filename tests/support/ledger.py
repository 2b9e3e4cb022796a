"""The drill ledger of the multi-host bed: one row per drill, read from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.harness import sql_rows
from tests.support.testbed import Testbed

COLUMNS = ("drill", "submitted", "succeeded", "failed", "lost", "duplicated", "note")


class Ledger:
    """The drills' table; `account` asserts lost = duplicated = 0 from the database."""

    def __init__(self, rows: list[dict[str, Any]], path: Path) -> None:
        self.rows, self.path = rows, path

    def account(self, bed: Testbed, drill: str, campaigns: list[int], note: str = "") -> None:
        url = bed.database_url
        jobs = sql_rows(url, "SELECT j.id, j.state, (SELECT count(*) FROM result r WHERE "
                        "r.job_id = j.id) FROM job j WHERE j.campaign_id = ANY(:c)",
                        c=campaigns)  # fmt: skip
        cells = sql_rows(url, "SELECT j.campaign_id, j.spec::text FROM job j JOIN result r ON "
                         "r.job_id = j.id WHERE j.campaign_id = ANY(:c) GROUP BY 1, 2 "
                         "HAVING count(*) > 1", c=campaigns)  # fmt: skip
        row = {"drill": drill, "submitted": len(jobs),
               "succeeded": sum(s == "succeeded" for _, s, _ in jobs),
               "failed": sum(s == "failed" for _, s, _ in jobs),
               "lost": sum(s not in ("succeeded", "failed") for _, s, _ in jobs),
               "duplicated": sum(n > 1 for _, _, n in jobs) + len(cells), "note": note}  # fmt: skip
        self.rows.append(row)
        line = "| " + " | ".join(str(row[c]) for c in COLUMNS) + " |"
        print(f"\n{' | '.join(COLUMNS)}\n{line}")
        with self.path.open("a") as fh:
            if len(self.rows) == 1:  # this session's first row: its table's head
                fh.write(f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}\n")
            fh.write(line + "\n")
        assert row["lost"] == 0, f"{drill}: jobs neither succeeded nor failed: {jobs}"
        assert row["duplicated"] == 0, f"{drill}: a job or cell with two results: {jobs} {cells}"
        for _, state, n in jobs:
            assert n == (1 if state == "succeeded" else 0), jobs
