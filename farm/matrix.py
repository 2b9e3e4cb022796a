"""The benchmark matrix: a YAML file validated in full, then expanded into job specs.

Validation happens before anything is written, so a bad matrix loses nothing; each
error names the field path and what is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from farm.backends import validate_options
from farm.cellmatch import Exclude, ProtocolOverride
from farm.errors import MatrixError
from farm.jobs import MAX_CORES_PER_INSTANCE, MAX_INSTANCES, JobSpec, Measure, ModelSpec, Task
from farm.modelpaths import check_model_paths
from farm.protocol import Protocol, resolve_profile
from farm.stacks import ALLOCATORS, resolve_stack
from farm.taskinputs import MAX_INPUT_CHARS, TaskInput, input_entries
from farm.tasks import NewTokens, PromptTokens, synthetic_input, task_refusal
from farm.yamlfile import read_yaml

__all__ = ["DEFAULT_MAX_JOBS", "MAX_INPUT_CHARS", "Matrix", "load_matrix", "parse_matrix"]

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
DEFAULT_MAX_JOBS = 10_000
MAX_EXCLUDES = 1000
# The axes in expansion order and the CellMatch field each one is matched by.
_AXIS_FIELDS = ("model", "backend", "input", "batch_size", "pool", "allocator", "instances",
                "cores_per_instance", "measure", "new_tokens")  # fmt: skip


def _allocator(value: Any) -> Any:
    """One of farm.stacks.ALLOCATORS, refused with pydantic's own Literal message."""
    if value not in ALLOCATORS:
        *head, last = (repr(a) for a in ALLOCATORS)
        raise ValueError(f"Input should be {', '.join(head)} or {last}")
    return value


Allocator = Annotated[str, BeforeValidator(_allocator)]


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def _listed(value: Any) -> Any:
    """One value is short for a list of one (`instances: 2` is `instances: [2]`,
    `measure: forward` is `measure: [forward]`)."""
    return value if isinstance(value, list) else [value]


Instances = Annotated[StrictInt, Field(ge=1, le=MAX_INSTANCES)]
CoresPerInstance = Annotated[StrictInt, Field(ge=1, le=MAX_CORES_PER_INSTANCE)]


def _pipeline_only() -> list[Measure]:
    return ["pipeline"]


class BackendEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    # The software stack it must run in; by default the backend's home stack.
    stack: str | None = None

    @model_validator(mode="after")
    def _known(self) -> BackendEntry:
        try:
            resolved = validate_options(self.name, self.options)
        except MatrixError as exc:
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "options", resolved)
        object.__setattr__(self, "stack", resolve_stack(self.name, self.stack))
        return self


