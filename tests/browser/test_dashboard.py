"""`farm serve` as a person uses it: headless chromium on a server the test started,
against a real PostgreSQL whose campaign a real worker is running.

Each page's screenshot goes to $FARM_TEST_ARTIFACTS (a temporary folder when unset).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboard import ServeProcess, artifacts_dir, browser, colours
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix

pytestmark = pytest.mark.acceptance
VERDICTS = ("faster", "slower", "no significant difference")
TOKEN = "browser-test-token"


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def image_ok(page: Any, selector: str) -> None:
    """The image loaded (natural size) and is not blank (many colours in its pixels)."""
    img = page.locator(selector)
    img.scroll_into_view_if_needed()
    page.wait_for_function(
        "s => { const i = document.querySelector(s); "
        "return i && i.complete && i.naturalWidth > 0 }",
        arg=selector, timeout=30_000,
    )  # fmt: skip
    assert colours(img.screenshot()) > 20, f"{selector} looks blank"


def test_the_dashboard_in_a_browser(migrated_pg: str, redis_url: str, tmp_path: Path) -> None:
    folder = artifacts_dir()
    print(f"screenshots in {folder}")
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(
        tmp_path / "m.yaml", name="nightly", batch_sizes=[1, 2, 4, 8],
        protocol={"warmup": 5, "iterations": 100, "min_duration_s": 1},
    )  # fmt: skip
    sub = farm("submit", str(matrix), env=env)
    assert sub.returncode == 0, sub.stderr
    campaign = int(sub.stdout.strip().splitlines()[-1])
    server = ServeProcess(env, tmp_path / "serve.log")
    public = ServeProcess(env, tmp_path / "public.log", host="0.0.0.0", token=TOKEN)
    worker: WorkerProcess | None = None
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 1400, "height": 900})
            # Campaigns: the bar moves while the worker ends jobs, without a reload.
            page.goto(server.url + "/")
            bar = page.locator(f'#campaigns [data-campaign="{campaign}"]')
            assert bar.locator(".count").inner_text() == "0 / 4 ended"
            assert "a: queued 4" in page.locator(f'[data-pools="{campaign}"]').inner_text()
            page.evaluate("window.__same_document = true")
            worker = WorkerProcess("a", "w-browser", env, tmp_path / "worker.log", cpus="0")
            seen = [0]
            deadline = time.monotonic() + 240
            while seen[-1] < 4 and time.monotonic() < deadline:
                ended = int(bar.get_attribute("data-ended") or 0)
                if ended != seen[-1]:
                    seen.append(ended)
                    if ended < 4:
                        shot(page, folder, "campaigns-running")
                time.sleep(0.3)
            assert seen[-1] == 4, f"progress seen: {seen}; {worker.log.read_text()[-2000:]}"
            assert page.evaluate("window.__same_document") is True  # no reload happened
            width = bar.locator(".fill").evaluate("e => e.style.width")
            assert width in ("100%", "100.0%"), width
            print(f"progress seen without a reload: {seen}")
            shot(page, folder, "campaigns")

            # Campaign: the same numbers as `farm report --format json`.
            rows = json.loads(farm("report", str(campaign), "--format", "json", env=env).stdout)
            page.goto(f"{server.url}/campaigns/{campaign}")
            assert len(rows) == 4
            shown = page.eval_on_selector_all(
                "#blog td.cell", "tds => tds.map(td => [td.dataset.row, td.dataset.column, "
                "td.querySelector('.value') ? td.querySelector('.value').innerText : null])",
            )  # fmt: skip
            by_row = {row: text for row, _, text in shown}
            assert len(shown) == 4 == len(by_row), shown
            for r in rows:
                key = f"{r['model']}|{r['input']}|{r['batch_size']}"
                assert by_row[key] == f"{r['mean_ms']:.2f} / {r['p99_ms']:.2f}", (key, shown)
                job_row = page.locator(f'#jobs tr[data-job="{r["job"]}"]')
                assert job_row.locator('[data-key="mean_ms"]').inner_text() == f"{r['mean_ms']:.2f}"
            image_ok(page, "#chart")
            assert page.locator("#recommend tbody tr").count() == 4  # farm recommend, per row
            shot(page, folder, "campaign")

            # Job: the histogram of its raw samples (and the warm-up trace).
            page.locator("#blog .value").first.click()
            page.wait_for_url("**/jobs/*")
            assert page.locator("#result").is_visible()
            image_ok(page, "#histogram")
            image_ok(page, "#warmup")
            shot(page, folder, "job")

            # Compare: batch 1 against batch 8 of the campaign, with a verdict.
            page.goto(f"{server.url}/compare?a={campaign}&a_sel=batch%3D1&b_sel=batch%3D8")
            verdict = page.locator("#compare td.verdict").first.inner_text()
            assert verdict.split(" (")[0] in VERDICTS, verdict
            shot(page, folder, "compare")

            page.goto(f"{server.url}/hosts")
            assert "w-browser" in page.locator("#workers").inner_text()
            shot(page, folder, "hosts")
            # Trends: a second nightly run of batch 1, and the verdict between the two.
            again = write_matrix(tmp_path / "again.yaml", name="nightly", batch_sizes=[1],
                                 protocol={"warmup": 5, "iterations": 100})  # fmt: skip
            second = farm("submit", str(again), env=env)
            assert second.returncode == 0, second.stderr
            second_id = int(second.stdout.strip().splitlines()[-1])
            wait_for(lambda: {s for _, s, _ in job_states(migrated_pg, second_id).values()}
                     == {"succeeded"}, 120)  # fmt: skip
            page.goto(f"{server.url}/trends?name=nightly")
            page.locator("ul li a").first.click()  # the newest run's first cell: batch 1
            page.wait_for_selector("#trend")
            assert page.locator("#trend tbody tr").count() == 2
            verdict = page.locator("#trend tbody tr").nth(1).locator("td.verdict").inner_text()
            assert verdict in VERDICTS, verdict
            image_ok(page, "#trend-chart")
            shot(page, folder, "trends")

            # A non-loopback bind: 401 without the token, in whatever client.
            refused = page.goto(f"{public.url}/")
            assert refused is not None and refused.status == 401
            shot(page, folder, "unauthorized")
            ok = page.goto(f"{public.url}/campaigns/{campaign}?token={TOKEN}")
            assert ok is not None and ok.status == 200 and "?token" not in page.url
            assert page.goto(f"{public.url}/hosts").status == 200  # type: ignore[union-attr]
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        public.stop()
