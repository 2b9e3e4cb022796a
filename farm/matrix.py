"""The benchmark matrix: a YAML file validated in full, then expanded into job specs.

Validation happens before anything is written, so a bad matrix loses nothing; each
error names the field path and what is allowed.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from farm.backends import validate_options
from farm.errors import MatrixError
from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol, resolve_profile

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
MAX_MATRIX_BYTES = 1 << 20
DEFAULT_MAX_JOBS = 10_000

Allocator = Literal["default", "tcmalloc", "jemalloc"]


def _default_allocators() -> list[Allocator]:
    return ["default"]


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class BackendEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> BackendEntry:
        try:
            resolved = validate_options(self.name, self.options)
        except MatrixError as exc:
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "options", resolved)
        return self


class CellMatch(BaseModel):
    """A partial cell: it matches every job whose given fields all agree."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | None = None
    batch_size: int | None = None
    backend: str | None = None
    pool: str | None = None
    allocator: str | None = None

    def _wanted(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, include=set(CellMatch.model_fields))

    def matches(self, job: JobSpec) -> bool:
        pairs = {
            "model": job.model.name,
            "input": job.input_name,
            "batch_size": job.batch_size,
            "backend": job.backend,
            "pool": job.pool,
            "allocator": job.allocator,
        }
        return all(pairs[k] == v for k, v in self._wanted().items())

    @model_validator(mode="after")
    def _not_empty(self) -> CellMatch:
        if not self._wanted():
            raise ValueError(
                f"{type(self).__name__.lower()} needs at least one of "
                f"{', '.join(CellMatch.model_fields)}"
            )
        return self


class Exclude(CellMatch):
    """Every job matching this partial cell is left out."""


class ProtocolOverride(CellMatch):
    """Jobs matching this partial cell are measured with these protocol fields instead."""

    protocol: dict[str, Any]


class Matrix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    task: Literal["text-classification"] = "text-classification"
    models: list[ModelSpec] = Field(min_length=1, max_length=100)
    inputs: dict[Name, Annotated[str, StringConstraints(min_length=1, max_length=100_000)]] = Field(
        min_length=1, max_length=100
    )
    batch_sizes: list[Annotated[StrictInt, Field(ge=1, le=1024)]] = Field(
        min_length=1, max_length=32
    )
    batching: Literal["sequential", "batched"] = "sequential"
    backends: list[BackendEntry] = Field(min_length=1, max_length=32)
    pools: list[Name] = Field(min_length=1, max_length=100)
    # The allocator a worker preloads (the blog used tcmalloc); a dimension like any other.
    allocators: list[Allocator] = Field(default_factory=_default_allocators, min_length=1)
    protocol: Protocol = Field(default_factory=Protocol)
    protocol_overrides: list[ProtocolOverride] = Field(default_factory=list, max_length=100)
    exclude: list[Exclude] = Field(default_factory=list)

    @field_validator("protocol", mode="before")
    @classmethod
    def _profile(cls, value: Any) -> Any:
        return resolve_profile(value)

    @model_validator(mode="after")
    def _overrides_valid(self) -> Matrix:
        for i, override in enumerate(self.protocol_overrides):
            try:
                self._protocol_with(override)
            except ValidationError as exc:
                raise ValueError(f"protocol_overrides.{i}.protocol: {_format_error(exc)}") from None
        return self

    def _protocol_with(self, override: ProtocolOverride) -> Protocol:
        return Protocol.model_validate({**self.protocol.model_dump(), **override.protocol})

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("backends", mode="before")
    @classmethod
    def _backends(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    def product_size(self) -> int:
        return (
            len(self.models)
            * len(self.inputs)
            * len(self.batch_sizes)
            * len(self.backends)
            * len(self.pools)
            * len(self.allocators)
        )

    def expand(self, max_jobs: int = DEFAULT_MAX_JOBS) -> list[JobSpec]:
        """Deterministic expansion (matrix order); duplicate cells collapse to one job.

        The limit counts jobs left after excludes; a product far beyond it is refused
        before any cell is built, so a matrix bomb costs nothing.
        """
        size = self.product_size()
        if size > max(100 * max_jobs, 1_000_000):
            raise MatrixError(
                f"matrix {self.name!r} has {size} cells before excludes, over the limit of "
                f"{max_jobs} jobs; split it or raise the limit with --max-jobs"
            )
        jobs: dict[str, JobSpec] = {}
        used = [False] * len(self.exclude)
        # Model and backend vary slowest, so jobs that share a loaded runner run back to back.
        cells = itertools.product(
            self.models,
            self.backends,
            self.inputs.items(),
            self.batch_sizes,
            self.pools,
            self.allocators,
        )
        for model, backend, (input_name, text), batch, pool, allocator in cells:
            job = JobSpec(
                model=model,
                task=self.task,
                input_name=input_name,
                input_text=text,
                batch_size=batch,
                batching=self.batching,
                backend=backend.name,
                backend_options=backend.options,
                pool=pool,
                allocator=allocator,
                protocol=self.protocol,
            )
            for override in self.protocol_overrides:
                if override.matches(job):
                    job = job.model_copy(update={"protocol": self._protocol_with(override)})
            hits = [i for i, ex in enumerate(self.exclude) if ex.matches(job)]
            for i in hits:
                used[i] = True
            if hits:
                continue
            jobs.setdefault(job.cell_key(), job)
            if len(jobs) > max_jobs:
                raise MatrixError(
                    f"matrix {self.name!r} expands to more than {max_jobs} jobs "
                    f"({size} cells before excludes); split it or raise the limit with --max-jobs"
                )
        unused = [i for i, hit in enumerate(used) if not hit]
        if unused:
            raise MatrixError(
                f"exclude.{unused[0]} matches no cell of matrix {self.name!r}: "
                f"{self.exclude[unused[0]].model_dump(exclude_none=True)} (a typo?)"
            )
        if not jobs:
            raise MatrixError(f"matrix {self.name!r} has no jobs left after its excludes")
        return list(jobs.values())


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err["loc"]) or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            msg = "only letters, digits, '.', '_' and '-' are allowed (1 to 100 characters)"
        elif err["type"] == "literal_error":
            msg = f"{msg}"
        lines.append(f"{path}: {msg}")
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


def load_matrix(path: str | Path, **protocol_overrides: Any) -> Matrix:
    """Read and validate a matrix file (safe YAML loader only); apply CLI protocol overrides."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MatrixError(f"cannot read matrix file {str(p)!r}: {exc.strerror}") from None
    if len(raw) > MAX_MATRIX_BYTES:
        raise MatrixError(f"{p}: matrix file is over {MAX_MATRIX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MatrixError(f"{p}: malformed YAML{at}: {problem}") from None
    overrides = {k: v for k, v in protocol_overrides.items() if v is not None}
    if overrides and isinstance(data, dict):
        protocol = data.get("protocol") or {}
        if isinstance(protocol, str):
            protocol = {"profile": protocol}
        if isinstance(protocol, dict):
            if "profile" in overrides:  # a profile from the command line replaces the file's
                protocol = {}
            data["protocol"] = {**protocol, **overrides}
    return parse_matrix(data, source=str(p))