class Matrix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    task: Task = "text-classification"
    models: list[ModelSpec] = Field(min_length=1, max_length=100)
    # Named texts ({question, context} for question-answering: farm.taskinputs). Required,
    # except for text-generation with synthetic prompts (prompt_tokens).
    inputs: dict[Name, TaskInput] | None = Field(default=None, min_length=1, max_length=100)
    # text-generation only: new tokens per call (required) and synthetic prompt lengths.
    new_tokens: list[NewTokens] | None = Field(default=None, min_length=1, max_length=32)
    prompt_tokens: list[PromptTokens] | None = Field(default=None, min_length=1, max_length=32)
    batch_sizes: list[Annotated[StrictInt, Field(ge=1, le=1024)]] = Field(
        min_length=1, max_length=32
    )
    batching: Literal["sequential", "batched"] = "sequential"
    backends: list[BackendEntry] = Field(min_length=1, max_length=32)
    pools: list[Name] = Field(min_length=1, max_length=100)
    # The allocator a worker preloads (the blog used tcmalloc); a dimension like any other.
    allocators: list[Allocator] = Field(default_factory=lambda: ["default"], min_length=1)
    # Throughput mode: copies of each cell measured at once, each on its own CPUs
    # (farm.workers.instances); cores_per_instance is required when instances > 1.
    instances: Annotated[list[Instances], BeforeValidator(_listed)] = Field(
        default_factory=lambda: [1], min_length=1, max_length=32
    )
    cores_per_instance: Annotated[list[CoresPerInstance] | None, BeforeValidator(_listed)] = Field(
        default=None, min_length=1, max_length=32
    )
    # What a timed call covers: the pipeline call, the model forward, or both (two cells).
    measure: Annotated[list[Measure], BeforeValidator(_listed)] = Field(
        default_factory=_pipeline_only, min_length=1
    )
    protocol: Protocol = Field(default_factory=Protocol)
    protocol_overrides: list[ProtocolOverride] = Field(default_factory=list, max_length=100)
    exclude: list[Exclude] = Field(default_factory=list, max_length=MAX_EXCLUDES)

    @field_validator("protocol", mode="before")
    @classmethod
    def _profile(cls, value: Any) -> Any:
        return resolve_profile(value)

    @field_validator("cores_per_instance", mode="before")
    @classmethod
    def _cores_given(cls, value: Any) -> Any:
        return [] if value is None else value  # null is refused like an empty list

    @model_validator(mode="after")
    def _cores_needed(self) -> Matrix:
        if self.cores_per_instance is None and max(self.instances) > 1:
            raise ValueError(
                "cores_per_instance: required when instances > 1 (how many CPUs each "
                "instance is pinned to; instances x cores_per_instance must fit the "
                "worker's --cpus)"
            )
        return self

    @model_validator(mode="after")
    def _overrides_valid(self) -> Matrix:
        for i, override in enumerate(self.protocol_overrides):
            try:
                self._protocol_with(override)
            except ValidationError as exc:
                raise ValueError(f"protocol_overrides.{i}.protocol: {_format_error(exc)}") from None
        return self

    @model_validator(mode="after")
    def _task_fits(self) -> Matrix:
        refusal = task_refusal(self)
        if refusal is not None:
            raise ValueError(refusal)
        return self

    def to_json(self) -> dict[str, Any]:
        """As stored with its campaign: a classification matrix without generation's keys."""
        unset = {k for k in ("inputs", "new_tokens", "prompt_tokens") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=unset)

    def _input_axis(self) -> list[tuple[str, str, str | None, int | None]]:
        """(name, text, QA context, synthetic prompt length) of each input: the inputs, or
        the prompts."""
        if self.prompt_tokens is not None:
            lengths = dict.fromkeys(self.prompt_tokens)
            return [(*synthetic_input(n), None, n) for n in lengths]
        return [(*entry, None) for entry in input_entries(self.inputs or {})]

    def _protocol_with(self, override: ProtocolOverride) -> Protocol:
        return Protocol.model_validate({**self.protocol.model_dump(), **override.protocol})

    @field_validator("models", "backends", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        """A bare string is short for {name: ...}."""
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    def _axes(self) -> list[list[Any]]:
        """Each dimension in expansion order, repeats dropped: duplicate cells collapse."""

        def distinct(items: Sequence[Any], key: Callable[[Any], Hashable]) -> list[Any]:
            kept: dict[Hashable, Any] = {}
            for item in items:
                kept.setdefault(key(item), item)
            return list(kept.values())

        return [
            distinct(self.models, lambda m: m.model_dump_json()),
            distinct(
                self.backends, lambda b: json.dumps([b.name, b.options, b.stack], sort_keys=True)
            ),
            self._input_axis(),
            distinct(self.batch_sizes, lambda b: b),
            distinct(self.pools, lambda p: p),
            distinct(self.allocators, lambda a: a),
            distinct(self.instances, lambda n: n),
            distinct(self.cores_per_instance or [None], lambda c: c),
            distinct(self.measure, lambda m: m),
            distinct(self.new_tokens or [None], lambda n: n),
        ]

    def expand(self, max_jobs: int = DEFAULT_MAX_JOBS) -> list[JobSpec]:
        """Deterministic expansion (matrix order); duplicate cells collapse to one job.

        The limit counts jobs left after excludes. They are counted on a boolean mask,
        one model at a time, before any job is built, so a matrix bomb (a huge product, a
        long list of repeats or of excludes) is refused in milliseconds.
        """
        axes = self._axes()
        shape = tuple(len(axis) for axis in axes)
        size = math.prod(shape)
        if size > max(100 * max_jobs, 1_000_000):
            raise MatrixError(
                f"matrix {self.name!r} has {size} cells before excludes, over the limit of "
                f"{max_jobs} jobs; split it or raise the limit with --max-jobs"
            )
        labels = [
            [m.name for m in axes[0]],
            [b.name for b in axes[1]],
            [entry[0] for entry in axes[2]],
            *axes[3:],
        ]
        selections = []
        for i, ex in enumerate(self.exclude):
            wanted = ex._wanted()
            sel = [
                np.array(
                    [k for k, v in enumerate(vals) if v == wanted[f]]
                    if f in wanted
                    else range(len(vals)),
                    dtype=np.intp,
                )
                for f, vals in zip(_AXIS_FIELDS, labels, strict=True)
            ]
            if any(s.size == 0 for s in sel):
                raise MatrixError(
                    f"exclude.{i} matches no cell of matrix {self.name!r}: {wanted} (a typo?)"
                )
            selections.append((set(sel[0].tolist()), np.ix_(*sel[1:])))
        kept: list[tuple[int, np.ndarray]] = []
        count = 0
        for m in range(shape[0]):
            mask = np.ones(shape[1:], dtype=bool)
            for models, index in selections:
                if m in models:
                    mask[index] = False
            count += int(mask.sum())
            if count <= max_jobs:
                kept.append((m, np.flatnonzero(mask)))
        if count == 0:
            raise MatrixError(f"matrix {self.name!r} has no jobs left after its excludes")
        if count > max_jobs:
            raise MatrixError(
                f"matrix {self.name!r} expands to {count} jobs ({size} cells before excludes), "
                f"more than {max_jobs} jobs; split it or raise the limit with --max-jobs"
            )
        jobs: dict[str, JobSpec] = {}
        # Model and backend vary slowest, so jobs that share a loaded runner run back to back.
        for m, flat in kept:
            for b, i, s, p, a, n, c, t, g in zip(*np.unravel_index(flat, shape[1:]), strict=True):
                backend = axes[1][b]
                input_name, text, context, prompt_tokens = axes[2][i]
                job = JobSpec(
                    model=axes[0][m],
                    task=self.task,
                    input_name=input_name,
                    input_text=text,
                    input_context=context,
                    batch_size=axes[3][s],
                    batching=self.batching,
                    backend=backend.name,
                    backend_options=backend.options,
                    pool=axes[4][p],
                    allocator=axes[5][a],
                    stack=backend.stack or "main",
                    measure=axes[8][t],
                    protocol=self.protocol,
                    instances=axes[6][n],
                    cores_per_instance=axes[7][c],
                    new_tokens=axes[9][g],
                    prompt_tokens=prompt_tokens,
                )
                for override in self.protocol_overrides:
                    if override.matches(job):
                        job = job.model_copy(update={"protocol": self._protocol_with(override)})
                jobs.setdefault(job.cell_key(), job)
        return list(jobs.values())


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            msg = "only letters, digits, '.', '_' and '-' are allowed (1 to 100 characters)"
        # The matrix's own checks (farm.tasks) name the field they refuse themselves.
        lines.append(f"{path}: {msg}" if path else msg)
    more = len(exc.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def parse_matrix(data: Any, source: str = "matrix") -> Matrix:
    if not isinstance(data, dict):
        raise MatrixError(f"{source}: expected a mapping at the top level (name:, models:, ...)")
    try:
        return Matrix.model_validate(data)
    except ValidationError as exc:
        raise MatrixError(f"{source}: invalid matrix: {_format_error(exc)}") from None


def load_matrix(
    path: str | Path, *, model_roots: Sequence[Path] | None = None, **protocol_overrides: Any
) -> Matrix:
    """Read and validate a matrix file (safe YAML loader only); apply CLI protocol overrides.

    Model entries that are paths must lie under `model_roots` (default: FARM_MODEL_ROOTS).
    """
    p = Path(path)
    data = read_yaml(p)
    overrides = {k: v for k, v in protocol_overrides.items() if v is not None}
    if overrides and isinstance(data, dict):
        protocol = data.get("protocol") or {}
        if isinstance(protocol, str):
            protocol = {"profile": protocol}
        if isinstance(protocol, dict):
            if "profile" in overrides:  # a profile from the command line replaces the file's
                protocol = {}
            data["protocol"] = {**protocol, **overrides}
    matrix = parse_matrix(data, source=str(p))
    if model_roots is None:
        from farm.settings import model_roots as roots_from_env

        model_roots = roots_from_env()
    check_model_paths((m.name for m in matrix.models), model_roots, str(p))
    return matrix
