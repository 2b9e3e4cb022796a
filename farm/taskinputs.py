"""A matrix's `inputs` for each task: plain texts, or a question with its context.

question-answering asks a question about a context, so each of its inputs is a
`{question, context}` mapping; every other task takes plain texts, and fill-mask's carry the
`{mask}` placeholder exactly once (the worker puts the model's mask token there). The shape
of each input is checked as it is read (one line naming the input and the fix), and what the
task asks of it once the task is known (`inputs_refusal`), before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

# Where a fill-mask input has its masked word; the worker puts the tokenizer's mask token
# there, so one matrix serves models whose mask tokens differ ([MASK], <mask>).
MASK = "{mask}"
# BERT-style models see 512 tokens; 20,000 characters is thousands of tokens already, and
# every job stores its input, so a longer text is a mistake (or an attack on the database).
MAX_INPUT_CHARS = 20_000
QA_EXAMPLE = '{question: "Who wrote it?", context: "It was written by ..."}'
_QA_FIELDS = ("question", "context")


class QAInput(BaseModel):
    """A question-answering input: the question (a job's input_text) and its context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    context: str


def _text(value: str, what: str = "the text") -> str:
    """A non-empty text of at most MAX_INPUT_CHARS; `what` names it inside an input."""
    if not value:
        return f"{what} is empty; write one"
    if len(value) > MAX_INPUT_CHARS:
        return (
            f"{what} has {len(value)} characters, over the limit of {MAX_INPUT_CHARS} "
            "(BERT-style models see at most 512 tokens)"
        )
    return ""


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _shape(value: Any) -> Any:
    """An input as read: a text, or a {question, context} mapping of two texts."""
    if isinstance(value, str):
        problem = _text(value)
    elif isinstance(value, Mapping):
        problem = _pair_problem(value)
    else:
        problem = f"a text (or, for question-answering, {QA_EXAMPLE}), not {_kind(value)}"
    if problem:
        raise ValueError(problem)
    return value


def _pair_problem(pair: Mapping[Any, Any]) -> str:
    extra = [k for k in pair if k not in _QA_FIELDS]
    if extra:
        return (
            f"{extra[0]!r} is no field of a question-answering input; it has question and "
            f"context only: {QA_EXAMPLE}"
        )
    for field in _QA_FIELDS:
        if field not in pair:
            return f"{field} is missing; a question-answering input has both: {QA_EXAMPLE}"
        if not isinstance(pair[field], str):
            return f"{field} is a text, not {_kind(pair[field])}"
        problem = _text(pair[field], field)
        if problem:
            return problem
    return ""


# One input of a matrix's `inputs`, whatever the task; `inputs_refusal` checks it fits it.
TaskInput = Annotated[str | QAInput, BeforeValidator(_shape)]


def inputs_refusal(task: str, inputs: Mapping[str, str | QAInput]) -> str | None:
    """One line saying which input does not fit `task` and how to fix it, or None."""
    for name, value in inputs.items():
        where = f"inputs.{name}"
        if task == "question-answering":
            if not isinstance(value, QAInput):
                return (
                    f"{where}: question-answering asks a question about a context: give "
                    f"{name}: {QA_EXAMPLE}"
                )
            continue
        if isinstance(value, QAInput):
            return (
                f"{where}: a {{question, context}} input is for task question-answering; "
                f"task {task} takes a text"
            )
        if task == "fill-mask":
            count = value.count(MASK)
            if count != 1:
                return (
                    f"{where}: fill-mask needs the placeholder {MASK} exactly once in each "
                    f'input (this one has {count}), e.g. "Paris is the {MASK} of France." '
                    "(Farm puts the model's mask token there)"
                )
    return None


def input_entries(inputs: Mapping[str, str | QAInput]) -> list[tuple[str, str, str | None]]:
    """(name, text, context) of each input: a QA input's text is its question."""
    return [
        (name, value.question, value.context) if isinstance(value, QAInput) else (name, value, None)
        for name, value in inputs.items()
    ]
