"""Report and compare layers on PostgreSQL and SQLite, against hand-computed values.

The fixtures (tests/support/reportdata.py) write jobs and results with known raw samples; every
expected number below is worked out from those samples by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farm.app.reports import compare, report
from farm.db.reports import SqlReports
from farm.db.reports.jobs import REPORT_KEYS, report_rows, resolve_campaigns
from farm.db.session import session_factory, transaction
from farm.errors import FarmError
from farm.reports.cells import ReportError
from farm.reports.exports import tidy_rows
from farm.reports.labels import column_label
from farm.reports.selectors import Filters
from tests.support import reportdata

pytestmark = pytest.mark.integration


@pytest.fixture(params=["pg_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def blog(url: str) -> tuple[str, int, int]:
    first, repeat = reportdata.seed_blog(url)
    return url, first, repeat


def _report(url: str, *refs: str, **kw: Any) -> Any:
    with SqlReports(session_factory(url)) as queries:
        return report(queries, list(refs), **kw)


def _by(rep: Any) -> dict[tuple[str, str], Any]:
    return {(c.input, c.backend): c for c in rep.table.cells.values()}


def test_one_job_cells_show_the_stored_summary(blog: tuple[str, int, int]) -> None:
    url, _, _ = blog
    rep = _report(url, "blog")
    cells = _by(rep)
    assert len(cells) == 4
    short = cells[("short", "pytorch")]
    assert (short.mean_ms, short.p50_ms, short.p99_ms) == pytest.approx((30.0, 30.0, 49.6))
    assert (short.n, short.tokens, short.jobs, short.pooled) == (5, 18, 1, False)
    assert short.throughput == pytest.approx(1000 / 30)
    assert cells[("long", "ipex")].p99_ms == pytest.approx(79.6)
    assert cells[("long", "ipex")].backend_options == {"dtype": "bf16"}
    assert [r[1] for r in rep.table.rows] == ["short", "long"]
    assert rep.table.random_weights


def test_several_jobs_pool_their_raw_samples(blog: tuple[str, int, int]) -> None:
    url, first, repeat = blog
    rep = _report(url, str(first), str(repeat))
    short = _by(rep)[("short", "pytorch")]
    pooled = np.array([10, 20, 30, 40, 50, 60, 70], dtype=float)
    assert short.pooled and short.jobs == 2 and short.n == 7
    assert short.mean_ms == pytest.approx(40.0)
    assert short.p99_ms == pytest.approx(np.percentile(pooled, 99)) == pytest.approx(69.4)
    assert short.p99_ms != pytest.approx((49.6 + 69.9) / 2)  # never averaged percentiles
    assert short.p50_ms == pytest.approx(40.0)
    assert short.std_ms == pytest.approx(pooled.std(ddof=1))
    assert (short.min_ms, short.max_ms) == (10.0, 70.0)
    assert not _by(rep)[("long", "pytorch")].pooled  # still one job: its stored summary


def test_baseline_speedups_and_cost(blog: tuple[str, int, int]) -> None:
    url, _, _ = blog
    from farm.db.pools import set_price

    with transaction(session_factory(url)) as s:
        set_price(s, "spr", 4.46)
    rep = _report(url, "blog", baseline={"backend": "pytorch", "pool": "icelake"}, cost=True)
    rows = {(r["input"], r["backend"]): r for r in tidy_rows(rep.table, cost=True)}
    assert rows[("short", "ipex")]["speedup_mean"] == pytest.approx(2.0)
    assert rows[("long", "ipex")]["speedup_p99"] == pytest.approx(139.6 / 79.6)
    assert rows[("short", "ipex")]["cost_per_million"] == pytest.approx(4.46 / 3600 * 0.015 * 1e6)
    assert rows[("short", "pytorch")]["cost_per_million"] is None
    assert rep.unpriced == ["icelake"]


def test_baseline_matching_nothing_is_an_error(blog: tuple[str, int, int]) -> None:
    url, _, _ = blog
    with pytest.raises(ReportError, match="matches no column"):
        _report(url, "blog", baseline={"backend": "openvino"})


def test_filters_and_their_message(blog: tuple[str, int, int]) -> None:
    url, _, _ = blog
    rep = _report(url, "blog", filters=Filters(inputs=("long",), pools=("spr",)))
    assert [(c.input, c.pool) for c in rep.table.cells.values()] == [("long", "spr")]
    with pytest.raises(ReportError, match="no job of campaign .* matches --model nope"):
        _report(url, "blog", filters=Filters(models=("nope",)))


def test_empty_and_unknown_campaigns(url: str) -> None:
    from farm.db import repo
    from farm.db.migrate import upgrade

    upgrade(url)
    with transaction(session_factory(url)) as s:
        repo.create_campaign(s, "empty", {}, [])
    with pytest.raises(FarmError, match="has no jobs"):
        _report(url, "empty")
    with pytest.raises(FarmError, match="unknown campaign 'nope'"):
        _report(url, "nope")


def test_pending_jobs_and_invalid_results_are_flagged(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(
        url,
        "flags",
        {("short", "pytorch", "icelake"): [1, 2, 3]},
        extra={("short", "pytorch", "icelake"): {"verdict": "invalid", "reasons": ["cv 0.5"]}},
        pending=[("long", "pytorch", "icelake")],
    )
    cells = _by(_report(url, "flags"))
    short, long = cells[("short", "pytorch")], cells[("long", "pytorch")]
    assert short.verdict == "invalid" and short.reasons == ["cv 0.5"]
    assert long.results == 0 and long.states == {"queued": 1} and long.mean_ms is None


def test_per_job_rows_keep_the_json_contract(blog: tuple[str, int, int]) -> None:
    url, first, _ = blog
    with transaction(session_factory(url)) as s:
        rows = report_rows(s, [first])
    assert len(rows) == 4
    assert all(set(REPORT_KEYS) <= set(r) for r in rows)
    first_row = rows[0]
    assert (first_row["input"], first_row["backend"], first_row["p99_ms"]) == (
        "short",
        "pytorch",
        pytest.approx(49.6),
    )
    assert first_row["verdict"] == "valid" and first_row["weights_sha256"] == "abc123"


# --- compare ---------------------------------------------------------------------------


def _noisy(mean: float, n: int = 400, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.round(rng.normal(mean, mean * 0.02, n), 3))


def _compare(url: str, *args: Any, **kw: Any) -> Any:
    with SqlReports(session_factory(url)) as queries:
        return compare(queries, *args, **kw)


def test_compare_two_campaigns_with_verdicts(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    cells_a = {
        ("short", "pytorch", "icelake"): _noisy(10.0, seed=1),
        ("long", "pytorch", "icelake"): _noisy(50.0, seed=2),
        ("short", "ipex", "spr"): _noisy(5.0, seed=3),
    }
    cells_b = {
        ("short", "pytorch", "icelake"): _noisy(12.0, seed=4),  # 20 % slower
        ("long", "pytorch", "icelake"): _noisy(40.0, seed=5),  # 20 % faster
        ("short", "ipex", "spr"): _noisy(5.0, seed=6),  # the same
    }
    reportdata.add_campaign(url, "before", cells_a)
    reportdata.add_campaign(url, "after", cells_b)
    result = _compare(url, "before", "after")
    verdicts = {(p.a.input, p.a.backend): p.verdict for p in result.pairs}
    assert verdicts == {
        ("short", "pytorch"): "slower",
        ("long", "pytorch"): "faster",
        ("short", "ipex"): "no significant difference",
    }
    slower = next(p for p in result.pairs if p.verdict == "slower")
    assert slower.ratio == pytest.approx(
        np.mean(cells_b[("short", "pytorch", "icelake")])
        / np.mean(cells_a[("short", "pytorch", "icelake")])
    )
    assert [p.verdict for p in result.regressions] == ["slower"]
    assert result.matched == 3 and result.only_a == result.only_b == 0


def test_compare_two_pools_of_one_campaign_and_calibrated_noise(url: str) -> None:
    from farm.db.migrate import upgrade
    from farm.db.models import Calibration

    upgrade(url)
    reportdata.add_campaign(
        url,
        "pools",
        {("short", "pytorch", "icelake"): _noisy(10.0, seed=1),
         ("short", "pytorch", "zen4"): _noisy(10.8, seed=2)},  # fmt: skip
    )
    result = _compare(url, "pools", None, {"pool": "icelake"}, {"pool": "zen4"})
    (pair,) = result.pairs
    assert pair.threshold == 0.03 and pair.verdict == "slower"
    with transaction(session_factory(url)) as s:  # a noisy host: its floor decides
        s.add(Calibration(pool="zen4", worker="w", host="h", mean_noise=0.1, p99_noise=0.2,
                          jobs=[]))  # fmt: skip
    (pair,) = _compare(url, "pools", None, {"pool": "icelake"}, {"pool": "zen4"}).pairs
    assert pair.threshold == 0.1 and pair.verdict == "no significant difference"
    (pair,) = _compare(url, "pools", None, {"pool": "icelake"}, {"pool": "zen4"},
                       metric="p99").pairs  # fmt: skip
    assert pair.threshold == 0.2


def test_compare_matches_on_identity_and_explains_a_miss(blog: tuple[str, int, int]) -> None:
    url, _, _ = blog
    with pytest.raises(ReportError, match="differ in backend, options.*name backend"):
        _compare(url, "blog", None, {"pool": "icelake"}, {"pool": "spr"})
    with pytest.raises(ReportError, match="compared with itself"):
        _compare(url, "blog", "blog")
    result = _compare(
        url, "blog", None, {"backend": "pytorch", "pool": "icelake"}, {"backend": "ipex"}
    )
    assert {p.a.input: p.ratio for p in result.pairs} == {
        "short": pytest.approx(0.5),
        "long": pytest.approx(0.5),
    }


def test_compare_tests_only_the_cells_it_shows(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    a = {("short", "pytorch", "icelake"): _noisy(10.0, seed=1),
         ("long", "pytorch", "icelake"): _noisy(50.0, seed=2)}  # fmt: skip
    b = {("short", "pytorch", "icelake"): _noisy(13.0, seed=3),  # +30 %: shown
         ("long", "pytorch", "icelake"): _noisy(55.0, seed=4)}  # +10 %: hidden  # fmt: skip
    reportdata.add_campaign(url, "a", a)
    reportdata.add_campaign(url, "b", b)
    result = _compare(url, "a", "b", limit=1)
    assert [p.a.input for p in result.pairs] == ["short"]
    assert result.hidden == 1 and result.beyond == 1
    assert len(result.regressions) == 1  # the hidden one was not tested
    gated = _compare(url, "a", "b", limit=1, fail_on_regression=True)
    assert len(gated.regressions) == 2  # with the gate, every possible regression is


def _add_repeats(url: str, name: str, cells: dict[tuple[str, str, str], list[list[float]]]) -> int:
    """A campaign whose cells are measured by several jobs (repeats), one sample list each."""
    from farm.db import repo
    from farm.db.models import Job, Result

    keys = [(key, r) for key, runs in cells.items() for r in range(len(runs))]
    specs = [reportdata.spec(*key).model_copy(update={"repeat": r}) for key, r in keys]
    with transaction(session_factory(url)) as s:
        campaign = repo.create_campaign(s, name, {"name": name}, specs)
        for (key, r), job in zip(keys, campaign.jobs, strict=True):
            s.add(Result(job_id=job.id, **reportdata.result(cells[key][r], 18)))
            s.get(Job, job.id).state = "succeeded"  # type: ignore[union-attr]
        return campaign.id


def test_compare_pools_multi_job_cells_and_counts_the_unmatched(url: str) -> None:
    """Repeats on each side are pooled before testing; cells on one side only are counted."""
    from farm.db.migrate import upgrade

    upgrade(url)
    a_runs = [_noisy(10.0, seed=1), _noisy(10.0, seed=2)]
    b_runs = [_noisy(12.0, seed=3), _noisy(12.0, seed=4), _noisy(12.0, seed=5)]
    _add_repeats(url, "a", {("short", "pytorch", "icelake"): a_runs,
                            ("long", "pytorch", "icelake"): [_noisy(50.0, seed=6)]})  # fmt: skip
    _add_repeats(url, "b", {("short", "pytorch", "icelake"): b_runs,
                            ("short", "ipex", "spr"): [_noisy(5.0, seed=7)]})  # fmt: skip
    result = _compare(url, "a", "b", metric="p50")
    (pair,) = result.pairs
    assert (pair.a.results, pair.b.results) == (2, 3)
    assert pair.a.pooled and pair.b.pooled and pair.a.n == 800 and pair.b.n == 1200
    assert pair.value_a == pytest.approx(np.percentile(np.concatenate(a_runs), 50))
    assert pair.value_b == pytest.approx(np.percentile(np.concatenate(b_runs), 50))
    assert pair.verdict == "slower"
    assert (result.matched, result.only_a, result.only_b) == (1, 1, 1)


def test_compare_by_backend_option_and_an_ambiguous_side(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(
        url,
        "mixed",
        {("short", "ipex", "spr"): _noisy(10.0, seed=1),  # ipex carries dtype=bf16
         ("short", "pytorch", "spr"): _noisy(20.0, seed=2)},  # fmt: skip
    )
    (pair,) = _compare(url, "mixed", None, {"backend": "pytorch"}, {"dtype": "bf16"}).pairs
    assert (pair.a.backend, pair.b.backend) == ("pytorch", "ipex")
    assert pair.verdict == "faster" and pair.ratio == pytest.approx(0.5, rel=0.02)
    # Varying the pool alone leaves two backends in each side's cell: ambiguous, said so.
    reportdata.add_campaign(
        url,
        "two-pools",
        {("short", "ipex", "spr"): _noisy(10.0, seed=1),
         ("short", "pytorch", "spr"): _noisy(20.0, seed=2),
         ("short", "ipex", "icelake"): _noisy(10.0, seed=3),
         ("short", "pytorch", "icelake"): _noisy(20.0, seed=4)},  # fmt: skip
    )
    result = _compare(url, "two-pools", None, {"pool": "spr"}, {"pool": "icelake"})
    assert len(result.pairs) == 2  # matched per backend: nothing ambiguous
    with pytest.raises(ReportError, match="side A has several cells .* differ in backend"):
        _compare(url, "two-pools", None, {"pool": "spr"}, {"backend": "ipex"})


def test_report_and_compare_read_batching_allocator_and_mode(url: str) -> None:
    """The fields copied out of the spec (migration 0006) split rows, columns and matches."""
    from farm.db import repo
    from farm.db.migrate import upgrade
    from farm.db.models import Job, Result
    from farm.protocol import Protocol

    upgrade(url)
    base = reportdata.spec("short", "pytorch", "icelake", batch=8)
    variants = {
        "plain": base,
        "batched": base.model_copy(update={"batching": "batched"}),
        "tcmalloc": base.model_copy(update={"allocator": "tcmalloc"}),
    }
    adaptive = base.model_copy(update={"protocol": Protocol(target_ci=0.02)})
    for name, specs in (("fixed", list(variants.values())), ("adaptive", [adaptive])):
        with transaction(session_factory(url)) as s:
            campaign = repo.create_campaign(s, name, {"name": name}, specs)
            for job in campaign.jobs:
                s.add(Result(job_id=job.id, **reportdata.result(_noisy(10.0, n=50), 18)))
                s.get(Job, job.id).state = "succeeded"  # type: ignore[union-attr]
    table = _report(url, "fixed").table
    assert sorted(r[3] for r in table.rows) == ["batched", "sequential"]
    assert sorted(column_label(c) for c in table.columns) == [
        "pytorch@icelake", "pytorch@icelake+tcmalloc",
    ]  # fmt: skip
    with pytest.raises(ReportError, match="differ in mode"):
        _compare(url, "fixed", "adaptive")
    (pair,) = _compare(url, "fixed", "adaptive", {"mode": "fixed"}, {"mode": "adaptive"}).pairs
    assert (pair.a.batching, pair.a.allocator, pair.b.mode) == ("sequential", "default", "adaptive")


def test_option_sets_stored_apart_but_shown_alike_make_one_cell(url: str) -> None:
    """{"threads": 1} and {"threads": "1"} both print threads=1: one (pooled) cell, not two."""
    from farm.db import repo
    from farm.db.migrate import upgrade
    from farm.db.models import Result

    upgrade(url)
    base = reportdata.spec("short", "pytorch", "icelake")
    for name, threads, samples in (("int", 1, [10.0, 20.0]), ("str", "1", [30.0, 40.0])):
        spec = base.model_copy(update={"backend_options": {"threads": threads}})
        with transaction(session_factory(url)) as s:
            (job,) = repo.create_campaign(s, name, {"name": name}, [spec]).jobs
            s.add(Result(job_id=job.id, **reportdata.result(samples, 18)))
            job.state = "succeeded"
    (cell,) = _report(url, "int", "str").table.cells.values()
    assert (cell.results, cell.pooled, cell.mean_ms) == (2, True, pytest.approx(25.0))


# --- software stacks ---------------------------------------------------------------------

MAIN_ENV = {"host": {"stack": "main", "stack_lock": "852501eeb9b78ddc"}}
IPEX_ENV = {"host": {"stack": "ipex", "stack_lock": "26833b0899677687"}}
ZEN4 = ("short", "pytorch", "zen4")


def test_results_of_two_stacks_are_two_columns_not_one_pooled_cell(url: str) -> None:
    """One campaign run in the main stack, one in the ipex venv (its pytorch jobs name main,
    their home): reported together, two columns labelled by stack, never one pooled cell."""
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(url, "in-main", {ZEN4: [10, 20, 30]},
                            extra={ZEN4: {"environment": MAIN_ENV}})  # fmt: skip
    reportdata.add_campaign(url, "in-ipex", {ZEN4: [40, 50, 60]},
                            extra={ZEN4: {"environment": IPEX_ENV}})  # fmt: skip
    table = _report(url, "in-main", "in-ipex").table
    assert len(table.columns) == 2, [c.results for c in table.cells.values()]
    assert [table.label(c) for c in table.columns] == ["pytorch@zen4[main]", "pytorch@zen4[ipex]"]
    main, ipex = (table.cell(table.rows[0], c) for c in table.columns)
    assert main is not None and ipex is not None
    assert (main.results, main.mean_ms, main.stack) == (1, 20.0, "main@852501eeb9b78ddc")
    assert (ipex.results, ipex.mean_ms, ipex.stack) == (1, 50.0, "ipex@26833b0899677687")
    only_ipex = _report(url, "in-main", "in-ipex", filters=Filters(stacks=("ipex",))).table
    assert [only_ipex.label(c) for c in only_ipex.columns] == ["pytorch@zen4"]
    with transaction(session_factory(url)) as s:
        rows = report_rows(s, [cid for cid, _ in resolve_campaigns(s, ["in-ipex"])])
    assert [r["stack"] for r in rows] == ["ipex@26833b0899677687"]


def test_one_stack_keeps_the_headers_and_pending_jobs_join_its_cell(url: str) -> None:
    """The fixture's blog campaign (no fingerprint: the job's stack) keeps its labels; a
    queued job of a measured cell stays in that cell's column."""
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(url, "half", {ZEN4: [10, 20, 30]},
                            extra={ZEN4: {"environment": MAIN_ENV}},
                            pending=[("long", "pytorch", "zen4")])  # fmt: skip
    reportdata.add_campaign(url, "again", {}, pending=[ZEN4])
    table = _report(url, "half", "again").table
    assert [table.label(c) for c in table.columns] == ["pytorch@zen4"]
    short = table.cell(table.rows[0], table.columns[0])
    assert short is not None and (short.jobs, short.results, short.states) == (2, 1, {"queued": 1})
    reportdata.seed_blog(url)
    blog = _report(url, "blog").table
    assert [blog.label(c) for c in blog.columns] == ["pytorch@icelake", "ipex(dtype=bf16)@spr"]
    assert {c.stack for c in blog.cells.values()} == {"main"}


def test_compare_matches_across_stacks_only_when_the_selectors_vary_the_stack(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    reportdata.add_campaign(url, "m", {ZEN4: _noisy(10.0, seed=1)},
                            extra={ZEN4: {"environment": MAIN_ENV}})  # fmt: skip
    reportdata.add_campaign(url, "i", {ZEN4: _noisy(8.0, seed=2)},
                            extra={ZEN4: {"environment": IPEX_ENV}})  # fmt: skip
    with pytest.raises(ReportError, match="differ in stack: name stack in --a and --b"):
        _compare(url, "m", "i")
    (pair,) = _compare(url, "m", "i", {"stack": "main"}, {"stack": "ipex"}).pairs
    assert (pair.a.stack, pair.b.stack, pair.verdict) == (
        "main@852501eeb9b78ddc", "ipex@26833b0899677687", "faster",
    )  # fmt: skip
    reportdata.add_campaign(url, "both", {ZEN4: _noisy(10.0, seed=3)},
                            extra={ZEN4: {"environment": MAIN_ENV}})  # fmt: skip
    (pair,) = _compare(url, "m", "both").pairs  # same stack and lock: matched as before
    assert pair.b.stack == "main@852501eeb9b78ddc"
