"""Reports per task against real PostgreSQL, on stored generation results with known
samples: `farm compare` tests TTFT and TPOT beside end-to-end latency, `--baseline` gives
their speed-ups (tokens/s: ours / baseline's), a report of several tasks has a table per
task with its own metrics, exports and figures carry the generation metrics and what each
output check measured, `farm recommend` and the dashboard read generation cells."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from farm.app.recommend import recommend
from farm.app.reports import compare, raw_jobs, report, write_raw
from farm.db.reports import SqlReports
from farm.db.session import session_factory, transaction
from farm.generation import generation_stats
from farm.reports.cells import GENERATION, ReportError
from farm.reports.exports import bencher_metric_format, compare_rows, report_tidy_rows
from farm.reports.selectors import Filters
from farm.reports.text import compare_grid, render_compare_markdown, render_markdown
from farm.significance import FASTER, SAME, SLOWER, mann_whitney_u
from farm.stats import NS_PER_MS, encode_samples
from tests.support import reportdata
from tests.support.harness import farm, farm_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Using `httpx`"),  # starlette's TestClient on httpx
]

NEW = 8  # new tokens per generate call
CHECK = {"status": "checked", "rows_checked": 1, "tokens_checked": NEW,
         "token_agreement": 0.75, "max_abs_logit_diff": 0.0125, "worst_row": 0}  # fmt: skip
Calls = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


@pytest.fixture
def url(pg_url: str) -> str:
    from farm.db.migrate import upgrade

    upgrade(pg_url)
    return pg_url


def calls(e2e_ms: float, ttft_ms: float, seed: int, n: int = 60) -> Calls:
    """n generate calls: end-to-end and TTFT samples (ns), each with a 1 % spread."""
    rng = np.random.default_rng(seed)
    e2e = (rng.normal(e2e_ms, e2e_ms * 0.01, n) * NS_PER_MS).astype(np.int64)
    ttft = (rng.normal(ttft_ms, ttft_ms * 0.01, n) * NS_PER_MS).astype(np.int64)
    return e2e, ttft


def gen_campaign(url: str, name: str, cells: dict[str, Calls], batch: int = 1) -> int:
    """A text generation campaign: gpt2-like cells on pytorch@icelake, one per dtype."""
    from farm.db import repo
    from farm.db.models import Job, Result

    base = reportdata.spec("short", "pytorch", "icelake", batch)
    specs = [base.model_copy(update={"task": GENERATION, "new_tokens": NEW,
                                     "backend_options": {"dtype": dtype}})
             for dtype in cells]  # fmt: skip
    with transaction(session_factory(url)) as s:
        campaign = repo.create_campaign(s, name, {"name": name}, specs)
        for job, (e2e, ttft) in zip(campaign.jobs, cells.values(), strict=True):
            extra = {"ttft_samples": encode_samples(ttft), "output_check": CHECK,
                     **generation_stats(e2e, ttft, batch, NEW)}  # fmt: skip
            s.add(Result(job_id=job.id, **reportdata.result(list(e2e / NS_PER_MS), 32, **extra)))
            s.get(Job, job.id).state = "succeeded"  # type: ignore[union-attr]
        return campaign.id


def ms(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return ns.astype(np.float64) / NS_PER_MS


def test_compare_tests_ttft_and_tpot_beside_end_to_end(url: str) -> None:
    """B has the same end-to-end latency, half the TTFT and so a longer TPOT: a verdict each."""
    a = calls(100.0, 20.0, 1)
    b = calls(100.0, 10.0, 2)
    gen_campaign(url, "gen-a", {"fp32": a})
    gen_campaign(url, "gen-b", {"fp32": b})
    with SqlReports(session_factory(url)) as queries:
        result = compare(queries, "gen-a", "gen-b")
    (pair,) = result.pairs
    assert pair.value_a == pytest.approx(ms(a[0]).mean())
    assert pair.verdict == SAME  # within the 3 % threshold
    ttft, tpot = pair.by_metric["ttft"], pair.by_metric["tpot"]
    assert ttft.value_a == pytest.approx(ms(a[1]).mean())
    assert ttft.value_b == pytest.approx(ms(b[1]).mean())
    assert ttft.p == pytest.approx(mann_whitney_u(ms(a[1]), ms(b[1])).p)
    assert ttft.verdict == FASTER and ttft.ratio == pytest.approx(0.5, rel=0.02)
    per_token = [(ms(e) - ms(t)) / (NEW - 1) for e, t in (a, b)]
    assert tpot.value_a == pytest.approx(per_token[0].mean())
    assert tpot.value_b == pytest.approx(per_token[1].mean())
    assert tpot.p == pytest.approx(mann_whitney_u(*per_token).p)
    assert tpot.verdict == SLOWER and tpot.ratio == pytest.approx(90 / 80, rel=0.02)
    assert result.regressions == [pair]  # a TPOT regression is one

    header, body, notes = compare_grid(result)
    assert header[4] == "metric" and [line[4] for line in body] == ["end-to-end", "TTFT", "TPOT"]
    assert [line[-1] for line in body] == [SAME, FASTER, SLOWER]
    assert "TTFT (text generation, the mean of the per-call values, U test on them): 1 faster" in (
        " ".join(notes)
    )
    assert render_compare_markdown(result).count("| TPOT |") == 1
    (row,) = compare_rows(result)
    assert row["a_ms"] == pair.value_a and row["verdict"] == SAME  # the keys as before
    assert row["task"] == GENERATION and row["new_tokens"] == NEW
    assert row["ttft_verdict"] == FASTER and row["tpot_verdict"] == SLOWER
    assert row["ttft_b_ms"] == ttft.value_b and row["tpot_p_value"] == tpot.p

    # The CLI: JSON with the new keys; --fail-on-regression exits 3 for the TPOT slowdown.
    env = farm_env(url)
    got = farm("compare", "gen-a", "gen-b", "--format", "json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)[0]["tpot_verdict"] == SLOWER
    gate = farm("compare", "gen-a", "gen-b", "--fail-on-regression", env=env)
    assert gate.returncode == 3, gate.stderr
    assert "TTFT" in gate.stdout and "TPOT" in gate.stdout


def test_a_classification_comparison_is_as_it_was(url: str) -> None:
    reportdata.add_campaign(url, "cls-a", {("short", "pytorch", "icelake"): [10.0, 11.0, 12.0]})
    reportdata.add_campaign(url, "cls-b", {("short", "pytorch", "icelake"): [20.0, 21.0, 22.0]})
    with SqlReports(session_factory(url)) as queries:
        result = compare(queries, "cls-a", "cls-b")
    header, body, notes = compare_grid(result)
    assert header == ["model", "input (tokens)", "batch", "cell", "A mean ms", "B mean ms",
                      "B/A", "change", "p", "verdict"]  # fmt: skip
    assert len(body) == 1 and not result.pairs[0].by_metric
    assert not any(n.startswith(("TTFT", "TPOT")) for n in notes)
    (row,) = compare_rows(result)
    assert "task" not in row and not [k for k in row if k.startswith(("ttft", "tpot"))]


def test_baseline_speedups_of_ttft_tpot_and_tokens_per_s(url: str) -> None:
    fp32, bf16 = calls(100.0, 20.0, 3), calls(50.0, 12.0, 4)
    gen_campaign(url, "dtypes", {"fp32": fp32, "bf16": bf16}, batch=4)
    with SqlReports(session_factory(url)) as queries:
        rep = report(queries, ["dtypes"], baseline={"dtype": "fp32"})
    table = rep.table
    assert table.metrics == ("mean", "p99", "ttft", "ttft_p99", "tpot", "tpot_p99",
                             "tokens_per_s")  # fmt: skip
    (row,) = table.rows
    base_col, col = table.columns
    assert table.label(base_col) == "pytorch(dtype=fp32)@icelake"
    s32, s16 = (generation_stats(e, t, 4, NEW) for e, t in (fp32, bf16))
    assert table.speedup(row, col, "ttft") == pytest.approx(s32["ttft_ms"] / s16["ttft_ms"])
    assert table.speedup(row, col, "tpot") == pytest.approx(s32["tpot_ms"] / s16["tpot_ms"])
    up = table.speedup(row, col, "tokens_per_s")
    assert up == pytest.approx(s16["tokens_per_s"] / s32["tokens_per_s"])  # ours / baseline's
    assert up == pytest.approx(2.0, rel=0.02)
    assert s16["tokens_per_s"] == pytest.approx(4 * NEW * 1000 / ms(bf16[0]).mean())
    text = render_markdown(rep)
    assert "speed-up" in text and f"{up:.2f}×" in text
    assert "(tokens_per_s: ours / baseline's)" in text
    tidy = {r["column"]: r for r in report_tidy_rows(rep)}
    assert tidy["pytorch(dtype=bf16)@icelake"]["speedup_tokens_per_s"] == pytest.approx(up)


def test_a_report_of_several_tasks_has_a_table_each(url: str) -> None:
    reportdata.add_campaign(url, "cls", {("short", "pytorch", "icelake"): [10.0, 11.0, 12.0]})
    e2e, ttft = calls(100.0, 20.0, 5)
    gen_campaign(url, "gen", {"fp32": (e2e, ttft)})
    with SqlReports(session_factory(url)) as queries:
        rep = report(queries, ["cls", "gen"], checks=True)
        asked = report(queries, ["cls", "gen"], metrics=("ttft", "mean"))
        with pytest.raises(ReportError, match="text generation's metrics"):
            report(queries, ["cls"], metrics=("ttft",))
        one_task = report(queries, ["cls", "gen"], Filters(tasks=(GENERATION,)))
        # A generation row's input label, typed back as a filter (the dashboard's trend
        # links do), selects that row; the plain input name selects both tasks' rows.
        by_label = report(queries, ["cls", "gen"], Filters(inputs=("short +8 new",)))
        by_name = report(queries, ["cls", "gen"], Filters(inputs=("short",)))
        with pytest.raises(ReportError, match="matches --input short [+]9 new"):
            report(queries, ["cls", "gen"], Filters(inputs=("short +9 new",)))
        raw = io.StringIO()
        write_raw(queries, raw_jobs(queries, ["cls", "gen"], Filters()), raw)
    assert [t.task for t in one_task.tables] == [GENERATION]
    assert [c.input for c in by_label.cells] == ["short +8 new"]
    assert [c.input for c in by_name.cells] == ["short", "short +8 new"]
    # Raw samples: each generate call's TTFT in a last column, empty for classification.
    header, *lines = list(csv.reader(io.StringIO(raw.getvalue())))
    assert header[-2:] == ["latency_ms", "ttft_ms"] and len(lines) == 3 + len(e2e)
    assert [line[-1] for line in lines[:3]] == ["", "", ""]
    assert [float(line[-1]) for line in lines[3:]] == pytest.approx(list(ms(ttft)))
    assert [t.task for t in rep.tables] == ["text-classification", GENERATION]
    assert [len(t.metrics) for t in rep.tables] == [2, 7]
    with pytest.raises(ReportError, match="a table per task"):
        rep.table  # noqa: B018
    assert [(t.task, t.metrics) for t in asked.tables] == [
        ("text-classification", ("mean",)), (GENERATION, ("ttft", "mean"))]  # fmt: skip
    text = render_markdown(rep)
    assert "### campaigns 1 (cls), 2 (gen) · text-classification" in text
    assert "### campaigns 1 (cls), 2 (gen) · text-generation" in text
    gen_cell = rep.tables[1].cells[rep.tables[1].rows[0], rep.tables[1].columns[0]]
    assert f"{gen_cell.ttft_ms:.2f}" in text
    # What each column's output check measured, per task: the generation check's fields.
    assert (
        "output check, pytorch(dtype=fp32)@icelake (worst of its cells): max |logit diff| "
        "0.0125; token agreement 75%" in text
    )
    rows = report_tidy_rows(rep)
    assert [r.get("task") for r in rows] == [None, GENERATION]
    assert rows[0]["output_check"] == "none recorded"  # reportdata's results record none
    assert rows[1]["output_check"] == "max |logit diff| 0.0125; token agreement 75%"
    assert rows[1]["ttft_ms"] == pytest.approx(ms(ttft).mean())
    bmf = bencher_metric_format(rep.cells)
    gen_bmf = next(v for k, v in bmf.items() if "+8 new" in k)
    assert gen_bmf["ttft"]["value"] == pytest.approx(ms(ttft).mean() * 1e6)
    assert gen_bmf["tokens_per_s"]["value"] == pytest.approx(gen_cell.tokens_per_s)
    assert set(next(v for k, v in bmf.items() if "+8 new" not in k)) == {"latency", "throughput"}

    from farm.cli.render import build_figure

    fig = build_figure(rep.tables, "mean")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{reportdata.MODEL} (text-classification)",
                      f"{reportdata.MODEL} (text-generation)"]  # fmt: skip
    ttft_fig = build_figure(asked.tables[1:], "ttft")
    (bar,) = [p for p in ttft_fig.axes[0].patches]
    assert bar.get_height() == pytest.approx(gen_cell.ttft_ms)


def test_farm_report_and_plot_read_generation_cells(url: str, tmp_path: Any) -> None:
    e2e, ttft = calls(100.0, 20.0, 6)
    gen_campaign(url, "gen", {"fp32": (e2e, ttft)})
    env = farm_env(url)
    table = farm("report", "gen", env=env)
    assert table.returncode == 0, table.stderr
    assert f"{ms(ttft).mean():.2f}" in table.stdout and "token agreement 75%" in table.stdout
    csv = farm("report", "gen", "--format", "csv", env=env)
    assert "max |logit diff| 0.0125; token agreement 75%" in csv.stdout
    out = tmp_path / "tpot.png"
    plot = farm("plot", "gen", "--metric", "tpot", "-o", str(out), env=env)
    assert plot.returncode == 0 and out.read_bytes()[:4] == b"\x89PNG", plot.stderr


def test_recommend_reads_generation_cells(url: str) -> None:
    fp32, bf16 = calls(100.0, 20.0, 7), calls(50.0, 12.0, 8)
    gen_campaign(url, "rec", {"fp32": fp32, "bf16": bf16})
    with SqlReports(session_factory(url)) as queries:
        by_mean = recommend(queries, ["rec"], "mean")
        by_throughput = recommend(queries, ["rec"], "throughput")
        by_p99 = recommend(queries, ["rec"], "p99")
    (mean,) = by_mean.choices
    assert mean.best is not None and mean.best.column == "pytorch(dtype=bf16)@icelake"
    assert mean.best.value == pytest.approx(ms(bf16[0]).mean())
    assert mean.verdict == "significant"
    assert by_throughput.objective.unit == "tok/s"
    (best,) = by_throughput.choices
    assert best.best is not None and best.runner_up is not None
    assert best.best.value == pytest.approx(generation_stats(*bf16, 1, NEW)["tokens_per_s"])
    assert best.runner_up.value == pytest.approx(generation_stats(*fp32, 1, NEW)["tokens_per_s"])
    assert best.margin is not None and best.margin.margin == pytest.approx(1.0, rel=0.05)
    assert best.verdict == "significant"
    assert by_throughput.to_json()["unit"] == "tok/s"
    (p99,) = by_p99.choices  # end to end, as the mean
    assert p99.best is not None and p99.best.value == pytest.approx(
        np.percentile(ms(bf16[0]), 99)
    )


def test_the_dashboard_shows_generation_cells(url: str) -> None:
    from starlette.testclient import TestClient

    from farm.cli.serve.app import create_app
    from farm.settings import Settings

    e2e, ttft = calls(100.0, 20.0, 9)
    cid = gen_campaign(url, "gen", {"fp32": (e2e, ttft)})
    stats = generation_stats(e2e, ttft, 1, NEW)
    with TestClient(create_app(Settings(database_url=url))) as client:
        page = client.get(f"/campaigns/{cid}")
        cells = client.get(f"/api/campaigns/{cid}/cells").json()
        chart = client.get(f"/campaigns/{cid}/chart.svg?chart=tokens_per_s")
        recommended = client.get(f"/campaigns/{cid}?objective=throughput")
    assert page.status_code == 200, page.text
    text = page.text
    assert "mean (ms) / p99 (ms) / ttft (ms)" in text and "tokens_per_s (tok/s)" in text
    assert f"{stats['ttft_ms']:.2f} / " in text and f" / {stats['tokens_per_s']:.2f}" in text
    assert f'data-key="tpot_ms">{stats["tpot_ms"]:.2f}<' in text
    assert "max |logit diff| 0.0125; token agreement 75%" in text
    (cell,) = cells
    assert cell["ttft_ms"] == pytest.approx(stats["ttft_ms"]) and cell["new_tokens"] == NEW
    assert cell["output_check"] == "max |logit diff| 0.0125; token agreement 75%"
    assert chart.status_code == 200 and b"<svg" in chart.content
    assert "throughput (tok/s)" in recommended.text
