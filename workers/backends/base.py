"""The backend interface: a name, what it needs, and a runner that makes the timed callable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from farm.jobs import JobSpec
from farm.workers.taskcalls import model_text


def call_inputs(spec: JobSpec, tokenizer: Any = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The pipeline's positional and keyword arguments for one timed call: `pipe(*a, **kw)`.

    batch 1 is the bare string; `sequential` hands the pipeline a list of N copies that it
    runs one by one (the blog's "sentence array"); `batched` runs them as one forward.
    question-answering passes `question=` and `context=` (N copies of each); fill-mask puts
    the tokenizer's mask token where the input says `{mask}` (workers/taskcalls.py).
    """
    n = spec.batch_size
    batch: dict[str, Any] = {"batch_size": n} if n > 1 and spec.batching == "batched" else {}
    text = model_text(spec, tokenizer)
    if spec.task == "question-answering":
        question, context = text, spec.input_context
        if n == 1:
            return (), {"question": question, "context": context}
        return (), {"question": [question] * n, "context": [context] * n, **batch}
    return (text if n == 1 else [text] * n,), batch


# What one timed call covers, per JobSpec.measure (recorded in each result's environment);
# measure `pipeline` says it per task (TIMED_TASK), `forward` is the same for every task.
TIMED = {
    "pipeline": "pipeline call: tokenise + forward + softmax/argmax post-processing",
    "forward": "model forward on pre-tokenised inputs, under no_grad (no tokenisation, no "
    "post-processing): the model calls one pipeline call makes",
}
TIMED_TASK = {
    "text-classification": TIMED["pipeline"],
    "token-classification": "pipeline call: tokenise + forward + softmax and one label per "
    "token (no aggregation, 'O' tokens dropped)",
    "question-answering": "pipeline call (question=, context=): tokenise the pair + forward + "
    "the best answer span from the start/end logits",
    "feature-extraction": "embedding call: tokenise + forward + mean pooling of the last "
    "hidden state over the attention mask (sentence-transformers' pooling, no normalisation)",
    "fill-mask": "pipeline call: tokenise (the mask token in place of {mask}) + forward + "
    "softmax and the top 5 tokens at each mask",
}
# text-generation's timed call (its measure is always `pipeline`).
TIMED_GENERATE = (
    "one generate call: exactly new_tokens new tokens for the batch, greedy, KV cache on, "
    "on the pre-tokenised prompt; TTFT stamped when the first new token is picked"
)


def timed(spec: JobSpec) -> str:
    """What one timed call of this job covers."""
    if spec.task == "text-generation":
        return TIMED_GENERATE
    return TIMED["forward"] if spec.measure == "forward" else TIMED_TASK[spec.task]


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
