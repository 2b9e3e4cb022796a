"""`optimum-ipex` inside the ipex stack: optimum-intel 1.27's IPEXModel, the three call shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from farm.backends import validate_options
from farm.errors import MatrixError
from tests.support.stacks import CALLS, check_runner, make_job

pytestmark = pytest.mark.ipex


@pytest.fixture(scope="module", params=["bf16", "fp32"])
def runner(request: pytest.FixtureRequest) -> Any:
    from farm.workers.backends import get_backend

    return get_backend("optimum-ipex").load(make_job("optimum-ipex", {"dtype": request.param}))


def test_available_here() -> None:
    from farm.workers.backends import available_backends

    assert available_backends()["optimum-ipex"] is None


@pytest.mark.parametrize(("batch", "batching"), CALLS)
def test_runs_and_matches_fp32_eager(
    runner: Any, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    spec = make_job("optimum-ipex", runner.options, batch, batching)
    check_runner(runner, spec, eager_logits, runner.options["dtype"])


def test_identity(runner: Any) -> None:
    details = runner.identity["backend"]
    assert details["name"] == "optimum-ipex" and details["optimum-intel"] == "1.27.0"
    assert details["class"].startswith("IPEXModel") and details["dtype"] == runner.options["dtype"]


@pytest.mark.parametrize("options", [{"dtype": "int8"}, {"jit": True}, {"export": True}])
def test_bad_options_refused(options: dict[str, Any]) -> None:
    with pytest.raises(MatrixError, match="optimum-ipex"):
        validate_options("optimum-ipex", options)
