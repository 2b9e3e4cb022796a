"""What each task asks of a matrix: its own dimensions and inputs, and the models and
backends that can run it.

`text-classification` is the study's task; `text-generation` times one `generate` call of
exactly `new_tokens` new tokens on a prompt (an input, or a synthetic prompt of
`prompt_tokens` tokens); the encoder tasks' inputs are in farm.taskinputs. Checked at
submit, before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, StrictInt

from farm.backends import capability_refusal
from farm.replicas import decoder_positions, replica_tasks
from farm.taskinputs import QAInput, inputs_refusal

# text-generation: new tokens per `generate` call, and synthetic prompts' length, at most.
MAX_NEW_TOKENS = 4096
MAX_PROMPT_TOKENS = 32_768
# A model Farm can build offline for each task: the fix a refusal suggests.
TASK_MODELS = {
    "text-classification": "distilbert-base-uncased",
    "token-classification": "dslim/bert-base-NER-uncased",
    "question-answering": "distilbert-base-uncased-distilled-squad",
    "feature-extraction": "sentence-transformers/all-MiniLM-L6-v2",
    "fill-mask": "distilbert-base-uncased",
    "text-generation": "gpt2",
}


def _within(high: int, unit: str, what: str) -> AfterValidator:
    """1 to `high`, refused with the range (pydantic's bound alone does not say it)."""

    def check(value: int) -> int:
        if not 1 <= value <= high:
            raise ValueError(f"{value} {unit}: {what} 1 to {high} {unit}")
        return value

    return AfterValidator(check)


NewTokens = Annotated[StrictInt, _within(MAX_NEW_TOKENS, "new tokens", "a generate call makes")]
PromptTokens = Annotated[StrictInt, _within(MAX_PROMPT_TOKENS, "tokens", "a synthetic prompt has")]


def synthetic_input(tokens: int) -> tuple[str, str]:
    """The input name and stand-in text of a synthetic prompt of `tokens` tokens (the worker
    makes the prompt itself, from the model's tokenizer)."""
    return f"prompt{tokens}", f"<synthetic prompt of {tokens} tokens>"


class TaskMatrix(Protocol):
    """The matrix fields a task's rules read (farm.matrix.Matrix), read-only."""

    @property
    def task(self) -> str: ...
    @property
    def inputs(self) -> dict[str, str | QAInput] | None: ...
    @property
    def new_tokens(self) -> list[int] | None: ...
    @property
    def prompt_tokens(self) -> list[int] | None: ...
    @property
    def measure(self) -> Sequence[str]: ...
    @property
    def instances(self) -> list[int]: ...
    @property
    def backends(self) -> Sequence[Any]: ...  # entries with .name and .options
    @property
    def models(self) -> Sequence[Any]: ...  # entries with .name


def task_refusal(m: TaskMatrix) -> str | None:
    """One line saying what in the matrix its task cannot have, or None when it fits."""
    generation = m.task == "text-generation"
    if generation and m.new_tokens is None:
        return (
            "new_tokens: required for task text-generation (a list, e.g. [32, 128]: new "
            f"tokens per generate call, 1 to {MAX_NEW_TOKENS})"
        )
    for dim in ("new_tokens", "prompt_tokens"):
        if not generation and getattr(m, dim) is not None:
            return f"{dim}: applies to task text-generation only, not {m.task}"
    if m.prompt_tokens is not None and m.inputs is not None:
        return (
            "inputs: leave it out with prompt_tokens (synthetic prompts of that many tokens "
            "replace the inputs), or drop prompt_tokens to use the inputs as prompts"
        )
    if m.prompt_tokens is None and m.inputs is None:
        return "inputs: Field required"
    refusal = inputs_refusal(m.task, m.inputs or {}) or _models_refusal(m)
    if refusal is not None:
        return refusal
    if generation and "forward" in m.measure:
        return (
            "measure: forward does not apply to text-generation (a timed call is one generate "
            "call); use measure: pipeline or leave it out"
        )
    if generation and max(m.instances) > 1:
        return "instances: throughput mode does not run text-generation yet"
    for i, backend in enumerate(m.backends):
        refusal = capability_refusal(backend.name, m.task, backend.options)
        if refusal is not None:
            return f"backends.{i}: {refusal}"
    if generation:
        return _positions_refusal(m)
    return None


def _models_refusal(m: TaskMatrix) -> str | None:
    """A replica asked for a task it cannot do (Farm ships their configs, so it knows)."""
    for i, model in enumerate(m.models):
        tasks = replica_tasks(model.name)
        if tasks is not None and m.task not in tasks:
            *head, last = tasks
            can = f"{', '.join(head)} or {last}" if head else last
            return (
                f"models.{i}: {model.name} runs {can} only, not {m.task}; pick a model that "
                f"does, e.g. {TASK_MODELS[m.task]}"
            )
    return None


def _positions_refusal(m: TaskMatrix) -> str | None:
    """A replica's prompt + new tokens beyond its positions (Farm ships their configs). An
    input is counted for a `layers` replica only: surely the replica, whose byte-level
    tokenizer (farm.workers.decoders) makes one token per UTF-8 byte; a full-size name may
    resolve to a cached checkpoint with its own tokenizer, so its worker checks it."""
    new = max(m.new_tokens or [0])
    for i, model in enumerate(m.models):
        positions = decoder_positions(model.name)
        if positions is None:
            continue
        prompts = [(f"prompt_tokens {n}", n) for n in m.prompt_tokens or []]
        if model.layers is not None:
            prompts += [
                (f"input {k!r}", len(v.encode()))
                for k, v in (m.inputs or {}).items()
                if isinstance(v, str)
            ]
        for what, tokens in prompts:
            if tokens + new > positions:
                return (
                    f"models.{i}: {model.name} reads at most {positions} positions; {what} "
                    f"({tokens} tokens) and {new} new tokens do not fit (shorten the prompt "
                    "or new_tokens)"
                )
    return None
