"""Validity notes grouped by reason (farm.reports.notes) and the HTML report's width."""

from __future__ import annotations

from farm.app.reports import report
from farm.reports.cells import Cell
from farm.reports.notes import group_notes, group_reasons, note_text
from farm.reports.text import render_html, render_markdown
from tests.support.cells import MemoryReports, cell


def _p99(samples: int) -> str:
    return f"p99 not supported: {samples} samples, needs at least 662"


def _cells() -> list[Cell]:
    out = []
    for i, (backend, samples) in enumerate((("pytorch", 300), ("ipex", 500), ("onnx", 300))):
        for j, name in enumerate(("short", "long")):
            out.append(cell(name, backend, "spr", 10.0, 20.0, first=2 * i + j, invalid=1,
                            reasons=[_p99(samples)]))  # fmt: skip
    out[0].reasons.append("noisy: coefficient of variation 0.31 above 0.1")
    out[1].results, out[1].jobs = 2, 2  # one of its two results invalid
    return out


def test_one_entry_per_reason_with_its_cells_and_its_numbers_as_a_range() -> None:
    groups = group_notes(_cells())
    assert [reason for reason, _ in groups] == [
        "p99 not supported: 300–500 samples, needs at least 662",
        "noisy: coefficient of variation 0.31 above 0.1",
    ]
    assert groups[0][1][:3] == [
        "m · short · batch 1 · pytorch@spr",
        "m · long · batch 1 · pytorch@spr (1 of 2 results)",
        "m · short · batch 1 · ipex@spr",
    ]
    assert len(groups[0][1]) == 6 and groups[1][1] == ["m · short · batch 1 · pytorch@spr"]


def test_reasons_of_other_kinds_stay_apart_and_equal_numbers_stay_as_they_are() -> None:
    groups = group_reasons([
        ("p90 not supported: 30 samples, needs at least 64", "a"),
        ("p99 not supported: 30 samples, needs at least 662", "a"),
        ("p99 not supported: 30 samples, needs at least 662", "b"),
        ("output check: logits differ by up to 1.2e-05 (tolerance 0.05)", "c"),
        ("output check: logits differ by up to 0.3 (tolerance 0.05)", "d"),
    ])  # fmt: skip
    assert groups == [
        ("p90 not supported: 30 samples, needs at least 64", ["a"]),
        ("p99 not supported: 30 samples, needs at least 662", ["a", "b"]),
        ("output check: logits differ by up to 1.2e-05–0.3 (tolerance 0.05)", ["c", "d"]),
    ]
    line = note_text("r", [f"c{i}" for i in range(10)], shown=3)
    assert line == "r — 10 cells: c0, c1, c2, and 7 more"


def test_the_report_notes_one_line_per_reason_not_per_cell() -> None:
    rep = report(MemoryReports(_cells()), ["blog"])
    text = render_markdown(rep)
    invalid = [line for line in text.splitlines() if line.startswith("- !:")]
    assert len(invalid) == 2, invalid  # six invalid cells, two reasons
    assert invalid[0].startswith("- !: p99 not supported: 300–500 samples, needs at least 662 — "
                                 "6 cells: m · short · batch 1 · pytorch@spr, ")  # fmt: skip


def test_the_html_table_scrolls_inside_the_page_and_its_headers_wrap() -> None:
    page = render_html(report(MemoryReports(_cells()), ["blog"]))
    assert '<div class="wide">\n<table>' in page
    assert ".wide{max-width:100%;overflow-x:auto}" in page
    assert "th{background:#f4f4f4;overflow-wrap:anywhere" in page
    assert page.count("<li>!: ") == 2
