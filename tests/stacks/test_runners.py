"""Every optimising backend inside its software stack, one table of cases: it is available,
runs the three call shapes and matches fp32 eager, records what it ran, refuses bad options.

Each case carries its stack's marker (`main` or `ipex`), so inside a stack's venv only that
stack's cases run (tests/stacks/conftest.py); test ids start with the backend's name. A
backend's own checks (IPEX's traces, torch.compile's compile-in-bind) follow the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from farm.backends import validate_options
from farm.errors import BackendUnavailable, MatrixError
from tests.support.stacks import (
    CALLS,
    IPEX_BF16_MISSING,
    OPENVINO_KEEPS_BF16,
    check_forward,
    check_runner,
    make_job,
)

STACK_OF = {"ipex": "ipex", "optimum-ipex": "ipex", "openvino": "main", "torch-compile": "main"}
OPENVINO_DTYPE = {"f32": "fp32", "bf16": "bf16"}  # OpenVINO's precision hint → our dtype


@dataclass(frozen=True)
class Case:
    """One runner to load: a backend with options (hashable, so pytest loads it once)."""

    backend: str
    options: tuple[tuple[str, Any], ...]
    label: str

    @property
    def opts(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def dtype(self) -> str:
        """The precision the logits are held to (tests/support/stacks.py TOLERANCE)."""
        hint = self.opts.get("inference_precision_hint")
        return OPENVINO_DTYPE[hint] if hint else self.opts["dtype"]


def case(backend: str, label: str, **options: Any) -> Case:
    return Case(backend, tuple(options.items()), label)


IPEX = (
    [case("ipex", "bf16-jitTrue", dtype="bf16", jit=True),
     case("ipex", "fp32-jitTrue", dtype="fp32", jit=True),
     case("ipex", "bf16-jitFalse", dtype="bf16", jit=False)]
    if not IPEX_BF16_MISSING  # bf16 is refused on this CPU (test_ipex_bf16_needs_the_isa)
    else [case("ipex", "fp32-jitTrue", dtype="fp32", jit=True),
          case("ipex", "fp32-jitFalse", dtype="fp32", jit=False)]
)  # fmt: skip
TORCH_COMPILE = [
    case("torch-compile", "fp32", dtype="fp32"),
    case("torch-compile", "bf16-max-autotune-no-cudagraphs", dtype="bf16",
         mode="max-autotune-no-cudagraphs"),
]  # fmt: skip
CASES = [
    *IPEX,
    case("openvino", "bf16", inference_precision_hint="bf16"),
    case("openvino", "f32", inference_precision_hint="f32"),
    case("optimum-ipex", "bf16", dtype="bf16"),
    case("optimum-ipex", "fp32", dtype="fp32"),
    *TORCH_COMPILE,
]
BAD_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "ipex": [{"dtype": "fp16"}, {"jit": "yes"}, {"jit": 1}, {"graph_mode": True}],
    "openvino": [
        {"inference_precision_hint": "fp16"},
        {"inference_precision_hint": "fp32"},  # OpenVINO spells it f32
        {"num_streams": 0},
        {"num_streams": "2"},
        {"dtype": "bf16"},
    ],
    "optimum-ipex": [{"dtype": "int8"}, {"jit": True}, {"export": True}],
    "torch-compile": [
        {"dtype": "fp16"}, {"mode": "max-autotune"}, {"backend": "eager"}, {"jit": True},
    ],
}  # fmt: skip


def in_stack(*values: Any, backend: str, label: str) -> Any:
    """A pytest.param marked with the backend's stack, its id led by the backend."""
    marker = getattr(pytest.mark, STACK_OF[backend])
    return pytest.param(*values, marks=marker, id=f"{backend}-{label}" if label else backend)


def runners(cases: list[Case]) -> Any:
    """Parametrise a test's `runner` with these cases, one load per case in the module."""
    params = [in_stack(c, backend=c.backend, label=c.label) for c in cases]
    return pytest.mark.parametrize("runner", params, indirect=True, scope="module")


class Loaded(NamedTuple):
    case: Case
    runner: Any


@pytest.fixture(scope="module")
def runner(request: pytest.FixtureRequest) -> Loaded:
    from farm.workers.backends import get_backend

    c: Case = request.param
    return Loaded(c, get_backend(c.backend).load(make_job(c.backend, c.opts)))


@pytest.mark.parametrize(
    "backend", [in_stack(b, backend=b, label="") for b in sorted(STACK_OF)]
)  # fmt: skip
def test_available_here(backend: str) -> None:
    from farm.workers.backends import available_backends

    assert available_backends()[backend] is None


