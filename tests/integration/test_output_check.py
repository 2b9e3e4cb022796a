"""The output check, through `execute_job` and the real job store: every row of a batch is
checked against an fp32 eager reference made for that very call shape, the timed callable's
own labels and scores are checked, and a broken backend's result is stored invalid.

The broken backends are test-only runners handed to the worker in-process (the product has
no switch that corrupts output): one built on the shared pipeline runner whose forward
perturbs row 5 of a batch, one the `pytorch` runner whose timed call returns the wrong labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.migrate import upgrade
from farm.db.models import Result
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec
from farm.protocol import Protocol
from farm.settings import Settings
from farm.workers import execute
from farm.workers.backends.base import Backend, Runner
from farm.workers.backends.pytorch import PipelineRunner
from farm.workers.backends.runner import SwappedPipelineRunner
from farm.workers.models import LoadedModel
from tests.support.stacks import make_job

pytestmark = pytest.mark.integration

QUICK = Protocol(warmup=2, iterations=3)
OTHER_LABEL = {"NEGATIVE": "POSITIVE", "POSITIVE": "NEGATIVE"}


class RowFiveRunner(SwappedPipelineRunner):
    """A broken optimisation: fp32 eager, except that row 5 of a batched forward is off."""

    backend_name = "broken-row-five"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        return {"broken": "row 5 of a batch perturbed by 1.0"}

    def forward(self, kwargs: dict[str, Any]) -> Any:
        """Both logits of row 5 up by 1: softmax, hence the timed call's labels and scores,
        cannot see it; only the logits comparison can."""
        out = self.original(**kwargs)
        if out["logits"].shape[0] > 5:
            logits = out["logits"].clone()
            logits[5] += 1.0
            out["logits"] = logits
        return out


class FlippedLabelRunner(PipelineRunner):
    """A broken post-processing: the forward is right, the timed call's labels are not."""

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        call = super().bind(spec)

        def flipped() -> Any:
            return [{**r, "label": OTHER_LABEL[r["label"]]} for r in call()]

        return flipped


def broken(runner: type[Runner]) -> Backend:
    class Broken(Backend):
        name = "pytorch"

        def load(self, spec: JobSpec) -> Runner:
            return runner(spec)  # type: ignore[call-arg]

    return Broken()


@pytest.fixture(params=["migrated_pg", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = str(request.getfixturevalue(request.param))
    upgrade(url)
    yield url


def run_jobs(url: str, specs: list[JobSpec]) -> list[Result]:
    """Each job through execute_job in order, in one worker context (so a runner and its
    references are reused from job to job, as a worker does); their stored results."""
    factory = session_factory(url)
    with transaction(factory) as s:
        ids = [job.id for job in repo.create_campaign(s, "c", {}, specs).jobs]
    store = DbJobStore(factory)
    ctx = execute.WorkerContext(name="w", host="h", fingerprint={}, settings=Settings(), threads=1)
    for job_id in ids:
        assert execute.execute_job(store, job_id, ctx) == "succeeded"
    with factory() as s:
        by_job = {r.job_id: r for r in s.scalars(select(Result))}
    return [by_job[i] for i in ids]


def job(batch: int, batching: str = "sequential") -> JobSpec:
    spec = make_job("pytorch", {}, batch=batch, batching=batching)
    return spec.model_copy(update={"protocol": QUICK})


def output_reasons(result: Result) -> list[str]:
    return [r for r in result.reasons or [] if r.startswith("output check")]


def test_a_batch_is_checked_row_by_row_after_a_batch_of_one(url: str) -> None:
    one, eight = run_jobs(url, [job(1), job(8)])
    assert one.output_check["rows_checked"] == 1
    check = eight.output_check
    assert check["status"] == "checked" and check["rows_checked"] == 8, check
    assert check["timed_output"]["rows_checked"] == 8, check
    assert check["timed_output"]["label_agreement"] == 1.0
    assert check["max_abs_logit_diff"] == 0.0  # pytorch fp32: the reference's own arithmetic
    assert "same computation" in check["logits"]  # ...and the check says so
    assert output_reasons(one) == output_reasons(eight) == []


def test_a_wrong_row_five_makes_the_batch_invalid(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute, "get_backend", lambda name: broken(RowFiveRunner))
    one, eight = run_jobs(url, [job(1), job(8, "batched")])
    assert output_reasons(one) == []  # a batch of one has no row 5
    assert eight.verdict == "invalid"
    assert len(output_reasons(eight)) == 1, (eight.reasons, eight.output_check)
    (reason,) = output_reasons(eight)
    assert reason.startswith("output check: logits differ from fp32 eager by up to 1 "), reason
    assert eight.output_check["rows_checked"] == 8


def test_a_timed_call_returning_wrong_labels_is_invalid(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute, "get_backend", lambda name: broken(FlippedLabelRunner))
    (result,) = run_jobs(url, [job(8)])
    assert result.verdict == "invalid"
    assert len(output_reasons(result)) == 1, (result.reasons, result.output_check)
    (reason,) = output_reasons(result)
    assert reason.startswith("output check: the timed call's labels and scores differ"), reason
    assert result.output_check["max_abs_logit_diff"] == 0.0  # the logits alone look right
    assert result.output_check["timed_output"]["label_agreement"] == 0.0
