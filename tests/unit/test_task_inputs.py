"""Each task's matrix inputs and what submit refuses for it: the exact line of every refusal,
and the jobs a good matrix expands to (a QA input's context, a fill-mask input's {mask})."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from farm.db.models import input_of
from farm.errors import MatrixError
from farm.jobs import TASKS, JobSpec
from farm.matrix import load_matrix, parse_matrix
from farm.replicas import DECODERS, ENCODERS, replica_tasks
from farm.taskinputs import MASK, MAX_INPUT_CHARS, QA_EXAMPLE
from farm.tasks import TASK_MODELS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QA = {"short": {"question": "Who bought shoes?", "context": "Ann bought shoes in May."}}
ENCODER_TASKS = [t for t in TASKS if t != "text-generation"]


def matrix(task: str = "text-classification", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "task": task,
        "models": [{"name": "distilbert-base-uncased", "layers": 1}],
        "inputs": QA if task == "question-answering" else {"short": f"a nice {MASK}"},
        "batch_sizes": [1],
        "backends": ["pytorch"],
        "pools": ["p"],
    }
    if task == "text-generation":
        data.update(models=[{"name": "gpt2", "layers": 1}], new_tokens=[4])
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def refused(task: str = "text-classification", **overrides: Any) -> str:
    """The one line a matrix is refused with, less the source's prefix."""
    with pytest.raises(MatrixError) as err:
        parse_matrix(matrix(task, **overrides))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("matrix: invalid matrix: ")
    return message.removeprefix("matrix: invalid matrix: ")


QA_NEEDS = f"a question-answering input has both: {QA_EXAMPLE}"
FILL_MASK_HINT = 'e.g. "Paris is the {mask} of France." (Farm puts the model\'s mask token there)'


@pytest.mark.parametrize(
    ("task", "overrides", "line"),
    [
        ("question-answering", {"inputs": {"a": "Who?"}},
         f"inputs.a: question-answering asks a question about a context: give a: {QA_EXAMPLE}"),
        ("question-answering", {"inputs": {"a": {"question": "Who?"}}},
         f"inputs.a: context is missing; {QA_NEEDS}"),
        ("question-answering", {"inputs": {"a": {"context": "Ann did."}}},
         f"inputs.a: question is missing; {QA_NEEDS}"),
        ("question-answering", {"inputs": {"a": {"question": "Who?", "context": ""}}},
         "inputs.a: context is empty; write one"),
        ("question-answering", {"inputs": {"a": {"question": "Who?", "context": 3}}},
         "inputs.a: context is a text, not int"),
        ("question-answering", {"inputs": {"a": {"question": "Who?", "context": "c", "x": 1}}},
         "inputs.a: 'x' is no field of a question-answering input; it has question and "
         f"context only: {QA_EXAMPLE}"),
        ("question-answering", {"inputs": {"a": {"question": "Who?", "context": "x" * 20_001}}},
         f"inputs.a: context has 20001 characters, over the limit of {MAX_INPUT_CHARS} "
         "(BERT-style models see at most 512 tokens)"),
        ("text-classification", {"inputs": QA},
         "inputs.short: a {question, context} input is for task question-answering; task "
         "text-classification takes a text"),
        ("text-generation", {"inputs": QA},
         "inputs.short: a {question, context} input is for task question-answering; task "
         "text-generation takes a text"),
        ("feature-extraction", {"inputs": {"a": ["x"]}},
         f"inputs.a: a text (or, for question-answering, {QA_EXAMPLE}), not list"),
        ("token-classification", {"inputs": {"a": None}},
         f"inputs.a: a text (or, for question-answering, {QA_EXAMPLE}), not nothing"),
        ("fill-mask", {"inputs": {"a": "no placeholder [MASK]"}},
         "inputs.a: fill-mask needs the placeholder {mask} exactly once in each input (this "
         f"one has 0), {FILL_MASK_HINT}"),
        ("fill-mask", {"inputs": {"ok": "one {mask}", "b": "{mask} and {mask}"}},
         "inputs.b: fill-mask needs the placeholder {mask} exactly once in each input (this "
         f"one has 2), {FILL_MASK_HINT}"),
        ("question-answering", {"models": ["gpt2"]},
         "models.0: gpt2 runs text-generation only, not question-answering; pick a model that "
         "does, e.g. distilbert-base-uncased-distilled-squad"),
        ("fill-mask", {"models": ["bert-base-uncased", "OpenAI-Community/GPT2"]},
         "models.1: OpenAI-Community/GPT2 runs text-generation only, not fill-mask; pick a "
         "model that does, e.g. distilbert-base-uncased"),
        ("text-generation", {"models": ["distilbert-base-uncased"]},
         "models.0: distilbert-base-uncased runs text-classification, token-classification, "
         "question-answering, feature-extraction or fill-mask only, not text-generation; pick "
         "a model that does, e.g. gpt2"),
        ("text-generation", {"new_tokens": [0]},
         "new_tokens.0: 0 new tokens: a generate call makes 1 to 4096 new tokens"),
        ("text-generation", {"new_tokens": [32, 4097]},
         "new_tokens.1: 4097 new tokens: a generate call makes 1 to 4096 new tokens"),
        ("text-generation", {"inputs": None, "prompt_tokens": [0]},
         "prompt_tokens.0: 0 tokens: a synthetic prompt has 1 to 32768 tokens"),
        ("text-generation", {"inputs": None, "prompt_tokens": [1021]},
         "models.0: gpt2 reads at most 1024 positions; prompt_tokens 1021 (1021 tokens) and 4 "
         "new tokens do not fit (shorten the prompt or new_tokens)"),
        ("text-generation", {"measure": "forward"},
         "measure: forward does not apply to text-generation (a timed call is one generate "
         "call); use measure: pipeline or leave it out"),
        ("text-classification", {"new_tokens": [4]},
         "new_tokens: applies to task text-generation only, not text-classification"),
    ],
)  # fmt: skip
def test_each_refusal_is_one_exact_line(task: str, overrides: dict[str, Any], line: str) -> None:
    assert refused(task, **overrides) == line


