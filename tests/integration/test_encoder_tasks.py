"""The four encoder tasks beyond classification, for real through `execute_job` and the job
store (PostgreSQL): layers-1 replicas (and the packaged MiniLM for embeddings) under
`pytorch` fp32 and bf16, measure pipeline and forward, batch 1 and a batch of 4; each result
carries its task's output check and says what its timed call covered. A backend whose
outputs are wrong is stored invalid; a fill-mask input without `{mask}` fails in one line.

The broken backend is a test-only runner handed to the worker in-process (the product has
no switch that corrupts output).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from farm.backends import validate_options
from farm.db import repo
from farm.db.jobstore import DbJobStore
from farm.db.models import Job, Result
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol
from farm.settings import Settings
from farm.verdict import COSINE_MIN, OUTPUT_TOLERANCE
from farm.workers import execute
from farm.workers.backends.base import TIMED, TIMED_TASK, Backend, Runner
from farm.workers.backends.runner import SwappedPipelineRunner
from farm.workers.models import LoadedModel
from tests.support.tasktexts import CONTEXT, QUESTION, SENTENCE

pytestmark = pytest.mark.integration

QUICK = Protocol(warmup=2, iterations=3)
# Each task's model: the replicas, and the packaged MiniLM for embeddings.
MODELS = {
    "token-classification": ModelSpec(name="dslim/bert-base-NER-uncased", layers=1),
    "question-answering": ModelSpec(name="distilbert-base-uncased-distilled-squad", layers=1),
    "fill-mask": ModelSpec(name="distilbert-base-uncased", layers=1),
    "feature-extraction": ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2"),
}
TASKS = list(MODELS)


@pytest.fixture
def url(migrated_pg: str) -> str:
    return migrated_pg


def job(task: str, batch: int = 1, batching: str = "sequential", **changes: Any) -> JobSpec:
    qa = task == "question-answering"
    return JobSpec(
        model=MODELS[task], task=task, input_name="in", input_text=QUESTION if qa else SENTENCE,
        input_context=CONTEXT if qa else None, batch_size=batch, batching=batching,
        backend="pytorch", backend_options=validate_options("pytorch", changes.pop("options", {})),
        pool="test", protocol=QUICK, **changes,
    )  # fmt: skip


def run_jobs(url: str, specs: list[JobSpec], expect: str = "succeeded") -> list[Any]:
    """Each job through execute_job in one worker context (runners and references reused,
    as a worker does); their stored results, or their jobs when they failed."""
    factory = session_factory(url)
    with transaction(factory) as s:
        ids = [j.id for j in repo.create_campaign(s, "c", {}, specs).jobs]
    store = DbJobStore(factory)
    ctx = execute.WorkerContext(name="w", host="h", fingerprint={}, settings=Settings(), threads=1)
    for job_id in ids:
        assert execute.execute_job(store, job_id, ctx) == expect
    with factory() as s:
        if expect != "succeeded":
            jobs = {j.id: j for j in s.scalars(select(Job))}
            return [jobs[i] for i in ids]
        by_job = {r.job_id: (r, s.get(Job, r.job_id).task) for r in s.scalars(select(Result))}
    return [by_job[i] for i in ids]


def output_reasons(result: Result) -> list[str]:
    return [r for r in result.reasons or [] if r.startswith("output check")]


@pytest.mark.parametrize("task", TASKS)
def test_each_task_runs_and_is_checked_against_fp32_eager(url: str, task: str) -> None:
    specs = [job(task), job(task, 4, "batched", measure="forward"), job(task, 4, "sequential")]
    for (result, stored_task), spec in zip(run_jobs(url, specs), specs, strict=True):
        check = result.output_check
        assert stored_task == task and check["status"] == "checked", check
        assert check["rows_checked"] == spec.batch_size and output_reasons(result) == []
        assert "same computation" in check["logits"]  # pytorch fp32 *is* the reference
        if task == "feature-extraction":
            assert check["min_cosine"] == pytest.approx(1.0, abs=1e-6)
        else:
            assert check["max_abs_logit_diff"] == 0.0
        expected = TIMED["forward"] if spec.measure == "forward" else TIMED_TASK[task]
        assert result.environment["timed"] == expected
        assert result.n == 3 and result.mean_ms > 0 and result.tokens > 5
    agreement = {"token-classification": "label_agreement", "question-answering":
                 "span_agreement", "fill-mask": "top1_agreement"}.get(task)  # fmt: skip
    if agreement is not None:
        assert result.output_check[agreement] == 1.0


@pytest.mark.parametrize("task", TASKS)
def test_bf16_autocast_stays_within_the_tolerance(url: str, task: str) -> None:
    specs = [job(task, 4, "batched", options={"dtype": "bf16"})]
    ((result, _),) = run_jobs(url, specs)
    check = result.output_check
    assert check["status"] == "checked" and "against fp32 eager" in check["logits"]
    if task == "feature-extraction":
        assert COSINE_MIN <= check["min_cosine"] < 1.0
    else:
        assert 0.0 < check["max_abs_logit_diff"] < OUTPUT_TOLERANCE, check
    assert output_reasons(result) == [], result.reasons


class Broken(SwappedPipelineRunner):
    """A broken optimisation: fp32 eager, except row 2 of a batch (QA: its start logits
    shifted by 1; embeddings: the row's hidden states negated)."""

    backend_name = "broken-row-two"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        return {"broken": "row 2 of a batch"}

    def forward(self, kwargs: dict[str, Any]) -> Any:
        out = self.original(**kwargs)
        for name in ("start_logits", "last_hidden_state"):
            if name in out and out[name].shape[0] > 2:
                changed = out[name].clone()
                changed[2] = changed[2] + 1.0 if name == "start_logits" else -changed[2]
                out[name] = changed
        return out


class BrokenBackend(Backend):
    name = "pytorch"

    def load(self, spec: JobSpec) -> Runner:
        return Broken(spec)


@pytest.mark.parametrize(
    ("task", "reason"),
    [("question-answering", "output check: logits differ from fp32 eager by up to 1 "),
     ("feature-extraction", "output check: embeddings' cosine similarity to fp32 eager's is "
      "down to -1.0000")],
)  # fmt: skip
def test_wrong_outputs_make_the_result_invalid(
    url: str, task: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute, "get_backend", lambda name: BrokenBackend())
    (one, _), (four, _) = run_jobs(url, [job(task), job(task, 4, "batched")])
    assert output_reasons(one) == []  # a batch of one has no row 2
    assert four.verdict == "invalid"
    (got,) = output_reasons(four)
    assert got.startswith(reason) and "at row 2 of 4" in got, got


def test_a_fill_mask_input_without_the_placeholder_fails_in_one_line(url: str) -> None:
    spec = job("fill-mask").model_copy(update={"input_text": "No placeholder here."})
    (failed,) = run_jobs(url, [spec], expect="failed")
    assert failed.state == "failed"
    assert failed.error == (
        "ValueError: input 'in' has no {mask} placeholder; fill-mask puts the model's mask "
        "token there: write e.g. 'Paris is the {mask} of France.'"
    )
