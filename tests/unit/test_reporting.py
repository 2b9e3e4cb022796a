"""farm.reports: the blog's layout, baselines and speed-ups, cost, selectors, BMF."""

from __future__ import annotations

import pytest

from farm.app.reports import compare, job_rows, plot_data, report
from farm.errors import NotFound
from farm.reports.cells import CELL_FIELDS, Cell, ReportError, cost_per_million
from farm.reports.exports import bencher_metric_format, tidy_rows
from farm.reports.layout import find_baseline, wide_table
from farm.reports.selectors import Filters, parse_selector
from farm.stats import mean_interval
from tests.support.cells import BLOG, MemoryReports, blog, cell


def test_cell_positional_order_is_its_field_order() -> None:
    values = {name: f"v{i}" for i, name in enumerate(CELL_FIELDS)}
    built = Cell(*values.values())
    assert all(getattr(built, name) == value for name, value in values.items())


def test_blog_layout_rows_columns_and_cells() -> None:
    table = wide_table(list(reversed(BLOG)))  # order comes from the jobs, not the list
    assert [r[1] for r in table.rows] == ["short", "long"]
    assert [c[0] for c in table.columns] == ["pytorch", "ipex"]
    assert table.row_label(table.rows[1]) == "m · long (151) · batch 1"
    ipex = table.columns[1]
    assert table.cell(table.rows[0], ipex) is BLOG[1]
    assert table.speedup(table.rows[0], ipex, "mean") is None  # no baseline: no speed-up


def test_baseline_speedups_cell_for_cell() -> None:
    table = wide_table(BLOG, ("mean", "p99"), {"backend": "ipex"})
    assert table.columns[0][0] == "ipex"  # the baseline comes first
    pytorch = table.columns[1]
    assert table.speedup(table.rows[0], pytorch, "mean") == pytest.approx(0.5)
    table = wide_table(BLOG, ("mean", "p99"), {"backend": "pytorch", "pool": "icelake"})
    ipex = table.columns[1]
    assert table.speedup(table.rows[0], ipex, "mean") == pytest.approx(2.0)
    assert table.speedup(table.rows[1], ipex, "p99") == pytest.approx(139.6 / 79.6)
    # A backend option names a column too.
    assert wide_table(BLOG, baseline={"dtype": "bf16"}).baseline == BLOG[1].column_key


def test_throughput_speedup_is_higher_is_better() -> None:
    fast = cell("short", "ipex", "spr", 10.0, 12.0, throughput=100.0, first=2)
    slow = cell("short", "pytorch", "icelake", 20.0, 25.0, throughput=50.0, first=1)
    table = wide_table([slow, fast], ("throughput",), {"backend": "pytorch"})
    assert table.speedup(table.rows[0], fast.column_key, "throughput") == pytest.approx(2.0)


def test_baseline_errors_are_clear() -> None:
    with pytest.raises(ReportError, match="matches no column.*pytorch@icelake"):
        find_baseline(BLOG, {"backend": "openvino"})
    two_pools = [*BLOG, cell("short", "pytorch", "zen4", 25.0, 40.0, first=5)]
    with pytest.raises(ReportError, match="several columns"):
        find_baseline(two_pools, {"backend": "pytorch"})
    with pytest.raises(ReportError, match="is a column"):
        find_baseline(BLOG, {"input": "short"})


def test_selectors_parse_and_refuse() -> None:
    assert parse_selector("backend=pytorch, pool=icelake") == {
        "backend": "pytorch",
        "pool": "icelake",
    }
    for bad in ("pytorch", "backend=", "=x", "", "pool=a,pool=b", "ipex(dtype)@spr"):
        with pytest.raises(ReportError):
            parse_selector(bad)


def test_a_printed_column_label_selects_that_column() -> None:
    latency = {"instances": "1", "cores_per_instance": "0", "measure": "pipeline"}
    assert parse_selector("ipex(dtype=bf16,jit=true)@spr+tcmalloc") == {
        "backend": "ipex", "dtype": "bf16", "jit": "true", "pool": "spr", "allocator": "tcmalloc",
        **latency,
    }  # fmt: skip
    assert parse_selector("pytorch@icelake") == {
        "backend": "pytorch", "pool": "icelake", "allocator": "default", **latency,
    }  # fmt: skip
    assert parse_selector("pytorch@icelake{2x1}") == {
        "backend": "pytorch", "pool": "icelake", "allocator": "default",
        "instances": "2", "cores_per_instance": "1", "measure": "pipeline",
    }  # fmt: skip
    for c in BLOG:  # every column label the report prints is a baseline that finds it
        assert find_baseline(BLOG, parse_selector(c.column_label)) == c.column_key


