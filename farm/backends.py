"""The backend table: each backend's option schema, software stacks and implementation.

One table so a new backend is one row here (plus its runner module): the schemas live in
the core so that `farm submit` can refuse a bad option on a laptop without torch; the
runners that need torch live in `workers/backends/` and are named by import path, loaded
lazily by the worker (`farm.workers.backends.get_backend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from farm.errors import MatrixError


class BackendOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PytorchOptions(BackendOptions):
    """Vanilla transformers pipeline; bf16 runs the pipeline under CPU autocast."""

    dtype: Literal["fp32", "bf16"] = "fp32"


class IpexOptions(BackendOptions):
    """What optimum-intel's removed `inference_mode(dtype, jit)` did: ipex.optimize + autocast
    + optional torch.jit.trace/freeze. Its runner lives in the `ipex` software stack."""

    dtype: Literal["fp32", "bf16"] = "bf16"
    jit: StrictBool = True


class OpenvinoOptions(BackendOptions):
    """optimum-intel's OpenVINO model class (main stack): the model is exported to OpenVINO IR
    and compiled for the CPU with this precision hint and number of streams."""

    inference_precision_hint: Literal["f32", "bf16"] = "f32"
    num_streams: Annotated[StrictInt, Field(ge=1, le=64)] = 1


class TorchCompileOptions(BackendOptions):
    """torch.compile with inductor (main stack); bf16 runs each call under CPU autocast."""

    dtype: Literal["fp32", "bf16"] = "fp32"
    mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = "default"


class OptimumIpexOptions(BackendOptions):
    """optimum-intel 1.27's IPEXModel classes (ipex stack)."""

    dtype: Literal["fp32", "bf16"] = "bf16"


class SelftestOptions(BackendOptions):
    """No model: each call spins the CPU for `work_ms`. For drills of the farm itself
    (timeouts, killed workers, a backend that crashes its process with `crash: true`)."""

    work_ms: Annotated[float, Field(ge=0, le=60_000)] = 1.0
    crash: StrictBool = False


# Capabilities: task → the dtypes it runs that task in (None: whatever its options say).
Capabilities = dict[str, tuple[str, ...] | None]
ENCODER_TASKS = ("text-classification", "token-classification", "question-answering",
                 "feature-extraction", "fill-mask")  # fmt: skip
EVERY_TASK: Capabilities = {**dict.fromkeys(ENCODER_TASKS), "text-generation": None}


@dataclass(frozen=True)
class BackendSpec:
    """One row of the backend table."""

    options: type[BackendOptions]
    stacks: tuple[str, ...]  # the software stacks it runs in; the first is its home
    implementation: str  # "module:Class" of its `Backend`, imported only on a worker
    tasks: Capabilities = field(default_factory=lambda: dict(EVERY_TASK))
    # task → option → (the one value it runs that task with, why): another value is refused
    fixed: dict[str, dict[str, tuple[Any, str]]] = field(default_factory=dict)


_IMPL = "farm.workers.backends"
BACKENDS: dict[str, BackendSpec] = {
    "pytorch": BackendSpec(PytorchOptions, ("main", "ipex"), f"{_IMPL}.pytorch:PytorchBackend"),
    "ipex": BackendSpec(
        IpexOptions, ("ipex",), f"{_IMPL}.ipex:IpexBackend",
        fixed={"text-generation": {"jit": (True, "ipex.llm.optimize traces the decoder for "
                                           "deployment itself where its LLM path has the model")}},
    ),  # fmt: skip
    "openvino": BackendSpec(OpenvinoOptions, ("main",), f"{_IMPL}.openvino:OpenvinoBackend"),
    "torch-compile": BackendSpec(
        TorchCompileOptions, ("main", "ipex"), f"{_IMPL}.torch_compile:TorchCompileBackend"
    ),
    "optimum-ipex": BackendSpec(
        OptimumIpexOptions, ("ipex",), f"{_IMPL}.optimum_ipex:OptimumIpexBackend"
    ),
    "selftest": BackendSpec(SelftestOptions, ("main", "ipex"), f"{_IMPL}.selftest:SelftestBackend"),
}
OPTION_SCHEMAS: dict[str, type[BackendOptions]] = {n: b.options for n, b in BACKENDS.items()}


def known_backends() -> list[str]:
    return sorted(OPTION_SCHEMAS)


def validate_options(backend: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Return the backend's options with defaults filled in, or raise MatrixError."""
    schema = OPTION_SCHEMAS.get(backend)
    if schema is None:
        raise MatrixError(
            f"unknown backend {backend!r}; known backends: {', '.join(known_backends())}"
        )
    try:
        return schema.model_validate(options or {}).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        allowed = ", ".join(
            f"{name}: {field.annotation}".replace("typing.", "")
            for name, field in schema.model_fields.items()
        )
        raise MatrixError(
            f"backend {backend!r} option {where}: {first['msg']} (allowed options: {allowed})"
        ) from None


def capability_refusal(backend: str, task: str, options: dict[str, Any]) -> str | None:
    """Why `backend` with these (validated) options cannot run `task`, or None if it can.

    The one capability table (backend × task × dtype): `farm submit` refuses what it says
    no to, before anything is written."""
    spec = BACKENDS.get(backend)
    if spec is None:
        return f"unknown backend {backend!r}; known backends: {', '.join(known_backends())}"
    if task not in spec.tasks:
        return f"backend {backend} does not run task {task} yet"
    dtypes = spec.tasks[task]
    dtype = options.get("dtype")
    if dtypes is not None and dtype not in dtypes:
        return (
            f"backend {backend} runs task {task} in {' or '.join(dtypes)} only, not {dtype}"
        )
    for name, (value, why) in spec.fixed.get(task, {}).items():
        if options.get(name, value) != value:
            shown = str(value).lower() if isinstance(value, bool) else value
            return f"backend {backend} runs task {task} with {name}: {shown} only ({why})"
    return None
