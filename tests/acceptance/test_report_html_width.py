"""The static HTML report in a real browser (headless Chromium): a wide table scrolls within
its box and never widens the page; invalid cells' notes are one line per reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from farm.app.reports import report
from farm.reports.text import render_html
from tests.support.cells import MemoryReports, cell
from tests.support.services import unavailable

pytestmark = pytest.mark.acceptance
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


def _page_html() -> str:
    """Twelve columns with long labels (backend options), 40 invalid cells, two reasons."""
    cells = []
    for i in range(12):
        options = {"dtype": "bf16", "threads": i + 1, "allocator_hint": "tcmalloc-huge-pages"}
        for j, name in enumerate(("short", "long")):
            reason = f"p99 not supported: {300 + i} samples, needs at least 662"
            cells.append(
                cell(name, f"backend{i}", "sapphire-rapids-pool", 1234.56, 2345.67,
                     first=i * 2 + j, options=options, invalid=1, reasons=[reason])
            )  # fmt: skip
    return render_html(report(MemoryReports(cells), ["blog"]))


def _chromium() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("playwright", exc)
    path = os.environ.get("FARM_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        unavailable("chromium", "not installed: apt-get install chromium")
    return sync_playwright, path


def test_a_wide_html_report_fits_the_page_width(tmp_path: Path) -> None:
    sync_playwright, path = _chromium()
    page_file = tmp_path / "report.html"
    page_file.write_text(_page_html(), encoding="utf-8")
    artifacts = Path(os.environ.get("FARM_TEST_ARTIFACTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(page_file.as_uri())
            page_width, view, box, table = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth,"
                " document.querySelector('table').parentElement.clientWidth,"
                " document.querySelector('table').scrollWidth]"
            )
            notes = page.locator("li").all_inner_texts()
            page.screenshot(path=str(artifacts / "report-html-wide.png"), full_page=True)
        finally:
            browser.close()
    assert page_width <= view, f"the page is {page_width} px wide in a {view} px window"
    assert box <= view and table > box  # the table scrolls inside its box
    invalid = [n for n in notes if n.startswith("!:")]
    assert len(invalid) == 1 and "24 cells" in invalid[0], invalid
    assert "p99 not supported: 300–311 samples, needs at least 662" in invalid[0]
