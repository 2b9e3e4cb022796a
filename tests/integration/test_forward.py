"""Measure `forward` end to end: a real `farm worker` times the model call alone, and the
reports (PostgreSQL and SQLite) keep forward and pipeline cells apart: a column each, a
JSON key, a filter, a selector, and no compare match across them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from farm.app.reports import compare, job_rows, report
from farm.db.reports import SqlReports
from farm.db.session import session_factory, transaction
from farm.reports.cells import ReportError, column_label
from farm.reports.selectors import Filters
from tests.support import reportdata
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, wait_for, write_matrix
from tests.support.stacks import CALLS, check_forward, make_job

pytestmark = pytest.mark.integration


@pytest.fixture(params=["pg_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def _samples(mean: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.round(rng.normal(mean, mean * 0.02, 200), 3))


def _campaign(url: str, name: str, means: dict[tuple[str, str], float], seed: int) -> None:
    """(backend, measure) → mean ms of the short input on one pool per backend."""
    from farm.db.models import Job, Result

    pools = {"pytorch": "icelake", "ipex": "spr"}
    specs = [
        reportdata.spec("short", backend, pools[backend]).model_copy(update={"measure": m})
        for backend, m in means
    ]
    with transaction(session_factory(url)) as s:
        from farm.db import repo

        campaign = repo.create_campaign(s, name, {"name": name}, specs)
        for i, (job, mean) in enumerate(zip(campaign.jobs, means.values(), strict=True)):
            s.add(Result(job_id=job.id, **reportdata.result(_samples(mean, seed + i), 18)))
            s.get(Job, job.id).state = "succeeded"  # type: ignore[union-attr]


def _with(url: str, fn: Any, *args: Any, **kw: Any) -> Any:
    with SqlReports(session_factory(url)) as queries:
        return fn(queries, *args, **kw)


def test_reports_keep_forward_and_pipeline_apart(url: str) -> None:
    from farm.db.migrate import upgrade

    upgrade(url)
    means = {("pytorch", "pipeline"): 30.0, ("pytorch", "forward"): 20.0,
             ("ipex", "pipeline"): 15.0, ("ipex", "forward"): 5.0}  # fmt: skip
    _campaign(url, "before", means, seed=0)
    _campaign(url, "after", {k: v * 1.2 if k[1] == "forward" else v for k, v in means.items()}, 9)

    table = _with(url, report, ["before"]).table
    assert [column_label(c) for c in table.columns] == [
        "pytorch@icelake", "pytorch@icelake [forward]",
        "ipex(dtype=bf16)@spr", "ipex(dtype=bf16)@spr [forward]",
    ]  # fmt: skip
    # Reported together, the campaigns pool per measure, never a forward with a pipeline job.
    both = _with(url, report, ["before", "after"]).table
    assert len(both.columns) == 4 and all(c.results == 2 for c in both.cells.values())
    forward_only = _with(url, report, ["before"], Filters(measures=("forward",))).table
    assert [c[6] for c in forward_only.columns] == ["forward", "forward"]
    baseline = {"backend": "pytorch", "measure": "forward"}
    speed = _with(url, report, ["before"], baseline=baseline).table
    ipex_forward = next(c for c in speed.columns if c[0] == "ipex" and c[6] == "forward")
    assert speed.speedup(speed.rows[0], ipex_forward, "mean") == pytest.approx(4.0, rel=0.02)

    rows = _with(url, job_rows, ["before"], Filters())
    assert sorted(r["measure"] for r in rows) == ["forward", "forward", "pipeline", "pipeline"]

    result = _with(url, compare, "before", "after")
    assert {(p.a.backend, p.a.measure, p.b.measure) for p in result.pairs} == {
        ("pytorch", "pipeline", "pipeline"), ("pytorch", "forward", "forward"),
        ("ipex", "pipeline", "pipeline"), ("ipex", "forward", "forward"),
    }  # fmt: skip
    verdicts = {(p.a.backend, p.a.measure): p.verdict for p in result.pairs}
    assert verdicts[("ipex", "forward")] == "slower" and verdicts[("ipex", "pipeline")] != "slower"
    # Two backends' forward cells of one campaign: selectors name the same measure.
    a, b = {"backend": "pytorch", "pool": "icelake"}, {"backend": "ipex", "pool": "spr"}
    (pair,) = _with(url, compare, "before", None, {**a, "measure": "forward"},
                    {**b, "measure": "forward"}).pairs  # fmt: skip
    assert (pair.a.measure, pair.b.measure, pair.verdict) == ("forward", "forward", "faster")
    # One side names forward, the other nothing: matched on the measure all the same.
    pairs = _with(url, compare, "before", None, a, {**b, "measure": "forward"}).pairs
    assert [(p.a.measure, p.b.measure) for p in pairs] == [("forward", "forward")]
    with pytest.raises(ReportError, match="different measures"):
        _with(url, compare, "before", None, {"measure": "pipeline"}, {"measure": "forward"})


def test_a_worker_times_the_forward_and_json_says_so(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(tmp_path / "m.yaml", measure=["pipeline", "forward"], pools=["fw"])
    worker = WorkerProcess("fw", "w-fw", env, tmp_path / "worker.log")
    try:
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        states = lambda: job_states(migrated_pg, campaign).values()  # noqa: E731
        wait_for(lambda: all(s in ("succeeded", "failed") for _, s, _ in states()), 180)
    finally:
        worker.stop()
    assert [s for _, s, _ in states()] == ["succeeded"] * 4, list(states())
    out = farm("report", str(campaign), "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert sorted((r["batch_size"], r["measure"]) for r in rows) == [
        (1, "forward"), (1, "pipeline"), (2, "forward"), (2, "pipeline"),
    ]  # fmt: skip
    assert all(r["n"] == 5 and r["output_check"]["status"] == "checked" for r in rows)
    engine = create_engine(migrated_pg)
    with engine.connect() as conn:
        environments = conn.execute(
            text("SELECT j.measure, r.environment FROM result r JOIN job j ON j.id = r.job_id "
                 "WHERE j.campaign_id = :c"), {"c": campaign},
        ).all()  # fmt: skip
    engine.dispose()
    for measure, environment in environments:
        env_json = environment if isinstance(environment, dict) else json.loads(environment)
        assert env_json["measure"] == measure
        assert env_json["timed"].startswith("model forward" if measure == "forward" else "pipeline")
    table = farm("report", str(campaign), "--format", "markdown", env=env)
    assert table.returncode == 0, table.stderr
    assert "pytorch(dtype=fp32)@fw [forward] mean" in table.stdout
    assert "pytorch(dtype=fp32)@fw mean" in table.stdout
    only = farm("report", str(campaign), "--measure", "forward", "--format", "json", env=env)
    assert {r["measure"] for r in json.loads(only.stdout)} == {"forward"}


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize(("batch", "batching"), CALLS)
def test_pytorch_forward_runs_the_model_calls_alone(batch: int, batching: str, dtype: str) -> None:
    """The dev venv's model backend (the stacks' are in tests/stacks/test_runners.py)."""
    from farm.workers.backends import get_backend

    spec = make_job("pytorch", {"dtype": dtype}, batch, batching)
    runner = get_backend("pytorch").load(spec)
    eager = runner.reference_logits(spec)  # fp32 eager through the pipeline, one row per text
    check_forward(runner, spec, lambda _: eager, dtype)
