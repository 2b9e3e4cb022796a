"""`farm recommend`'s choice rules on cells built by hand (farm.reports.recommend, the use case
on an in-memory ReportQueries)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farm.app.recommend import recommend
from farm.reports.cells import Cell, ReportError
from farm.reports.recommend import OBJECTIVES, bears_on
from farm.reports.recommend_text import recommend_grid, render_recommend_markdown
from farm.significance import mann_whitney_u
from tests.support.cells import MemoryReports, cell

CHECKED = {"status": "checked", "max_abs_logit_diff": 0.001}
P99_SHORT = "p99 not supported: 300 samples, needs at least 662"


class SampledReports(MemoryReports):
    """MemoryReports with raw samples and calibrated noise floors."""

    def __init__(
        self,
        cells: list[Cell],
        samples: dict[int, Any] | None = None,
        noise: dict[str, tuple[float, float]] | None = None,
        **kw: Any,
    ) -> None:
        rows = [{"job": j, "output_check": CHECKED} for c in cells for j in c.job_ids]
        rows += kw.pop("rows", [])
        super().__init__(cells, rows=rows, **kw)
        self._samples, self._noise = samples or {}, noise or {}

    def job_rows(self, campaign_ids: list[int], filters: Any) -> list[dict[str, Any]]:
        # Later rows override earlier ones for the same job (a test's own output checks).
        by_job = {r["job"]: r for r in super().job_rows(campaign_ids, filters)}
        return list(by_job.values())

    def samples_ms(self, job_ids: Any) -> dict[int, Any]:
        return {j: self._samples[j] for j in job_ids if j in self._samples}

    def noise_floors(self, pools: Any) -> dict[str, tuple[float, float]]:
        return self._noise


def _cell(job: int, backend: str, pool: str, mean: float, p99: float, **kw: Any) -> Cell:
    return cell("short", backend, pool, mean, p99, first=job, job_ids=[job], **kw)


def _noisy(mean: float, seed: int, n: int = 300) -> Any:
    return np.random.default_rng(seed).normal(mean, mean * 0.02, n)


def test_mean_picks_the_lowest_and_tests_its_margin_as_compare() -> None:
    a, b = _noisy(10.0, 1), _noisy(12.0, 2)
    cells = [
        _cell(1, "pytorch", "icelake", float(b.mean()), 20.0),
        _cell(2, "ipex", "spr", float(a.mean()), 30.0),
    ]
    rec = recommend(SampledReports(cells, {1: b, 2: a}), ["blog"], "mean")
    (choice,) = rec.choices
    assert choice.best is not None and choice.runner_up is not None
    assert (choice.best.backend, choice.runner_up.backend) == ("ipex", "pytorch")
    assert choice.best.value == pytest.approx(a.mean())  # the report's number
    assert choice.margin is not None
    assert choice.margin.margin == pytest.approx(b.mean() / a.mean() - 1)
    assert choice.margin.p_value == pytest.approx(mann_whitney_u(b, a).p)
    assert choice.margin.significant and choice.verdict == "significant"
    # p99 ranks the other way round: pytorch's p99 is the lower.
    (p99,) = recommend(SampledReports(cells, {1: b, 2: a}), ["blog"], "p99").choices
    assert p99.best is not None and p99.best.backend == "pytorch"


def test_a_margin_within_the_threshold_or_the_noise_floor_is_not_significant() -> None:
    a, close = _noisy(10.0, 1), _noisy(10.0, 2) * 1.01  # 1 % apart: below the 3 % default
    cells = [_cell(1, "pytorch", "icelake", 10.1, 20.0), _cell(2, "ipex", "spr", 10.0, 20.0)]
    (choice,) = recommend(SampledReports(cells, {1: close, 2: a}), ["b"]).choices
    assert choice.margin is not None and not choice.margin.significant
    assert choice.margin.threshold == pytest.approx(0.03)
    far = _noisy(13.0, 3)  # 30 % apart, but the calibrated floor of spr is 40 %
    cells[0].mean_ms = float(far.mean())
    reports = SampledReports(cells, {1: far, 2: a}, noise={"spr": (0.4, 0.5)})
    (choice,) = recommend(reports, ["b"]).choices
    assert choice.margin is not None and choice.margin.p_value is not None
    assert choice.margin.p_value < 1e-6 and choice.margin.threshold == pytest.approx(0.4)
    assert not choice.margin.significant and choice.verdict == "not significant"


def test_a_p99_objective_needs_a_supported_p99_a_mean_objective_does_not() -> None:
    cells = [
        _cell(1, "pytorch", "icelake", 20.0, 30.0),
        _cell(2, "ipex", "spr", 10.0, 15.0, invalid=1, reasons=[P99_SHORT]),
    ]
    (mean,) = recommend(SampledReports(cells), ["b"], "mean").choices
    assert mean.best is not None and mean.best.backend == "ipex"
    assert mean.verdict == "not tested (no raw samples)"
    (p99,) = recommend(SampledReports(cells), ["b"], "p99").choices
    assert p99.best is not None and p99.best.backend == "pytorch"
    assert p99.runner_up is None and p99.verdict == "only candidate"
    assert [(e.column, e.reasons) for e in p99.excluded] == [("ipex@spr", (P99_SHORT,))]


def test_reasons_that_bear_on_every_metric_and_those_on_one_percentile() -> None:
    mean, p99 = OBJECTIVES["mean"], OBJECTIVES["p99"]
    assert not bears_on(P99_SHORT, mean) and bears_on(P99_SHORT, p99)
    assert not bears_on("p90 not supported: 30 samples, needs at least 64", p99)
    assert not bears_on("p99.9 interval not within ±5.0% (max calls)", p99)
    assert bears_on("p99 interval not within ±5.0% (max calls)", p99)
    # Pooled over several jobs, 700 samples support the p99 that 350 of one job did not.
    assert not bears_on("p99 not supported: 350 samples, needs at least 662", p99, 700)
    assert bears_on("p99 not supported: 350 samples, needs at least 662", p99, 661)
    for reason in (
        "noisy: coefficient of variation 0.30 above 0.1",
        "warm-up not converged: last 10 warm-up calls' median 2.00 ms is 20% above",
        "openvino ran f32, not the bf16 asked (this CPU has no native support for it)",
        "timed calls lasted 1.2 s, below the minimum 5 s (max calls)",
    ):
        assert bears_on(reason, mean) and bears_on(reason, p99)


def test_the_output_check_must_have_passed() -> None:
    failed = "output check: logits differ from fp32 eager by up to 0.3 (tolerance 0.05)"
    cells = [
        _cell(1, "pytorch", "icelake", 40.0, 50.0),
        _cell(2, "ipex", "spr", 10.0, 15.0, invalid=1, reasons=[failed]),
        _cell(3, "openvino", "spr", 11.0, 15.0),
        _cell(4, "onnx", "spr", 12.0, 15.0),
    ]
    unavailable = {"status": "unavailable", "reason": "no logits"}
    rows = [{"job": 3, "output_check": None}, {"job": 4, "output_check": unavailable}]
    (choice,) = recommend(SampledReports(cells, rows=rows), ["b"], "mean").choices
    assert choice.best is not None and choice.best.backend == "pytorch"
    why = {e.column.split("@")[0]: e.reasons for e in choice.excluded}
    assert why["ipex"] == (failed,)
    assert why["openvino"] == ("output check: none recorded",)
    assert why["onnx"] == ("output check: unavailable (no logits)",)


def test_rows_where_nothing_qualifies_say_why() -> None:
    cells = [
        _cell(1, "pytorch", "icelake", 40.0, 50.0, invalid=1, reasons=["noisy: cv 0.5"]),
        cell("short", "ipex", "spr", 10.0, 15.0, first=2, results=0, n=None, mean_ms=None,
             states={"queued": 1}),
    ]  # fmt: skip
    (choice,) = recommend(SampledReports(cells), ["b"], "mean").choices
    assert choice.best is None and choice.verdict == "nothing qualifies"
    assert choice.why is not None
    assert choice.why == "noisy: cv 0.5 (pytorch@icelake); no result yet (queued 1) (ipex@spr)"
    _, body, notes = recommend_grid(recommend(SampledReports(cells), ["b"], "mean"))
    assert body[0][-1] == f"nothing qualifies: {choice.why}"
    left_out = "left out: noisy: cv 0.5 — 1 cell: m · short · batch 1 · pytorch@icelake"
    assert left_out in notes
    js = choice.to_json()
    assert js["best"] is None and js["why"] == choice.why and js["verdict"] == "nothing qualifies"


def test_throughput_takes_the_aggregate_of_a_throughput_mode_cell() -> None:
    one = _cell(1, "pytorch", "icelake", 10.0, 12.0, throughput=100.0)
    four = _cell(2, "pytorch", "icelake", 20.0, 25.0, throughput=180.0, instances=4,
                 cores_per_instance=1)  # fmt: skip
    samples = {1: _noisy(10.0, 1), 2: _noisy(20.0, 2)}
    (choice,) = recommend(SampledReports([one, four], samples), ["b"], "throughput").choices
    assert choice.best is not None and choice.best.column == "pytorch@icelake{4x1}"
    assert choice.best.value == 180.0 and choice.margin is not None
    assert choice.margin.margin == pytest.approx(0.8)
    # Per sequence of the whole worker, 20/4 = 5 ms against 10 ms: significant.
    assert choice.margin.significant
    (latency,) = recommend(SampledReports([one, four], samples), ["b"], "mean").choices
    assert latency.best is not None and latency.best.column == "pytorch@icelake"


def test_cost_needs_prices_and_picks_the_cheapest() -> None:
    def fresh() -> list[Cell]:  # the report prices its cells in place: new ones each time
        return [_cell(1, "pytorch", "icelake", 30.0, 40.0), _cell(2, "ipex", "spr", 15.0, 20.0)]

    with pytest.raises(ReportError, match=r"none of icelake, spr has one.*farm pools price"):
        recommend(SampledReports(fresh()), ["b"], "cost")
    samples = {1: _noisy(30.0, 1), 2: _noisy(15.0, 2)}
    prices = {"icelake": (1.0, "USD"), "spr": (4.0, "USD")}  # spr twice as fast, 4× the price
    rec = recommend(SampledReports(fresh(), samples, prices=prices), ["b"], "cost")
    (choice,) = rec.choices
    assert choice.best is not None and choice.best.pool == "icelake"
    assert choice.best.value == pytest.approx(1.0 / 3600 * 0.030 * 1e6)  # report's cost
    assert choice.margin is not None and choice.margin.margin == pytest.approx(1.0)
    assert choice.margin.significant
    assert "$8.333" in render_recommend_markdown(rec)
    half = SampledReports(fresh(), samples, prices={"spr": (4.0, "USD")})
    rec = recommend(half, ["b"], "cost")
    (choice,) = rec.choices
    assert choice.best is not None and choice.best.pool == "spr"
    assert rec.unpriced == ("icelake",)
    assert choice.excluded[0].reasons == (
        "no price for pool icelake: `farm pools price icelake PRICE`",
    )


def test_forward_and_pipeline_cells_are_recommended_apart() -> None:
    cells = [_cell(1, "pytorch", "icelake", 30.0, 40.0),
             _cell(2, "openvino", "spr", 5.0, 6.0, measure="forward"),
             _cell(3, "openvino", "spr", 20.0, 30.0)]  # fmt: skip
    choices = recommend(SampledReports(cells), ["b"], "mean").choices
    assert [(c.measure, c.best.column if c.best else None) for c in choices] == [
        ("pipeline", "openvino@spr"), ("forward", "openvino@spr [forward]")]  # fmt: skip


def test_unknown_objective_and_json_keys() -> None:
    cells = [_cell(1, "pytorch", "icelake", 30.0, 40.0)]
    with pytest.raises(ReportError, match="unknown objective 'fast'; choose one of mean, p99"):
        recommend(SampledReports(cells), ["b"], "fast")
    js = recommend(SampledReports(cells), ["b"], "p99").to_json()
    assert js["objective"] == "p99" and js["unit"] == "ms" and js["campaigns"] == [
        {"id": 1, "name": "blog"}]  # fmt: skip
    (row,) = js["choices"]
    assert row["best"]["value"] == 40.0 and row["best"]["jobs"] == [1]
    assert row["verdict"] == "only candidate" and row["margin"] is None