@pytest.mark.parametrize(("batch", "batching"), CALLS)
@runners(CASES)
def test_runs_and_matches_fp32_eager(
    runner: Loaded, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    c, loaded = runner
    spec = make_job(c.backend, loaded.options, batch, batching)
    check_runner(loaded, spec, eager_logits, c.dtype)


@pytest.mark.parametrize(("batch", "batching"), CALLS)
@runners(CASES)
def test_forward_measure_runs_the_model_calls_alone(
    runner: Loaded, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    c, loaded = runner
    spec = make_job(c.backend, loaded.options, batch, batching)
    check_forward(loaded, spec, eager_logits, c.dtype)


def check_ipex_identity(identity: dict[str, Any], options: dict[str, Any]) -> None:
    details = identity["backend"]
    assert details["ipex"].startswith("2.8") and details["torch"].startswith("2.8")
    assert details["dtype"] == options["dtype"] and details["jit"] is options["jit"]


def check_openvino_identity(identity: dict[str, Any], options: dict[str, Any]) -> None:
    details = identity["backend"]
    hint = options["inference_precision_hint"]
    assert details["inference_precision_hint"] == hint  # what was asked
    # What ran: OpenVINO keeps bf16 on AVX-512 (native or emulated), else runs f32.
    ran = hint if hint == "f32" or OPENVINO_KEEPS_BF16 else "f32"
    assert details["compiled_properties"]["INFERENCE_PRECISION_HINT"] == ran
    assert details["openvino"] and details["optimum-intel"].startswith("2.")
    assert identity["source"] == "replica" and identity["config"]["layers"] == 2


def check_optimum_ipex_identity(identity: dict[str, Any], options: dict[str, Any]) -> None:
    details = identity["backend"]
    assert details["optimum-intel"] == "1.27.0"
    assert details["class"].startswith("IPEXModel") and details["dtype"] == options["dtype"]


def check_torch_compile_identity(identity: dict[str, Any], options: dict[str, Any]) -> None:
    details = identity["backend"]
    assert details["compiler"] == "inductor"
    assert details["dtype"] == options["dtype"] and details["mode"] == options["mode"]


IDENTITY_CHECKS = {
    "ipex": check_ipex_identity,
    "openvino": check_openvino_identity,
    "optimum-ipex": check_optimum_ipex_identity,
    "torch-compile": check_torch_compile_identity,
}


@runners(CASES)
def test_identity(runner: Loaded) -> None:
    c, loaded = runner
    assert loaded.identity["backend"]["name"] == c.backend
    IDENTITY_CHECKS[c.backend](loaded.identity, loaded.options)


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        in_stack(b, o, backend=b, label=",".join(f"{k}={v}" for k, v in o.items()))
        for b, bad in BAD_OPTIONS.items()
        for o in bad
    ],
)
def test_bad_options_refused(backend: str, options: dict[str, Any]) -> None:
    with pytest.raises(MatrixError, match=backend):
        validate_options(backend, options)


@pytest.mark.ipex
def test_ipex_bf16_needs_the_isa() -> None:
    """bf16 loads where the CPU has what IPEX's prepack asserts; elsewhere Farm says why."""
    from farm.workers.backends import get_backend

    job = make_job("ipex", {"dtype": "bf16", "jit": False})
    if IPEX_BF16_MISSING is None:
        assert get_backend("ipex").load(job).identity["backend"]["dtype"] == "bf16"
        return
    with pytest.raises(BackendUnavailable, match=r"dtype=bf16 cannot run on this CPU: .*avx512bw"):
        get_backend("ipex").load(job)


@runners(IPEX)
def test_ipex_jit_traces_each_shape_and_never_falls_back(runner: Loaded) -> None:
    import torch

    loaded = runner.runner
    other = loaded.tokenizer(["a b c"] * 3, return_tensors="pt").data
    if not loaded.options["jit"]:  # eager ipex-optimised model: no traces, any shape runs
        loaded.bind(make_job("ipex", loaded.options, 4, "batched"))
        assert loaded._traced == {}
        with torch.no_grad(), loaded.context():
            assert loaded.forward(other)["logits"].shape == (3, 2)
        return
    loaded.bind(make_job("ipex", loaded.options, 1))
    loaded.bind(make_job("ipex", loaded.options, 4, "batched"))
    shapes = {dict(key)["input_ids"] for key in loaded._traced}
    assert {(1, 18), (4, 18)} <= shapes
    assert all(isinstance(t, torch.jit.ScriptModule) for t in loaded._traced.values())
    with pytest.raises(RuntimeError, match="no trace"):  # an unbound shape is refused
        loaded.forward(other)


@runners(TORCH_COMPILE)
def test_torch_compile_compilation_lands_in_bind_not_in_timed_calls(runner: Loaded) -> None:
    import torch._dynamo.utils as dynamo_utils

    loaded = runner.runner
    spec = make_job("torch-compile", loaded.options, 2, "batched")  # a shape not seen yet
    call = loaded.bind(spec)
    before = dict(dynamo_utils.counters["stats"])
    start = time.perf_counter()
    for _ in range(3):
        call()
    assert dict(dynamo_utils.counters["stats"]) == before  # no new compilation
    assert time.perf_counter() - start < 5