def test_cost_per_million_inferences() -> None:
    # 4.46 $/h, 15 ms per call of one sequence: 4.46 / 3600 × 0.015 × 1e6 = 18.5833
    assert cost_per_million(4.46, 15.0, 1) == pytest.approx(18.583333)
    # A batch of 8 in 80 ms is 10 ms per sequence.
    assert cost_per_million(3.6, 80.0, 8) == pytest.approx(10.0)
    c = cell("short", "ipex", "spr", 15.0, 24.8)
    c.with_cost(4.46, "USD")
    assert c.cost_per_million == pytest.approx(18.583333)


def test_tidy_rows_carry_speedups_and_cost() -> None:
    cells = blog()
    for c in cells:
        c.with_cost(3.6 if c.pool == "spr" else None, "USD" if c.pool == "spr" else None)
    table = wide_table(cells, ("mean", "p99"), {"pool": "icelake"})
    rows = tidy_rows(table, cost=True)
    assert len(rows) == 4
    ipex_long = next(r for r in rows if r["backend"] == "ipex" and r["input"] == "long")
    assert ipex_long["speedup_mean"] == pytest.approx(2.0)
    assert ipex_long["speedup_p99"] == pytest.approx(139.6 / 79.6)
    assert ipex_long["cost_per_million"] == pytest.approx(60.0)  # 3.6/3600 × 0.06 × 1e6
    assert ipex_long["backend_options"] == '{"dtype": "bf16"}'
    pytorch_long = next(r for r in rows if r["backend"] == "pytorch" and r["input"] == "long")
    assert pytorch_long["cost_per_million"] is None


def test_bencher_metric_format() -> None:
    c = cell("short", "pytorch", "icelake", 10.0, 12.0, std_ms=1.0, batch=2)
    bmf = bencher_metric_format([c])
    assert list(bmf) == ["m/short/batch 2/pytorch@icelake"]
    latency = bmf["m/short/batch 2/pytorch@icelake"]["latency"]
    lo, hi = mean_interval(10.0, 1.0, 1000)
    assert latency == pytest.approx(
        {"value": 10e6, "lower_value": lo * 1e6, "upper_value": hi * 1e6}
    )
    assert hi - 10.0 == pytest.approx(1.959963984540054 / 1000**0.5)
    throughput = bmf["m/short/batch 2/pytorch@icelake"]["throughput"]
    assert throughput["value"] == pytest.approx(200.0)  # 2 sequences per 10 ms
    assert throughput["lower_value"] < 200.0 < throughput["upper_value"]


# --- the use cases (farm.app.reports) over an in-memory port ------------------------------


def test_report_prices_cells_and_names_the_unpriced_pools() -> None:
    queries = MemoryReports(blog(), prices={"spr": (4.46, "USD")})
    rep = report(queries, ["blog"], cost=True)
    assert rep.title == "campaign 1 (blog)" and rep.unpriced == ["icelake"]
    costs = {(c.input, c.pool): c.cost_per_million for c in rep.table.cells.values()}
    assert costs[("short", "spr")] == pytest.approx(18.583333)
    assert costs[("short", "icelake")] is None


def test_report_says_why_nothing_is_there() -> None:
    with pytest.raises(NotFound, match="campaign 1 \\(blog\\) has no jobs: nothing to report"):
        report(MemoryReports([], jobs=0), ["blog"])
    with pytest.raises(ReportError, match="no job of campaign 1 \\(blog\\) matches --pool zen4"):
        report(MemoryReports(blog()), ["blog"], Filters(pools=("zen4",)))


def test_job_rows_are_priced_with_the_cells_rule() -> None:
    rows = [
        {"pool": "spr", "mean_ms": 15.0, "batch_size": 1},
        {"pool": "spr", "mean_ms": None, "batch_size": 1},
        {"pool": "icelake", "mean_ms": 30.0, "batch_size": 1},
    ]
    priced = job_rows(MemoryReports([], rows, {"spr": (4.46, "USD")}), ["blog"], Filters(), True)
    assert [(r["price_per_hour"], r["currency"]) for r in priced] == [
        (4.46, "USD"),
        (4.46, "USD"),
        (None, None),
    ]
    c = cell("short", "ipex", "spr", 15.0, 24.8)
    c.with_cost(4.46, "USD")
    assert [r["cost_per_million"] for r in priced] == [c.cost_per_million, None, None]


def test_plot_needs_results() -> None:
    waiting = [cell("short", "pytorch", "icelake", 0.0, 0.0, results=0, mean_ms=None)]
    with pytest.raises(ReportError, match="has no results yet: nothing to plot"):
        plot_data(MemoryReports(waiting), ["blog"], Filters(), "p99", None)


def test_compare_refuses_a_campaign_against_itself() -> None:
    with pytest.raises(ReportError, match="compared with itself"):
        compare(MemoryReports(blog()), "blog", "blog")
