"""`torch-compile` inside the main stack: inductor, fp32 and bf16, the three call shapes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from farm.backends import validate_options
from farm.errors import MatrixError
from tests.support.stacks import CALLS, check_runner, make_job

pytestmark = pytest.mark.main
VARIANTS = [{"dtype": "fp32"}, {"dtype": "bf16", "mode": "max-autotune-no-cudagraphs"}]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda o: "-".join(o.values()))
def runner(request: pytest.FixtureRequest) -> Any:
    from farm.workers.backends import get_backend

    return get_backend("torch-compile").load(make_job("torch-compile", request.param))


def test_available_here() -> None:
    from farm.workers.backends import available_backends

    assert available_backends()["torch-compile"] is None


@pytest.mark.parametrize(("batch", "batching"), CALLS)
def test_runs_and_matches_fp32_eager(
    runner: Any, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    spec = make_job("torch-compile", runner.options, batch, batching)
    check_runner(runner, spec, eager_logits, runner.options["dtype"])


def test_compilation_lands_in_bind_not_in_timed_calls(runner: Any) -> None:
    import torch._dynamo.utils as dynamo_utils

    spec = make_job("torch-compile", runner.options, 2, "batched")  # a shape not seen yet
    call = runner.bind(spec)
    before = dict(dynamo_utils.counters["stats"])
    start = time.perf_counter()
    for _ in range(3):
        call()
    assert dict(dynamo_utils.counters["stats"]) == before  # no new compilation
    assert time.perf_counter() - start < 5


def test_identity(runner: Any) -> None:
    details = runner.identity["backend"]
    assert details["name"] == "torch-compile" and details["compiler"] == "inductor"
    assert details["dtype"] == runner.options["dtype"] and details["mode"] == runner.options["mode"]


@pytest.mark.parametrize(
    "options", [{"dtype": "fp16"}, {"mode": "max-autotune"}, {"backend": "eager"}, {"jit": True}]
)
def test_bad_options_refused(options: dict[str, Any]) -> None:
    with pytest.raises(MatrixError, match="torch-compile"):
        validate_options("torch-compile", options)
