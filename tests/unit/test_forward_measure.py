"""The `measure` dimension (pipeline | forward): the matrix key, the job, report labels,
selectors, baselines and compare's refusal to match across measures."""

from __future__ import annotations

from typing import Any

import pytest

from farm.app.reports import compare, report
from farm.errors import MatrixError
from farm.matrix import parse_matrix
from farm.reports.cells import IDENTITY, ReportError, identity
from farm.reports.comparison import varied_fields
from farm.reports.layout import Report, find_baseline, wide_table
from farm.reports.selectors import Filters, matches, parse_selector
from farm.reports.text import wide_grid
from tests.support.cells import MemoryReports, blog, cell

BASE: dict[str, Any] = {
    "name": "m",
    "models": ["distilbert-base-uncased"],
    "inputs": {"short": "a short sentence"},
    "batch_sizes": [1, 8],
    "backends": ["pytorch", {"name": "torch-compile", "options": {"dtype": "bf16"}}],
    "pools": ["icelake"],
}


def expand(**changes: Any) -> list[Any]:
    return parse_matrix({**BASE, **changes}).expand()


def test_measure_defaults_to_pipeline() -> None:
    assert {job.measure for job in expand()} == {"pipeline"}


def test_measure_takes_one_value_or_a_list_and_multiplies_the_cells() -> None:
    assert {job.measure for job in expand(measure="forward")} == {"forward"}
    both = expand(measure=["pipeline", "forward", "forward"])  # repeats collapse
    assert len(both) == 2 * len(expand())
    assert len({job.cell_key() for job in both}) == len(both)
    pairs = {(j.backend, j.batch_size, j.measure) for j in both}
    assert ("torch-compile", 8, "forward") in pairs and ("pytorch", 1, "pipeline") in pairs
    # One loaded runner serves both measures of a cell: the runner key ignores it.
    pipeline, forward = (j for j in both if j.backend == "pytorch" and j.batch_size == 1)
    assert pipeline.runner_key() == forward.runner_key()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fwd", r"measure\.0: Input should be 'pipeline' or 'forward'"),
        (["pipeline", "latency"], r"measure\.1: Input should be 'pipeline' or 'forward'"),
        ([], r"measure: List should have at least 1 item"),
        ({"forward": True}, r"measure.0: Input should be .pipeline. or .forward."),
    ],
)
def test_a_bad_measure_is_refused_naming_the_allowed_values(value: Any, message: str) -> None:
    with pytest.raises(MatrixError, match=message):
        parse_matrix({**BASE, "measure": value})


def test_excludes_and_protocol_overrides_match_the_measure() -> None:
    jobs = expand(
        measure=["pipeline", "forward"],
        exclude=[{"measure": "forward", "backend": "torch-compile"}],
        protocol_overrides=[{"measure": "forward", "protocol": {"iterations": 300}}],
    )
    assert {(j.backend, j.measure) for j in jobs} == {
        ("pytorch", "pipeline"), ("pytorch", "forward"), ("torch-compile", "pipeline"),
    }  # fmt: skip
    assert {j.measure: j.protocol.iterations for j in jobs} == {"pipeline": 1000, "forward": 300}
    with pytest.raises(MatrixError, match="exclude.0 matches no cell"):
        expand(exclude=[{"measure": "forward"}])  # only pipeline cells: a typo?
    with pytest.raises(MatrixError, match="exclude.0.measure: Input should be 'pipeline'"):
        expand(exclude=[{"measure": "fwd"}])


# --- reports ------------------------------------------------------------------------------


def with_forward() -> list[Any]:
    """The blog's cells and the same backends' forward cells, a column each."""
    cells = blog()
    cells += [
        cell("short", "pytorch", "icelake", 20.0, 30.0, first=5, measure="forward"),
        cell("short", "ipex", "spr", 5.0, 8.0, first=6, options={"dtype": "bf16"},
             measure="forward"),
    ]  # fmt: skip
    return cells


def test_a_forward_cell_is_a_column_labelled_forward_and_pipeline_labels_stay() -> None:
    table = wide_table(with_forward())
    labels = [c.column_label for c in (table.cells[(table.rows[0], col)] for col in table.columns)]
    assert labels == [
        "pytorch@icelake", "ipex(dtype=bf16)@spr",
        "pytorch@icelake [forward]", "ipex(dtype=bf16)@spr [forward]",
    ]  # fmt: skip
    header = wide_grid(Report([(1, "blog")], table))[0]
    assert header[3:] == [
        "pytorch@icelake mean / p99 (ms)", "ipex(dtype=bf16)@spr mean / p99 (ms)",
        "pytorch@icelake [forward] mean / p99 (ms)",
        "ipex(dtype=bf16)@spr [forward] mean / p99 (ms)",
    ]  # fmt: skip
    # All pipeline: the blog's headers exactly as before the measure existed.
    plain = wide_grid(Report([(1, "blog")], wide_table(blog())))[0]
    assert plain[3:] == ["pytorch@icelake mean / p99 (ms)", "ipex(dtype=bf16)@spr mean / p99 (ms)"]