def test_the_first_input_that_does_not_fit_is_named() -> None:
    inputs = {"good": {"question": "q", "context": "c"}, "bad": "a text", "worse": "more"}
    assert refused("question-answering", inputs=inputs).startswith("inputs.bad: question-answ")
    # A malformed input is named before any input's fit to the task is looked at.
    inputs["worse"] = 5  # type: ignore[assignment]
    assert refused("question-answering", inputs=inputs).startswith("inputs.worse: a text (or")


def test_qa_jobs_carry_question_and_context() -> None:
    inputs = {
        "first": {"question": "Who bought shoes?", "context": "Ann bought shoes in May."},
        "second": {"question": "Who bought shoes?", "context": "Bob bought shoes in June."},
    }
    m = parse_matrix(matrix("question-answering", inputs=inputs, batch_sizes=[1, 2],
                            models=["distilbert-base-uncased-distilled-squad"]))  # fmt: skip
    jobs = m.expand()
    assert [(j.input_name, j.input_text, j.input_context, j.batch_size) for j in jobs] == [
        ("first", "Who bought shoes?", "Ann bought shoes in May.", 1),
        ("first", "Who bought shoes?", "Ann bought shoes in May.", 2),
        ("second", "Who bought shoes?", "Bob bought shoes in June.", 1),
        ("second", "Who bought shoes?", "Bob bought shoes in June.", 2),
    ]
    # The same question on another context is another cell, and another input hash.
    assert len({j.cell_key() for j in jobs}) == 4
    hashes = {hashlib.md5(input_of(j.to_json()).encode()).hexdigest() for j in jobs}  # noqa: S324
    assert len(hashes) == 2
    assert input_of(jobs[0].to_json()) == json.dumps([jobs[0].input_text, jobs[0].input_context])
    again = JobSpec.from_json(json.loads(jobs[0].json_text()))
    assert again == jobs[0] and again.cell_key() == jobs[0].cell_key()
    # The campaign keeps the matrix as written: the pairs, not their expansion.
    assert m.to_json()["inputs"] == inputs


def test_fill_mask_jobs_keep_the_placeholder_and_other_tasks_have_no_context() -> None:
    for task in ("fill-mask", "token-classification", "feature-extraction", "text-generation"):
        text = f"Paris is the {MASK} of France."
        (job,) = parse_matrix(matrix(task, inputs={"m": text})).expand()
        assert job.input_text == text and job.task == task
        assert job.input_context is None and "input_context" not in job.to_json()


@pytest.mark.parametrize("task", ENCODER_TASKS)
def test_every_encoder_task_runs_on_encoder_replicas_and_measures_forward(task: str) -> None:
    for name in (*ENCODERS, "distilbert/distilbert-base-uncased-distilled-squad"):
        jobs = parse_matrix(matrix(task, models=[name], measure=["pipeline", "forward"])).expand()
        assert {j.measure for j in jobs} == {"pipeline", "forward"}
    for name in DECODERS:
        assert refused(task, models=[name]).startswith(f"models.0: {name} runs text-generation")


def test_other_models_are_left_to_the_worker() -> None:
    """Not a replica Farm ships (a cache name, the packaged MiniLM, a local folder): its
    worker says whether it can run the task."""
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "my-org/tiny-llama", "models/x"):
        assert replica_tasks(name) is None
        parse_matrix(matrix("question-answering", models=[name]))
        parse_matrix(matrix("text-generation", models=[name]))


def test_every_task_names_a_model_that_runs_it() -> None:
    assert set(TASK_MODELS) == set(TASKS)
    for task, model in TASK_MODELS.items():
        assert task in (replica_tasks(model) or TASKS), task


def test_every_example_loads_and_each_task_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_MODEL_ROOTS", raising=False)
    files = sorted(EXAMPLES.rglob("*.yaml"))
    tasks = {}
    for path in files:
        m = load_matrix(path)
        assert m.expand(), path
        assert m.name == path.stem, path  # one campaign name per file
        if path.parent.name == "tasks":
            tasks[m.task] = m
    assert set(tasks) == set(TASKS) - {"text-classification"}
    assert all(TASK_MODELS[t] in [mod.name for mod in m.models] for t, m in tasks.items()
               if t != "text-generation")  # fmt: skip
    gen = load_matrix(EXAMPLES / "generation-matrix.yaml")
    jobs = gen.expand()
    assert len(jobs) == 2 * 2 * 2 * 5
    assert {j.model.name for j in jobs} == {"gpt2", "HuggingFaceTB/SmolLM2-135M"}
    assert {(j.prompt_tokens, j.new_tokens, j.batch_size) for j in jobs} == {
        (p, 32, b) for p in (32, 512) for b in (1, 4)
    }
    assert {(j.backend, j.backend_options.get("dtype")) for j in jobs} == {
        ("pytorch", "fp32"), ("pytorch", "bf16"), ("openvino", None), ("ipex", "fp32"),
        ("ipex", "bf16"),
    }  # fmt: skip
    assert (gen.protocol.warmup, gen.protocol.iterations) == (2, 10)
