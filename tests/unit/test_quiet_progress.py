"""`farm run` draws its progress between jobs only: no refresh thread wakes beside a job
that measures in this very process (issue 12, defect 1)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from farm.cli import commands


def switches() -> dict[str, int]:
    """Context switches so far of every thread but the calling one, by thread name."""
    found = {}
    for thread in threading.enumerate():
        if thread is threading.current_thread():
            continue
        with contextlib.suppress(FileNotFoundError):
            status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
            found[thread.name] = sum(
                int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
            )
    return found


class FakeFarm:
    """Runs two 'jobs' that only watch the other threads for 0.3 s each."""

    def __init__(self) -> None:
        self.woke: list[dict[str, Any]] = []

    def run_embedded(self, runner: Any, spec: Any, jobs: Any, cpus: Any, threads: Any,
                     on_job: Any) -> int:  # fmt: skip
        on_job(7, 0, 2)
        for done in (1, 2):
            before = switches()
            time.sleep(0.3)  # a job measuring (rich's refresh thread would wake 3 times)
            after = switches()
            self.woke += [{n: (c, after.get(n))} for n, c in before.items() if after.get(n) != c]
            on_job(7, done, 2)
        return 7


def test_farm_run_draws_no_progress_while_a_job_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFarm()
    monkeypatch.setattr(commands, "wire_embedded", lambda settings: (fake, None))
    monkeypatch.setattr(commands, "open_reports", lambda settings: contextlib.nullcontext())
    monkeypatch.setattr("farm.app.reports.job_rows", lambda *a: [])
    monkeypatch.setattr("farm.cli.render.print_table", lambda rows: None)
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        "name: t\nmodels: [m]\ninputs: {short: hi}\nbatch_sizes: [1, 2]\n"
        "backends: [selftest]\npools: [a]\n"
    )
    out = CliRunner().invoke(commands.run, [str(matrix)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().splitlines()[-1] == "7"
    assert fake.woke == [], f"threads woke while a job ran: {fake.woke}"
