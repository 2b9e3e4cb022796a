"""Every optimising backend runs every encoder task beyond classification, inside its stack:
the task's pipeline call (batch 1, and a batch of 4 as one forward) and its forward measure,
and the task's output check against fp32 eager (workers/taskcheck.py) within the dtype's
tolerance. Layers-1 replicas, one load per case (the packaged MiniLM's embeddings run under
`pytorch` in tests/integration/test_encoder_tasks.py).

Each case carries its stack's marker, as in test_runners.py; ipex runs fp32 where the CPU
lacks what IPEX's bf16 needs (farm/hardware.py ipex_bf16_missing).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from farm.backends import validate_options
from farm.jobs import JobSpec, ModelSpec
from farm.verdict import COSINE_MIN
from tests.support.stacks import IPEX_BF16_MISSING, TOLERANCE
from tests.support.tasktexts import CONTEXT, QUESTION, SENTENCE

STACK_OF = {"ipex": "ipex", "optimum-ipex": "ipex", "openvino": "main", "torch-compile": "main"}
MODELS = {
    "token-classification": ModelSpec(name="dslim/bert-base-NER-uncased", layers=1),
    "question-answering": ModelSpec(name="distilbert-base-uncased-distilled-squad", layers=1),
    "fill-mask": ModelSpec(name="distilbert-base-uncased", layers=1),
    "feature-extraction": ModelSpec(name="bert-base-uncased", layers=1),  # MiniLM: 6 layers
}
CALLS = [(1, "sequential"), (4, "batched")]
IPEX_DTYPE = "fp32" if IPEX_BF16_MISSING else "bf16"
# (backend, options, the dtype its outputs are held to)
BACKENDS: list[tuple[str, dict[str, Any], str]] = [
    ("torch-compile", {"dtype": "fp32"}, "fp32"),
    ("openvino", {"inference_precision_hint": "f32"}, "fp32"),
    ("ipex", {"dtype": IPEX_DTYPE, "jit": True}, IPEX_DTYPE),
    ("optimum-ipex", {"dtype": "fp32"}, "fp32"),
]
# The classes the optimum paths wrap, per task (workers/taskmodels.py).
CLASS_PREFIX = {"openvino": "OVModel", "optimum-ipex": "IPEXModel"}


def job(backend: str, options: dict[str, Any], task: str, batch: int = 1,
        batching: str = "sequential", measure: str = "pipeline") -> JobSpec:  # fmt: skip
    qa = task == "question-answering"
    return JobSpec(
        model=MODELS[task], task=task, input_name="in", input_text=QUESTION if qa else SENTENCE,
        input_context=CONTEXT if qa else None, batch_size=batch, batching=batching,
        backend=backend, backend_options=validate_options(backend, options), pool="test",
        measure=measure,
    )  # fmt: skip


class Loaded(NamedTuple):
    backend: str
    options: dict[str, Any]
    dtype: str
    task: str
    runner: Any


CASES = [
    pytest.param(
        (backend, options, dtype, task),
        marks=getattr(pytest.mark, STACK_OF[backend]),
        id=f"{backend}-{dtype}-{task}",
    )
    for backend, options, dtype in BACKENDS
    for task in MODELS
]


@pytest.fixture(scope="module", params=CASES)
def loaded(request: pytest.FixtureRequest) -> Loaded:
    from farm.workers.backends import get_backend

    backend, options, dtype, task = request.param
    runner = get_backend(backend).load(job(backend, options, task))
    return Loaded(backend, options, dtype, task, runner)


def test_every_task_runs_and_matches_fp32_eager(loaded: Loaded) -> None:
    from farm.workers.taskcheck import task_check

    backend, options, dtype, task, runner = loaded
    prefix = CLASS_PREFIX.get(backend)
    if prefix is not None:
        assert runner.identity["backend"]["class"].startswith(prefix)
    for batch, batching in CALLS:
        spec = job(backend, options, task, batch, batching)
        out = runner.bind(spec)()
        assert out is not None and (batch == 1 or (isinstance(out, list) and len(out) == batch))
        check = task_check({}, runner, spec)
        assert check["status"] == "checked" and check["rows_checked"] == batch, check
        if task == "feature-extraction":
            assert check["min_cosine"] >= (0.9999 if dtype == "fp32" else COSINE_MIN), check
        else:
            assert check["max_abs_logit_diff"] < TOLERANCE[dtype], check
        forward = runner.bind_measure(spec.model_copy(update={"measure": "forward"}))()
        assert len(forward) == (1 if batching == "batched" else batch)
