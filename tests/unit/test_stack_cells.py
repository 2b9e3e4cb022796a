"""Cells never mix software stacks: a result's stack (name@lock hash) is part of its cell.

Two results of one model × input × batch × backend × pool from two stacks are two columns,
labelled with their stack only where their labels would otherwise be the same.
"""

from __future__ import annotations

import pytest

from farm.app.embedded import run_embedded
from farm.app.reports import report
from farm.jobs import JobSpec
from farm.reports.cells import ReportError
from farm.reports.comparison import VARIES, varied_fields
from farm.reports.layout import find_baseline, wide_table
from farm.reports.pending import fold_pending
from farm.reports.selectors import matches, parse_selector
from farm.reports.text import wide_grid
from farm.stacks import recorded_stack, stack_id
from tests.support.cells import MemoryReports, blog, cell

MAIN, IPEX = "main@852501eeb9b78ddc", "ipex@26833b0899677687"


def _two_stacks() -> list:
    fp32 = {"dtype": "fp32"}
    return [
        cell("short", "pytorch", "zen4", 30.0, 40.0, options=fp32, stack=MAIN, first=1),
        cell("short", "pytorch", "zen4", 20.0, 25.0, options=fp32, stack=IPEX, first=2),
    ]


def test_two_stacks_of_one_cell_are_two_columns_labelled_by_stack() -> None:
    rep = report(MemoryReports(_two_stacks()), ["blog"])
    table = rep.table
    assert len(table.columns) == 2 and len(table.cells) == 2
    assert [table.label(c) for c in table.columns] == [
        "pytorch(dtype=fp32)@zen4[main]", "pytorch(dtype=fp32)@zen4[ipex]",
    ]  # fmt: skip
    header, body, _ = wide_grid(rep)
    assert header[3:] == [
        "pytorch(dtype=fp32)@zen4[main] mean / p99 (ms)",
        "pytorch(dtype=fp32)@zen4[ipex] mean / p99 (ms)",
    ]
    assert body[0][3:] == ["30.00 / 40.00", "20.00 / 25.00"]  # never one pooled cell


def test_two_locks_of_one_stack_are_labelled_with_the_hash() -> None:
    old, new = _two_stacks()
    new.stack = "main@0123456789abcdef"
    table = wide_table([old, new])
    assert [table.label(c) for c in table.columns] == [
        f"pytorch(dtype=fp32)@zen4[{MAIN}]", "pytorch(dtype=fp32)@zen4[main@0123456789abcdef]",
    ]  # fmt: skip


def test_a_single_stack_report_keeps_its_headers() -> None:
    """The blog's cells, pytorch in main and ipex in ipex: labels as they always were."""
    cells = blog()
    for c in cells:
        c.stack = IPEX if c.backend == "ipex" else MAIN
    rep = report(MemoryReports(cells), ["blog"])
    header = wide_grid(rep)[0]
    assert header == [
        "model", "input (tokens)", "batch", "pytorch@icelake mean / p99 (ms)",
        "ipex(dtype=bf16)@spr mean / p99 (ms)",
    ]  # fmt: skip


def test_a_stack_qualified_label_parses_back_and_selects_its_column() -> None:
    assert parse_selector("pytorch(dtype=fp32)@zen4+tcmalloc[ipex]") == {
        "backend": "pytorch", "dtype": "fp32", "pool": "zen4", "allocator": "tcmalloc",
        "instances": "1", "cores_per_instance": "0", "stack": "ipex", "measure": "pipeline",
    }  # fmt: skip
    assert parse_selector(f"pytorch@zen4[{MAIN}]")["stack"] == MAIN
    cells = _two_stacks()
    table = wide_table(cells)
    for column in table.columns:  # every printed label is a baseline that finds its column
        assert find_baseline(cells, parse_selector(table.label(column))) == column
    with pytest.raises(ReportError, match="several columns"):
        find_baseline(cells, parse_selector("pytorch(dtype=fp32)@zen4"))


def test_selector_stack_names_a_stack_or_one_lock_of_it() -> None:
    main, ipex = _two_stacks()
    assert matches({"stack": "main"}, main) and not matches({"stack": "main"}, ipex)
    assert matches({"stack": MAIN}, main) and not matches({"stack": "main@0000"}, main)
    assert not matches({"stack": "mai"}, main)
    table = wide_table([main, ipex], baseline={"stack": "ipex"})
    assert table.baseline == ipex.column_key and table.label(table.baseline).endswith("[ipex]")


def test_compare_varies_the_stack_only_when_a_selector_names_it() -> None:
    assert VARIES["stack"] == ("stack",)
    assert "stack" not in varied_fields({"pool": "a"}, {"pool": "b"})
    assert "stack" in varied_fields({"stack": "main"}, {"stack": "ipex"})


def test_pending_jobs_join_the_cell_their_stack_measured() -> None:
    """A queued job knows its stack's name, not the lock its result will record: it belongs
    with the measured cell of that stack, not in a column of its own."""
    done, other = _two_stacks()
    pending = cell("short", "pytorch", "zen4", 0.0, 0.0, options={"dtype": "fp32"},
                   stack="main", first=3, results=0, jobs=1, states={"queued": 1})  # fmt: skip
    merged = fold_pending([done, other, pending])
    assert merged == [done, other]
    assert (done.jobs, done.results, done.states) == (2, 1, {"queued": 1})


def test_a_result_records_the_stack_from_its_fingerprint() -> None:
    assert stack_id("ipex", "26833b0899677687") == IPEX
    assert stack_id("main", None) == "main"  # the dev venv: main's packages, no lock
    env = {"host": {"stack": "ipex", "stack_lock": "26833b0899677687"}}
    assert recorded_stack(env) == IPEX
    assert recorded_stack({"host": {"stack": "main"}}) == "main"
    assert recorded_stack({}) is None


def test_an_embedded_run_records_its_jobs_in_the_stack_it_runs_in() -> None:
    """`farm run` in the ipex venv runs pytorch there: the jobs say ipex, not pytorch's home."""
    stored: list[JobSpec] = []

    class Store:
        def create_campaign(self, name: str, matrix: dict, jobs: list[JobSpec]) -> object:
            stored.extend(jobs)
            from farm.app.ports import Stored

            return Stored(1, name, [])

    class Runner:
        def prepare(self, allocator: str, cpus: object, threads: object) -> str:
            return "ipex"

        def run(self, job_id: int) -> None: ...

    def spec(backend: str) -> JobSpec:
        return JobSpec.model_validate(
            {"model": {"name": "m"}, "input_name": "s", "input_text": "hi", "batch_size": 1,
             "backend": backend, "pool": "p"}
        )  # fmt: skip

    jobs = [spec("pytorch"), spec("openvino")]
    run_embedded(Store(), Runner(), "c", {}, jobs, cpus=None, threads=None,  # type: ignore[arg-type]
                 on_job=lambda *a: None)  # fmt: skip
    # pytorch runs in ipex; openvino cannot (its job keeps its stack and fails there).
    assert [(j.backend, j.stack) for j in stored] == [("pytorch", "ipex"), ("openvino", "main")]