def test_measure_is_part_of_the_identity() -> None:
    pipeline, forward = with_forward()[0], with_forward()[4]
    assert "measure" in IDENTITY
    assert identity(pipeline)["measure"] == "pipeline" and identity(forward)["measure"] == "forward"
    differ = [f for f in IDENTITY if identity(pipeline)[f] != identity(forward)[f]]
    assert differ == ["measure"]


def test_selectors_and_baselines_name_the_measure() -> None:
    cells = with_forward()
    forward = parse_selector("pytorch@icelake [forward]")
    assert forward == {"backend": "pytorch", "pool": "icelake", "allocator": "default",
                       "instances": "1", "cores_per_instance": "0",
                       "measure": "forward"}  # fmt: skip
    assert parse_selector("pytorch@icelake")["measure"] == "pipeline"
    assert [c.first_job for c in cells if matches({"measure": "forward"}, c)] == [5, 6]
    for c in cells:  # every printed label is a baseline that finds its column
        assert find_baseline(cells, parse_selector(c.column_label)) == c.column_key
    with pytest.raises(ReportError, match="several columns.*measure"):
        find_baseline(cells, {"backend": "pytorch"})
    table = wide_table(cells, ("mean",), {"backend": "pytorch", "measure": "forward"})
    ipex_forward = next(c for c in table.columns if c[0] == "ipex" and c[6] == "forward")
    assert table.speedup(table.rows[0], ipex_forward, "mean") == pytest.approx(4.0)  # 20 / 5


def test_compare_never_matches_across_measures() -> None:
    queries = MemoryReports(with_forward())
    with pytest.raises(ReportError, match="different measures .*never match"):
        compare(queries, "blog", None, {"measure": "pipeline"}, {"measure": "forward"})
    # Naming a measure narrows a side and varies nothing: the measure stays matched on.
    assert varied_fields({"measure": "forward"}, {"backend": "ipex"}) == {"backend", "options"}
    rep = report(MemoryReports(with_forward()), ["blog"], Filters())
    assert len(rep.table.columns) == 4


def test_the_measure_filter_describes_itself() -> None:
    filters = Filters(measures=("forward",))
    assert filters and filters.describe() == "--measure forward"


def test_the_terminal_shows_the_forward_label_not_rich_markup() -> None:
    """`[forward]` reads as a rich markup tag: the terminal views escape it."""
    from io import StringIO

    from rich.console import Console

    from farm.cli.render import print_table, print_wide

    console = Console(file=StringIO(), width=400)
    print_wide(Report([(1, "blog")], wide_table(with_forward())), console)
    row = {"model": "m", "input": "short", "tokens": 18, "batch_size": 1, "batching": "sequential",
           "backend": "openvino", "backend_options": {}, "measure": "forward", "pool": "spr",
           "host": "h", "mean_ms": 1.0, "p99_ms": 2.0, "n": 5, "state": "succeeded",
           "verdict": "valid", "weights": "random"}  # fmt: skip
    print_table([row], console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "pytorch@icelake [forward] mean / p99 (ms)" in text
    assert "openvino [forward]" in text and "latency per call ([forward]" in text


def test_a_large_report_table_is_plain_text_with_whole_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past PLAIN_CELLS cells the terminal table is fixed-width text, not rich's (which took
    a minute for 100,000 cells and cut labels to "…"): the same header and rows."""
    from io import StringIO

    from rich.console import Console

    from farm.cli import render

    rep = Report([(1, "blog")], wide_table(with_forward()))
    header, body, _ = wide_grid(rep)
    monkeypatch.setattr(render, "PLAIN_CELLS", len(header) * len(body) - 1)
    console = Console(file=StringIO(), width=40)
    render.print_wide(rep, console)
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[0] == rep.title
    assert lines[1].startswith("model ")
    assert "pytorch@icelake [forward] mean / p99 (ms)" in lines[1]
    assert set(lines[2]) <= {"-", " "}
    for line, cells in zip(lines[3:], body, strict=False):  # then the notes
        assert line.split() == " ".join(cells).split()
