"""`farm recommend` through a real database (PostgreSQL and SQLite) with stored raw samples:
the report's numbers, the U test on the stored samples (checked against scipy), the rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from farm.app.recommend import recommend
from farm.app.reports import report
from farm.db.reports import SqlReports
from farm.db.session import session_factory
from farm.reports.cells import ReportError
from tests.support import reportdata

pytestmark = pytest.mark.integration
CHECKED = {"output_check": {"status": "checked", "max_abs_logit_diff": 0.002}}
BAD_CHECK = "output check: logits differ from fp32 eager by up to 0.4 (tolerance 0.05)"
P99_SHORT = "p99 not supported: 300 samples, needs at least 662"


def _noisy(mean: float, seed: int, n: int = 300) -> list[float]:
    return list(np.round(np.random.default_rng(seed).normal(mean, mean * 0.02, n), 3))


SAMPLES = {
    ("short", "pytorch", "icelake"): _noisy(12.0, 1),
    ("short", "ipex", "spr"): _noisy(10.0, 2),
    ("short", "openvino", "spr"): _noisy(8.0, 3),  # fastest, but its p99 is not supported
    ("long", "pytorch", "icelake"): _noisy(50.0, 4),
    ("long", "ipex", "spr"): _noisy(30.0, 5),  # fastest, but its output check failed
}
EXTRA: dict[tuple[str, str, str], dict[str, Any]] = {key: CHECKED for key in SAMPLES}
EXTRA[("short", "openvino", "spr")] = {**CHECKED, "verdict": "invalid", "reasons": [P99_SHORT]}
EXTRA[("long", "ipex", "spr")] = {
    "verdict": "invalid",
    "reasons": [BAD_CHECK],
    "output_check": {"status": "checked", "max_abs_logit_diff": 0.4},
}
REPEAT = {("short", "pytorch", "icelake"): _noisy(12.0, 6, 100)}


@pytest.fixture(params=["pg_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(request.param))
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(url, "rec", SAMPLES, EXTRA)
    reportdata.add_campaign(url, "rec-repeat", REPEAT, {k: CHECKED for k in REPEAT})
    return url


def _run(url: str, fn: Any, *args: Any, **kw: Any) -> Any:
    with SqlReports(session_factory(url)) as queries:
        return fn(queries, *args, **kw)


def _p(a: list[float], b: list[float]) -> float:
    return float(mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


def test_mean_recommendation_with_the_reports_numbers_and_the_u_test(url: str) -> None:
    rec = _run(url, recommend, ["rec"], "mean")
    cells = {(c.input, c.backend): c for c in _run(url, report, ["rec"]).table.cells.values()}
    short, long = rec.choices
    assert short.best.column == "openvino@spr"  # p99 unsupported: the mean does not care
    assert short.runner_up.column == "ipex(dtype=bf16)@spr"
    assert short.best.value == cells[("short", "openvino")].mean_ms
    assert short.runner_up.value == cells[("short", "ipex")].mean_ms
    assert short.margin.p_value == pytest.approx(
        _p(SAMPLES[("short", "ipex", "spr")], SAMPLES[("short", "openvino", "spr")]), rel=1e-6
    )
    assert short.margin.significant and short.qualified == 3
    # The long row's fastest failed its output check: left out, whatever the objective.
    assert long.best.column == "pytorch@icelake" and long.runner_up is None
    assert [(e.column, e.reasons) for e in long.excluded] == [
        ("ipex(dtype=bf16)@spr", (BAD_CHECK,))
    ]


def test_p99_needs_a_supported_p99(url: str) -> None:
    short, _ = _run(url, recommend, ["rec"], "p99").choices
    cells = {(c.input, c.backend): c for c in _run(url, report, ["rec"]).table.cells.values()}
    assert short.best.column == "ipex(dtype=bf16)@spr"
    assert short.best.value == cells[("short", "ipex")].p99_ms
    assert [e.reasons for e in short.excluded] == [(P99_SHORT,)]


def test_pooled_cells_of_several_campaigns(url: str) -> None:
    from farm.reports.selectors import Filters

    two = Filters(backends=("pytorch", "ipex"))
    rec = _run(url, recommend, ["rec", "rec-repeat"], "throughput", two)
    rep = _run(url, report, ["rec", "rec-repeat"], two, metrics=("throughput",))
    pytorch = next(c for c in rep.table.cells.values() if c.pooled)
    assert (pytorch.input, pytorch.backend, len(pytorch.job_ids)) == ("short", "pytorch", 2)
    short = rec.choices[0]
    assert short.best.column == "ipex(dtype=bf16)@spr"
    assert short.runner_up.value == pytorch.throughput  # the pooled cell's number
    pooled = SAMPLES[("short", "pytorch", "icelake")] + REPEAT[("short", "pytorch", "icelake")]
    assert short.runner_up.value == pytest.approx(1000 / np.mean(pooled))
    assert short.margin.p_value == pytest.approx(
        _p(pooled, SAMPLES[("short", "ipex", "spr")]), rel=1e-6
    )
    assert rec.to_json()["campaigns"] == [{"id": 1, "name": "rec"}, {"id": 2, "name": "rec-repeat"}]


def test_cost_with_and_without_prices(url: str) -> None:
    with pytest.raises(ReportError, match="none of icelake, spr has one.*farm pools price"):
        _run(url, recommend, ["rec"], "cost")
    from farm.db.pools import set_price
    from farm.db.session import transaction

    with transaction(session_factory(url)) as s:
        set_price(s, "spr", 10.0, "USD")  # 10× icelake's price: icelake is the cheaper
        set_price(s, "icelake", 1.0, "USD")
    short, _ = _run(url, recommend, ["rec"], "cost").choices
    priced = _run(url, report, ["rec"], cost=True).table.cells.values()
    cells = {(c.input, c.backend): c for c in priced}
    assert short.best.column == "pytorch@icelake" and short.best.currency == "USD"
    assert short.best.value == cells[("short", "pytorch")].cost_per_million
    assert short.margin.significant
