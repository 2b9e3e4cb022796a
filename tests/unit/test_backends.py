"""Backend option schemas (farm.backends), the call inputs (workers.backends.base), JobSpec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from farm.backends import known_backends, validate_options
from farm.errors import MatrixError
from farm.jobs import JobSpec, ModelSpec, Protocol, queue_for
from farm.workers.backends.base import call_inputs

SHORT = "This is a really nice pair of shoes, I am completely satisfied with my purchase"


def job(**changes: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "model": ModelSpec(name="distilbert-base-uncased"),
        "input_name": "short",
        "input_text": SHORT,
        "batch_size": 1,
        "backend": "pytorch",
        "backend_options": {"dtype": "fp32"},
        "pool": "icelake",
    }
    fields.update(changes)
    return JobSpec(**fields)


# --- farm.backends.validate_options ----------------------------------------------------


def test_known_backends() -> None:
    assert known_backends() == [
        "ipex",
        "openvino",
        "optimum-ipex",
        "pytorch",
        "selftest",
        "torch-compile",
    ]


@pytest.mark.parametrize(
    ("backend", "options", "expected"),
    [
        ("pytorch", None, {"dtype": "fp32"}),
        ("pytorch", {}, {"dtype": "fp32"}),
        ("pytorch", {"dtype": "bf16"}, {"dtype": "bf16"}),
        ("ipex", None, {"dtype": "bf16", "jit": True}),
        ("ipex", {"jit": False}, {"dtype": "bf16", "jit": False}),
        ("ipex", {"dtype": "fp32"}, {"dtype": "fp32", "jit": True}),
    ],
)
def test_validate_options_fills_defaults(
    backend: str, options: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert validate_options(backend, options) == expected


def test_validate_options_does_not_mutate_its_input() -> None:
    options = {"jit": False}
    validate_options("ipex", options)
    assert options == {"jit": False}


@pytest.mark.parametrize("backend", ["onnx", "", "PyTorch", "tensorrt"])
def test_unknown_backend(backend: str) -> None:
    with pytest.raises(MatrixError) as info:
        validate_options(backend, {})
    message = str(info.value)
    assert "unknown backend" in message
    assert "ipex, pytorch" in message


@pytest.mark.parametrize(
    ("backend", "options", "mentions"),
    [
        ("pytorch", {"dtype": "int8"}, "dtype"),
        ("pytorch", {"dtype": "fp16"}, "dtype"),
        ("pytorch", {"jit": True}, "jit"),
        ("ipex", {"dtype": "int8"}, "dtype"),
        ("ipex", {"jit": "sometimes"}, "jit"),
        ("ipex", {"threads": 4}, "threads"),
    ],
)
def test_bad_options(backend: str, options: dict[str, Any], mentions: str) -> None:
    with pytest.raises(MatrixError) as info:
        validate_options(backend, options)
    message = str(info.value)
    assert repr(backend) in message
    assert mentions in message
    assert "allowed options" in message


# --- workers.backends.base.call_inputs ------------------------------------------------


@pytest.mark.parametrize("batching", ["sequential", "batched"])
def test_batch_of_one_is_the_bare_string(batching: str) -> None:
    args, kwargs = call_inputs(job(batch_size=1, batching=batching))
    assert args == (SHORT,)
    assert kwargs == {}


@pytest.mark.parametrize("size", [2, 8, 64])
def test_sequential_batch_is_a_list_without_kwargs(size: int) -> None:
    args, kwargs = call_inputs(job(batch_size=size, batching="sequential"))
    assert args == ([SHORT] * size,)
    assert kwargs == {}


@pytest.mark.parametrize("size", [2, 8, 64])
def test_batched_batch_is_a_list_with_batch_size(size: int) -> None:
    args, kwargs = call_inputs(job(batch_size=size, batching="batched"))
    assert args == ([SHORT] * size,)
    assert kwargs == {"batch_size": size}


# --- JobSpec --------------------------------------------------------------------------


def test_jobspec_defaults() -> None:
    spec = job()
    assert spec.task == "text-classification"
    assert spec.batching == "sequential"
    assert spec.protocol == Protocol(warmup=100, iterations=1000)


@pytest.mark.parametrize(
    "spec",
    [
        job(),
        job(
            model=ModelSpec(name="bert-base-uncased", layers=2, trust_remote_code=True),
            batch_size=8,
            batching="batched",
            backend="ipex",
            backend_options={"dtype": "bf16", "jit": True},
            pool="sapphirerapids",
            protocol=Protocol(warmup=0, iterations=3),
        ),
    ],
    ids=["plain", "everything-set"],
)
def test_jobspec_json_round_trip(spec: JobSpec) -> None:
    data = spec.to_json()
    again = JobSpec.from_json(data)
    assert again == spec
    assert again.to_json() == data
    assert again.cell_key() == spec.cell_key()
    assert again.runner_key() == spec.runner_key()


def test_jobspec_json_survives_a_real_json_encoding() -> None:
    spec = job(backend="ipex", backend_options={"dtype": "bf16", "jit": True})
    assert JobSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_jobspec_from_json_refuses_unknown_fields() -> None:
    data = job().to_json()
    data["surprise"] = 1
    with pytest.raises(ValueError):
        JobSpec.from_json(data)


def test_cell_key_is_stable_for_equal_jobs() -> None:
    assert job().cell_key() == job().cell_key()
    assert len(job().cell_key()) == 16


@pytest.mark.parametrize(
    "changes",
    [
        {"pool": "sapphirerapids"},
        {"input_name": "long"},
        {"input_text": "other text"},
        {"batch_size": 8},
        {"batching": "batched"},
        {"backend_options": {"dtype": "bf16"}},
        {"model": ModelSpec(name="roberta-base")},
        {"protocol": Protocol(warmup=5, iterations=40)},
    ],
    ids=lambda c: next(iter(c)),
)
def test_cell_key_changes_with_any_field(changes: dict[str, Any]) -> None:
    assert job(**changes).cell_key() != job().cell_key()


@pytest.mark.parametrize(
    "changes",
    [
        {"pool": "sapphirerapids"},
        {"input_name": "long", "input_text": "These Adidas Lite Racer shoes"},
        {"batch_size": 8},
        {"batching": "batched", "batch_size": 8},
        {"protocol": Protocol(warmup=5, iterations=40)},
    ],
    ids=["pool", "input", "batch", "batching", "protocol"],
)
def test_runner_key_ignores_pool_input_and_batch(changes: dict[str, Any]) -> None:
    assert job(**changes).runner_key() == job().runner_key()


@pytest.mark.parametrize(
    "changes",
    [
        {"backend_options": {"dtype": "bf16"}},
        {"backend": "ipex", "backend_options": {"dtype": "fp32"}},
        {"model": ModelSpec(name="bert-base-uncased")},
        {"model": ModelSpec(name="distilbert-base-uncased", layers=2)},
    ],
    ids=["options", "backend", "model", "layers"],
)
def test_runner_key_changes_with_model_or_backend(changes: dict[str, Any]) -> None:
    assert job(**changes).runner_key() != job().runner_key()


def test_ipex_jit_option_changes_the_runner_key() -> None:
    on = job(backend="ipex", backend_options={"dtype": "bf16", "jit": True})
    off = job(backend="ipex", backend_options={"dtype": "bf16", "jit": False})
    assert on.runner_key() != off.runner_key()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        job(batch_size=0)


@pytest.mark.parametrize("name", ["http://x/y", "https://hf.co/bert", "s3://b/m", "a\nb"])
def test_model_spec_refuses_urls_and_control_characters(name: str) -> None:
    with pytest.raises(ValueError):
        ModelSpec(name=name)


def test_model_spec_label() -> None:
    assert ModelSpec(name="bert-base-uncased").label == "bert-base-uncased"
    assert ModelSpec(name="bert-base-uncased", layers=2).label == "bert-base-uncased[2L]"


@pytest.mark.parametrize(("pool", "queue"), [("icelake", "farm.icelake"), ("zen4", "farm.zen4")])
def test_queue_for(pool: str, queue: str) -> None:
    assert queue_for(pool) == queue
