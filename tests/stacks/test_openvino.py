"""`openvino` inside the main stack: export, precision hints, the three call shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from farm.backends import validate_options
from farm.errors import MatrixError
from tests.support.stacks import CALLS, NATIVE_BF16, check_runner, make_job

pytestmark = pytest.mark.main
HINTS = {"f32": "fp32", "bf16": "bf16"}


@pytest.fixture(scope="module", params=sorted(HINTS))
def runner(request: pytest.FixtureRequest) -> Any:
    from farm.workers.backends import get_backend

    spec = make_job("openvino", {"inference_precision_hint": request.param})
    return get_backend("openvino").load(spec)


def test_available_here() -> None:
    from farm.workers.backends import available_backends

    assert available_backends()["openvino"] is None


@pytest.mark.parametrize(("batch", "batching"), CALLS)
def test_runs_and_matches_fp32_eager(
    runner: Any, batch: int, batching: str, eager_logits: Callable[..., Any]
) -> None:
    hint = runner.options["inference_precision_hint"]
    spec = make_job("openvino", runner.options, batch, batching)
    check_runner(runner, spec, eager_logits, HINTS[hint])


def test_identity_records_the_precision_hint(runner: Any) -> None:
    details = runner.identity["backend"]
    hint = runner.options["inference_precision_hint"]
    assert details["name"] == "openvino"
    assert details["inference_precision_hint"] == hint  # what was asked
    # What ran: OpenVINO keeps bf16 only on CPUs that compute in it, else runs f32.
    ran = hint if hint == "f32" or NATIVE_BF16 else "f32"
    assert details["compiled_properties"]["INFERENCE_PRECISION_HINT"] == ran
    assert details["openvino"] and details["optimum-intel"].startswith("2.")
    assert runner.identity["source"] == "replica" and runner.identity["config"]["layers"] == 2


@pytest.mark.parametrize(
    "options",
    [
        {"inference_precision_hint": "fp16"},
        {"inference_precision_hint": "fp32"},  # OpenVINO spells it f32
        {"num_streams": 0},
        {"num_streams": "2"},
        {"dtype": "bf16"},
    ],
)
def test_bad_options_refused(options: dict[str, Any]) -> None:
    with pytest.raises(MatrixError, match="openvino"):
        validate_options("openvino", options)
