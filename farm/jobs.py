"""A job: one cell of a matrix, the unit a worker measures. Pure data, JSON round-trip."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from farm.protocol import Protocol
from farm.stacks import Allocator, queue_for

# Throughput mode: at most this many pinned copies of a cell, each on at most this many CPUs.
MAX_INSTANCES = 256
MAX_CORES_PER_INSTANCE = 1024

__all__ = ["MEASURES", "TASKS", "JobSpec", "Measure", "ModelSpec", "Task", "direct_queue",
           "queue_for"]  # fmt: skip

# What one timed call is: the whole pipeline call (tokenise, forward, post-process: what the
# blog timed), or only the model call on pre-tokenised inputs (what optimum-benchmark times).
MEASURES = ("pipeline", "forward")
Measure = Literal["pipeline", "forward"]
# What a job's model does (the matrix's top-level `task:`); one per matrix.
TASKS = ("text-classification", "token-classification", "question-answering",
         "feature-extraction", "fill-mask", "text-generation")  # fmt: skip
Task = Literal["text-classification", "token-classification", "question-answering",
               "feature-extraction", "fill-mask", "text-generation"]  # fmt: skip
# Task fields a job leaves out of its JSON when unset, so a classification spec and its cell
# key are what they were before other tasks existed.
TASK_FIELDS = ("new_tokens", "prompt_tokens", "input_context")


class ModelSpec(BaseModel):
    """A model as named on the hub (or a local path); resolved offline by the worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=300)
    # Replicas only: build the published architecture with this many layers (CI's tiny models).
    layers: StrictInt | None = Field(default=None, ge=1, le=96)
    trust_remote_code: StrictBool = False

    @field_validator("name")
    @classmethod
    def _no_url(cls, value: str) -> str:
        if "://" in value or value.startswith(("http:", "https:")):
            raise ValueError("a model is a hub name or a local path, not a URL")
        if any(ord(c) < 32 for c in value):
            raise ValueError("control characters are not allowed in a model name")
        return value

    @property
    def label(self) -> str:
        return self.name if self.layers is None else f"{self.name}[{self.layers}L]"


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelSpec
    task: Task = "text-classification"
    input_name: str
    input_text: str
    batch_size: int = Field(ge=1)
    batching: Literal["sequential", "batched"] = "sequential"
    backend: str
    backend_options: dict[str, Any] = Field(default_factory=dict)
    pool: str
    allocator: Allocator = "default"  # preloaded by the worker
    stack: str = "main"  # the software stack (Python environment) that runs it
    measure: Measure = "pipeline"  # what a timed call covers (MEASURES)
    # Set only by `farm calibrate`: the same cell again, on one named worker.
    repeat: int = Field(default=0, ge=0, le=1000)
    worker: str | None = None
    protocol: Protocol = Field(default_factory=Protocol)
    # Throughput mode (farm.workers.instances): this many copies of the cell measured at
    # once, each pinned to its own `cores_per_instance` CPUs. None: one copy on the
    # worker's own pinning and threads (the latency mode).
    instances: StrictInt = Field(default=1, ge=1, le=MAX_INSTANCES)
    cores_per_instance: StrictInt | None = Field(default=None, ge=1, le=MAX_CORES_PER_INSTANCE)
    # text-generation: new tokens of one `generate` call, and the synthetic prompt's length
    # in tokens (None: `input_text` is the prompt).
    new_tokens: StrictInt | None = Field(default=None, ge=1)
    prompt_tokens: StrictInt | None = Field(default=None, ge=1)
    # question-answering: the context the question (`input_text`) is asked about.
    input_context: str | None = None

    @model_validator(mode="after")
    def _layout(self) -> JobSpec:
        if self.instances > 1 and self.cores_per_instance is None:
            raise ValueError(
                "cores_per_instance is required when instances > 1 "
                "(how many CPUs each copy is pinned to)"
            )
        if (self.task == "text-generation") != (self.new_tokens is not None):
            raise ValueError("new_tokens is required for text-generation and only for it")
        if (self.task == "question-answering") != (self.input_context is not None):
            raise ValueError("input_context is required for question-answering and only for it")
        return self

    @property
    def cpus_needed(self) -> int:
        """CPUs the job must own at once: instances × cores_per_instance (0: any worker)."""
        return self.instances * (self.cores_per_instance or 0)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=self._unset())

    def json_text(self) -> str:
        """`to_json` as JSON text, written by pydantic (a bulk submit's COPY)."""
        return self.model_dump_json(exclude=self._unset())

    def _unset(self) -> set[str]:
        # A classification spec's JSON, and so its cell key, stays as it was before tasks.
        return {f for f in TASK_FIELDS if getattr(self, f) is None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls.model_validate(data)

    def cell_key(self) -> str:
        """Stable identity of the cell (everything but nothing else), for de-duplication."""
        return self._cell_key

    @cached_property
    def _cell_key(self) -> str:
        # Once per spec: expanding a matrix needs it, and so does storing its jobs.
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, whose fields may differ: its cell key is computed afresh."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_cell_key", None)
        return copied

    @property
    def queue(self) -> str:
        if self.worker:
            return direct_queue(self.worker)
        return queue_for(self.pool, self.allocator, self.stack, self.cpus_needed)

    def runner_key(self) -> str:
        """Jobs with the same key can reuse one loaded model + backend runner."""
        blob = json.dumps(
            [self.model.model_dump(), self.task, self.backend, self.backend_options],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def direct_queue(worker: str) -> str:
    """Every worker also serves a queue of its own, so a job can target one host."""
    return f"farm.worker.{worker}"
