"""The backend interface: a name, what it needs, and a runner that makes the timed callable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from farm.jobs import JobSpec


def call_inputs(spec: JobSpec) -> tuple[str | list[str], dict[str, Any]]:
    """The pipeline's argument for one timed call, and its keyword arguments.

    batch 1 is the bare string; `sequential` hands the pipeline a list of N copies that it
    runs one by one (the blog's "sentence array"); `batched` runs them as one forward.
    """
    if spec.batch_size == 1:
        return spec.input_text, {}
    texts = [spec.input_text] * spec.batch_size
    if spec.batching == "batched":
        return texts, {"batch_size": spec.batch_size}
    return texts, {}


# What one timed call covers, per JobSpec.measure (recorded in each result's environment).
TIMED = {
    "pipeline": "pipeline call: tokenise + forward + softmax/argmax post-processing",
    "forward": "model forward on pre-tokenised inputs, under no_grad (no tokenisation, no "
    "post-processing): the model calls one pipeline call makes",
}
# text-generation's timed call (its measure is always `pipeline`).
TIMED_GENERATE = (
    "one generate call: exactly new_tokens new tokens for the batch, greedy, KV cache on, "
    "on the pre-tokenised prompt; TTFT stamped when the first new token is picked"
)


class Runner(ABC):
    """A loaded, optimised model, reusable across jobs with the same runner key."""

    identity: dict[str, Any]
    tokenizer: Any

    @abstractmethod
    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        """Return the zero-argument callable that one timed call runs (measure: pipeline)."""

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        """The same for measure `forward`: the model calls of one pipeline call of the job
        (one per text for sequential, one of N for batched) on inputs tokenised here. Every
        backend of Farm's has one; a runner without it refuses forward jobs by name."""
        raise NotImplementedError(f"{type(self).__name__} has no forward measure")

    def bind_measure(self, spec: JobSpec) -> Callable[[], Any]:
        """The callable the job's measure asks for."""
        return self.bind_forward(spec) if spec.measure == "forward" else self.bind(spec)


class Backend(ABC):
    name: str
    # Import names this backend needs; a worker can run it only where all import.
    requires: tuple[str, ...] = ()
    install_hint: str = ""

    @abstractmethod
    def load(self, spec: JobSpec) -> Runner:
        """Resolve the model and apply the backend's optimisation (setup, not timed)."""
