"""Reports of text generation (PostgreSQL and SQLite): a generation cell never pools with a
classification one nor with another new_tokens; several jobs of one cell get TTFT / TPOT /
tokens/s from their pooled per-call samples; classification rows keep exactly their keys."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farm.app.reports import job_rows, report
from farm.db.reports import SqlReports
from farm.db.session import session_factory, transaction
from farm.generation import GENERATION_KEYS, generation_stats
from farm.reports.exports import report_tidy_rows
from farm.reports.selectors import Filters
from farm.stats import NS_PER_MS, encode_samples
from tests.support import reportdata

pytestmark = pytest.mark.integration


@pytest.fixture(params=["pg_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    from farm.db.migrate import upgrade

    found = str(request.getfixturevalue(request.param))
    upgrade(found)
    return found


def _calls(mean: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e2e = (rng.normal(mean, mean * 0.02, 50) * NS_PER_MS).astype(np.int64)
    return e2e, e2e // 4


def _campaign(url: str, name: str, seed: int) -> int:
    """gpt2 on input 'short': generation with 4 and 16 new tokens, and classification."""
    from farm.db import repo
    from farm.db.models import Job, Result

    base = reportdata.spec("short", "pytorch", "icelake")
    specs = [
        base.model_copy(update={"task": "text-generation", "new_tokens": n}) for n in (4, 16)
    ] + [base]
    with transaction(session_factory(url)) as s:
        campaign = repo.create_campaign(s, name, {"name": name}, specs)
        for i, (job, spec) in enumerate(zip(campaign.jobs, specs, strict=True)):
            e2e, ttft = _calls(10.0 * (i + 1), seed + i)
            extra: dict[str, Any] = {}
            if spec.new_tokens:
                extra = {"ttft_samples": encode_samples(ttft),
                         **generation_stats(e2e, ttft, 1, spec.new_tokens)}  # fmt: skip
            fields = reportdata.result(list(e2e / NS_PER_MS), 18, **extra)
            s.add(Result(job_id=job.id, **fields))
            s.get(Job, job.id).state = "succeeded"  # type: ignore[union-attr]
        return campaign.id


def test_generation_cells_pool_their_own_samples(url: str) -> None:
    _campaign(url, "one", 0)
    _campaign(url, "two", 100)
    with SqlReports(session_factory(url)) as queries:
        rep = report(queries, ["one", "two"])
        rows = job_rows(queries, ["one", "two"], Filters())
    cells = {(c.task, c.new_tokens): c for c in rep.cells}
    assert sorted(cells) == [("text-classification", 0), ("text-generation", 4),
                             ("text-generation", 16)]  # fmt: skip
    assert all(c.results == 2 for c in cells.values())
    for i, n in enumerate((4, 16)):
        e2e = np.concatenate([_calls(10.0 * (i + 1), seed + i)[0] for seed in (0, 100)])
        expected = generation_stats(e2e, e2e // 4, 1, n)
        cell = cells["text-generation", n]
        assert cell.input == f"short +{n} new"
        for key in GENERATION_KEYS:
            assert getattr(cell, key) == pytest.approx(expected[key]), key
    assert cells["text-classification", 0].ttft_ms is None
    # A table per task, each with its own metrics (the generation jobs came first).
    generation_table, classification_table = rep.tables
    assert generation_table.metrics[:2] == ("mean", "p99") and "ttft" in generation_table.metrics
    assert classification_table.metrics == ("mean", "p99")
    classification = [r for r in rows if "task" not in r]
    assert len(classification) == 2 and not set(GENERATION_KEYS) & set(classification[0])
    generation = [r for r in rows if "task" in r]
    assert {r["new_tokens"] for r in generation} == {4, 16}
    assert all(isinstance(r["tpot_p99_ms"], float) for r in generation)
    tidy = {(r.get("task"), r.get("new_tokens")): r for r in report_tidy_rows(rep)}
    assert tidy["text-generation", 16]["ttft_ms"] == cells["text-generation", 16].ttft_ms
    assert "ttft_ms" not in tidy[None, None]


def test_a_classification_report_keeps_its_default_metrics(url: str) -> None:
    reportdata.add_campaign(url, "cls", {("short", "pytorch", "icelake"): [10.0, 11.0, 12.0]})
    with SqlReports(session_factory(url)) as queries:
        assert report(queries, ["cls"]).table.metrics == ("mean", "p99")
