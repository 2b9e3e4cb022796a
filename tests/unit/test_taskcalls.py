"""The encoder tasks' calls (workers/taskcalls.py, workers/backends/base.py): what a timed
call hands the pipeline per task, the mask placeholder, the tokens counted, what a timed call
covers, and what the output check reads back from a model call."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from farm.jobs import JobSpec, ModelSpec
from farm.workers.backends.base import TIMED, TIMED_GENERATE, TIMED_TASK, call_inputs, timed
from farm.workers.taskcalls import model_text, task_tokens

QUESTION = "What does Farm measure?"
CONTEXT = "Farm measures transformer inference on CPUs."
TOKENIZER = SimpleNamespace(mask_token="[MASK]")


def job(task: str, text: str = "Paris is the {mask} of France.", **changes: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "model": ModelSpec(name="bert-base-uncased", layers=1), "task": task,
        "input_name": "in", "input_text": text, "batch_size": 1, "backend": "pytorch",
        "pool": "p", **changes,
    }  # fmt: skip
    return JobSpec(**fields)


def qa(**changes: Any) -> JobSpec:
    return job("question-answering", QUESTION, input_context=CONTEXT, **changes)


def test_question_answering_passes_question_and_context() -> None:
    assert call_inputs(qa()) == ((), {"question": QUESTION, "context": CONTEXT})
    args, kwargs = call_inputs(qa(batch_size=3))
    assert args == () and kwargs == {"question": [QUESTION] * 3, "context": [CONTEXT] * 3}
    _, batched = call_inputs(qa(batch_size=3, batching="batched"))
    assert batched == {**kwargs, "batch_size": 3}


def test_fill_mask_puts_the_tokenizers_mask_token_in_place_of_the_placeholder() -> None:
    assert call_inputs(job("fill-mask"), TOKENIZER) == (("Paris is the [MASK] of France.",), {})
    args, kwargs = call_inputs(job("fill-mask", batch_size=2, batching="batched"), TOKENIZER)
    assert args == (["Paris is the [MASK] of France."] * 2,) and kwargs == {"batch_size": 2}
    roberta = SimpleNamespace(mask_token="<mask>")
    assert model_text(job("fill-mask", "{mask} and {mask}"), roberta) == "<mask> and <mask>"


def test_a_fill_mask_input_without_the_placeholder_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match=r"input 'in' has no \{mask\} placeholder") as err:
        call_inputs(job("fill-mask", "Paris is the capital of France."), TOKENIZER)
    assert "\n" not in str(err.value) and "Paris is the {mask} of France" in str(err.value)


def test_a_tokenizer_without_a_mask_token_cannot_fill_a_mask() -> None:
    with pytest.raises(ValueError, match=r"tokenizer of bert-base-uncased\[1L\] has no mask"):
        model_text(job("fill-mask"), SimpleNamespace(mask_token=None))


@pytest.mark.parametrize("task", ["token-classification", "feature-extraction"])
def test_other_tasks_read_the_input_as_it_is(task: str) -> None:
    assert call_inputs(job(task, "{mask} stays"), TOKENIZER) == (("{mask} stays",), {})


class WordTokenizer:
    """One token per word; the pair's words follow the text's."""

    mask_token = "[MASK]"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, text: str, pair: str | None = None) -> dict[str, list[str]]:
        self.seen.append(text)
        return {"input_ids": text.split() + (pair or "").split()}


def test_question_answering_counts_the_question_and_its_context() -> None:
    assert task_tokens(WordTokenizer(), qa()) == len(QUESTION.split()) + len(CONTEXT.split())


def test_fill_mask_counts_the_mask_token_not_the_placeholder() -> None:
    tokenizer = WordTokenizer()
    assert task_tokens(tokenizer, job("fill-mask", "a {mask} b")) == 3
    assert tokenizer.seen[-1] == "a [MASK] b"


def test_what_a_timed_call_covers_is_said_per_task() -> None:
    assert timed(job("text-classification", "x")) == TIMED["pipeline"]
    assert "mean pooling" in timed(job("feature-extraction", "x"))
    assert "{mask}" in timed(job("fill-mask")) and "question=" in timed(qa())
    assert timed(job("token-classification", "x", measure="forward")) == TIMED["forward"]
    assert set(TIMED_TASK) == {"text-classification", "token-classification",
                               "question-answering", "feature-extraction", "fill-mask"}  # fmt: skip
    generation = job("text-generation", "x", new_tokens=4)
    assert timed(generation) == TIMED_GENERATE


# --- what the check reads from a model call (torch) -----------------------------------


def test_mean_pooling_skips_padding_as_sentence_transformers_does() -> None:
    torch = pytest.importorskip("torch")
    from farm.workers.taskcalls import mean_pool

    hidden = torch.arange(24, dtype=torch.bfloat16).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    pooled = mean_pool(hidden, mask)
    assert pooled.dtype == torch.float32
    assert torch.equal(pooled[0], hidden[0].float().mean(0))
    assert torch.equal(pooled[1], hidden[1, :2].float().mean(0))  # the pad row is left out


def test_readers_give_one_row_per_text_of_the_tasks_outputs() -> None:
    torch = pytest.importorskip("torch")
    from transformers.modeling_outputs import MaskedLMOutput, QuestionAnsweringModelOutput

    from farm.workers.taskcalls import output_reader

    ids = torch.tensor([[101, 7, 103, 102], [101, 103, 7, 102]])
    kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    logits = torch.randn(2, 4, 11)
    at_masks = output_reader("fill-mask", SimpleNamespace(mask_token_id=103))
    got = at_masks(kw, MaskedLMOutput(logits=logits))
    assert got.shape == (2, 1, 11)
    assert np.array_equal(got[0, 0], logits[0, 2].numpy())
    assert np.array_equal(got[1, 0], logits[1, 1].numpy())
    start, end = torch.randn(2, 4), torch.randn(2, 4)
    qa_out = QuestionAnsweringModelOutput(start_logits=start, end_logits=end)
    spans = output_reader("question-answering", None)(kw, qa_out)
    assert spans.shape == (2, 2, 4) and np.array_equal(spans[:, 1], end.numpy())
    hidden = torch.randn(2, 4, 8)
    pooled = output_reader("feature-extraction", None)(kw, {"last_hidden_state": hidden})
    assert np.allclose(pooled, hidden.mean(1).numpy(), atol=1e-6)


def test_a_traced_modules_tuple_or_dict_maps_onto_the_tasks_output() -> None:
    torch = pytest.importorskip("torch")
    from transformers.modeling_outputs import BaseModelOutput, QuestionAnsweringModelOutput

    from farm.workers.taskcalls import output_mapper

    start, end = torch.zeros(1, 3), torch.ones(1, 3)
    as_qa = output_mapper("question-answering")
    for out in ((start, end), {"end_logits": end, "start_logits": start}):
        mapped = as_qa(out)
        assert isinstance(mapped, QuestionAnsweringModelOutput)
        assert mapped["start_logits"] is start and mapped["end_logits"] is end
    hidden, pooler = torch.zeros(1, 3, 4), torch.zeros(1, 4)
    features = output_mapper("feature-extraction")((hidden, pooler))
    assert isinstance(features, BaseModelOutput) and features[0] is hidden
    already = QuestionAnsweringModelOutput(start_logits=start, end_logits=end)
    assert as_qa(already) is already


# --- the class table (workers/taskmodels.py) -------------------------------------------


def test_every_encoder_task_has_its_class_in_each_path() -> None:
    from farm.replicas import ENCODER_LABELS, ENCODER_TASKS
    from farm.workers.taskmodels import TASK_CLASSES, head_labels, task_classes

    assert set(TASK_CLASSES) == set(ENCODER_TASKS)
    assert task_classes("question-answering") == (
        "AutoModelForQuestionAnswering", "OVModelForQuestionAnswering",
        "IPEXModelForQuestionAnswering")  # fmt: skip
    assert task_classes("feature-extraction").optimum_ipex == "IPEXModel"
    ner = head_labels("dslim/bert-base-NER-uncased", "token-classification")
    assert ner["id2label"] == ENCODER_LABELS["dslim/bert-base-NER-uncased"]
    assert ner["num_labels"] == 9 and ner["label2id"]["B-LOC"] == 7
    assert head_labels("bert-base-uncased", "text-classification")["num_labels"] == 2
    assert head_labels("bert-base-uncased", "fill-mask") == {}


def test_a_task_without_an_encoder_class_is_one_line() -> None:
    from farm.errors import ModelResolutionError
    from farm.workers.taskmodels import task_classes

    with pytest.raises(ModelResolutionError, match="'translation' is not an encoder task"):
        task_classes("translation")
