"""`ipex` inside the ipex stack: ipex.optimize + autocast + jit trace/freeze, per call shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from farm.backends import validate_options
from farm.errors import MatrixError
from tests.support.stacks import CALLS, IPEX_BF16_MISSING, check_runner, make_job

pytestmark = pytest.mark.ipex
VARIANTS = [
    {"dtype": "bf16", "jit": True},
    {"dtype": "fp32", "jit": True},
    {"dtype": "bf16", "jit": False},
]
if IPEX_BF16_MISSING:  # bf16 is refused on this CPU (test_bf16_needs_the_isa), fp32 both ways
    VARIANTS = [{"dtype": "fp32", "jit": True}, {"dtype": "fp32", "jit": False}]


def test_bf16_needs_the_isa() -> None:
    """bf16 loads where the CPU has what IPEX's prepack asserts; elsewhere Farm says why."""
    from farm.errors import BackendUnavailable
    from farm.workers.backends import get_backend

    job = make_job("ipex", {"dtype": "bf16", "jit": False})
    if IPEX_BF16_MISSING is None:
        assert get_backend("ipex").load(job).identity["backend"]["dtype"] == "bf16"
        return
    with pytest.raises(BackendUnavailable, match=r"dtype=bf16 cannot run on this CPU: .*avx512bw"):
        get_backend("ipex").load(job)


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda o: f"{o['dtype']}-jit{o['jit']}")
def runner(request: pytest.FixtureRequest) -> Any:
    from farm.workers.backends import get_backend

    return get_backend("ipex").load(make_job("ipex", request.param))


def test_available_here() -> None:
    from farm.workers.backends import available_backends

    assert available_backends()["ipex"] is None


@pytest.mark.parametrize(("batch", "batching"), CALLS)
def test_runs_and_matches_fp32_eager(
    runner: Any, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    spec = make_job("ipex", runner.options, batch, batching)
    check_runner(runner, spec, eager_logits, runner.options["dtype"])


def test_jit_traces_each_shape_and_never_falls_back(runner: Any) -> None:
    import torch

    other = runner.tokenizer(["a b c"] * 3, return_tensors="pt").data
    if not runner.options["jit"]:  # eager ipex-optimised model: no traces, any shape runs
        runner.bind(make_job("ipex", runner.options, 4, "batched"))
        assert runner._traced == {}
        with torch.no_grad(), runner.context():
            assert runner.forward(other)["logits"].shape == (3, 2)
        return
    runner.bind(make_job("ipex", runner.options, 1))
    runner.bind(make_job("ipex", runner.options, 4, "batched"))
    shapes = {dict(key)["input_ids"] for key in runner._traced}
    assert {(1, 18), (4, 18)} <= shapes
    assert all(isinstance(t, torch.jit.ScriptModule) for t in runner._traced.values())
    with pytest.raises(RuntimeError, match="no trace"):  # an unbound shape is refused
        runner.forward(other)


def test_identity(runner: Any) -> None:
    details = runner.identity["backend"]
    assert details["name"] == "ipex" and details["ipex"].startswith("2.8")
    assert details["dtype"] == runner.options["dtype"] and details["jit"] is runner.options["jit"]
    assert details["torch"].startswith("2.8")


@pytest.mark.parametrize(
    "options", [{"dtype": "fp16"}, {"jit": "yes"}, {"jit": 1}, {"graph_mode": True}]
)
def test_bad_options_refused(options: dict[str, Any]) -> None:
    with pytest.raises(MatrixError, match="ipex"):
        validate_options("ipex", options)
