"""workers/taskcheck.py on runners of known outputs (no model): each task's judged number
(per-token, start/end or mask logits; embeddings' cosine), its agreement reported beside it,
a shape other than the reference's, and the verdict's reasons (farm/verdict.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from farm.jobs import JobSpec, ModelSpec
from farm.verdict import COSINE_MIN, OUTPUT_TOLERANCE, check_reasons
from farm.workers.backends.base import Runner
from farm.workers.taskcheck import cosine, task_check

RNG = np.random.default_rng(0)


def spec(task: str, batch: int = 4) -> JobSpec:
    extra: dict[str, Any] = {"input_context": "ctx"} if task == "question-answering" else {}
    return JobSpec(model=ModelSpec(name="m"), task=task, input_name="in", input_text="a {mask}",
                   batch_size=batch, backend="fake", pool="p", **extra)  # fmt: skip


class Fake(Runner):
    """Outputs and reference outputs as given; counts the reference computations."""

    def __init__(self, got: Any, ref: Any) -> None:
        self.identity = {"weights_sha256": "w", "tokenizer": "t"}
        self.tokenizer = None
        self.got, self.ref, self.references_made = got, ref, 0

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        raise NotImplementedError

    def logits(self, spec: JobSpec) -> Any:
        return self.got

    def reference_logits(self, spec: JobSpec) -> Any:
        self.references_made += 1
        return self.ref


def check(task: str, got: Any, ref: Any, references: dict[str, Any] | None = None) -> Any:
    return task_check({} if references is None else references, Fake(got, ref), spec(task))


def test_token_classification_compares_every_tokens_logits() -> None:
    ref = RNG.normal(size=(4, 6, 9))
    got = ref.copy()
    got[2, 3] += 0.2  # row 2, token 3: a real difference, and its label flips
    got[2, 3, ref[2, 3].argmin()] += 10
    result = check("token-classification", got, ref)
    assert result["status"] == "checked" and result["rows_checked"] == 4
    assert result["max_abs_logit_diff"] == pytest.approx(10.2) and result["worst_row"] == 2
    assert result["tokens_checked"] == 24 and result["label_agreement"] == pytest.approx(23 / 24)
    (reason,) = check_reasons(result)
    assert reason.startswith("output check: logits differ from fp32 eager by up to 10.2 ")
    assert "at row 2 of 4" in reason and "labels agree on 96%" in reason


def test_question_answering_reports_span_agreement() -> None:
    ref = RNG.normal(size=(4, 2, 12))
    got = ref + 0.01
    result = check("question-answering", got, ref)
    assert result["max_abs_logit_diff"] == pytest.approx(0.01)
    assert result["span_agreement"] == 1.0 and check_reasons(result) == []
    got[1, 1, ref[1, 1].argmin()] += 50  # row 1's end moves: its span no longer agrees
    moved = check("question-answering", got, ref)
    assert moved["span_agreement"] == 0.75
    assert "answer spans agree on 75%" in check_reasons(moved)[0]


def test_fill_mask_compares_the_logits_at_the_masks() -> None:
    ref = RNG.normal(size=(4, 2, 50))  # two masks per text
    got = ref + OUTPUT_TOLERANCE / 2
    result = check("fill-mask", got, ref)
    assert result["masks_checked"] == 8 and result["top1_agreement"] == 1.0
    assert result["tolerance"] == OUTPUT_TOLERANCE and check_reasons(result) == []
    got[3, 0, ref[3, 0].argmin()] += 100
    (reason,) = check_reasons(check("fill-mask", got, ref))
    assert "top-1 tokens at the masks agree on 88%" in reason


def test_feature_extraction_is_judged_on_cosine_per_row() -> None:
    ref = RNG.normal(size=(4, 16))
    scaled = ref * 3.0  # same direction: cosine 1, however far the numbers are
    result = check("feature-extraction", scaled, ref)
    assert result["min_cosine"] == pytest.approx(1.0) and result["cosine_min"] == COSINE_MIN
    assert result["max_abs_embedding_diff"] > 1 and "max_abs_logit_diff" not in result
    assert check_reasons(result) == []
    turned = ref.copy()
    turned[3] = -ref[3]
    bad = check("feature-extraction", turned, ref)
    assert bad["worst_row"] == 3 and bad["min_cosine"] == pytest.approx(-1.0)
    (reason,) = check_reasons(bad)
    assert reason == (
        f"output check: embeddings' cosine similarity to fp32 eager's is down to -1.0000 "
        f"(at least {COSINE_MIN}) at row 3 of 4"
    )


def test_cosine_of_zero_vectors() -> None:
    zero = np.zeros(3)
    assert cosine(zero, zero) == 1.0 and cosine(zero, np.ones(3)) == 0.0


def test_rows_of_other_shapes_are_a_failed_check_never_a_truncation() -> None:
    ref = RNG.normal(size=(4, 6, 9))
    result = check("token-classification", ref[:3], ref)
    assert result["status"] == "mismatch" and "3 rows" in result["reason"]
    assert "4 of [(6, 9)]" in result["reason"]
    assert check_reasons(result) == [f"output check: {result['reason']}"]


def test_rows_may_differ_in_shape_from_call_to_call() -> None:
    """A long QA context's chunks: a list of rows, each compared with its own reference."""
    ref = [RNG.normal(size=(2, 384)), RNG.normal(size=(2, 90))]
    result = check("question-answering", [r + 0.001 for r in ref], ref)
    assert result["status"] == "checked" and result["rows_checked"] == 2


def test_the_reference_is_made_once_per_worker() -> None:
    references: dict[str, Any] = {}
    runner = Fake(np.zeros((4, 8)), np.zeros((4, 8)))
    for _ in range(2):
        task_check(references, runner, spec("feature-extraction"))
    assert runner.references_made == 1
    task_check(references, runner, spec("feature-extraction").model_copy(
        update={"input_text": "other"}))  # fmt: skip
    assert runner.references_made == 2


def test_a_qa_reference_depends_on_the_context() -> None:
    references: dict[str, Any] = {}
    runner = Fake(np.zeros((4, 2, 5)), np.zeros((4, 2, 5)))
    task_check(references, runner, spec("question-answering"))
    other = spec("question-answering").model_copy(update={"input_context": "another"})
    task_check(references, runner, other)
    assert runner.references_made == 2
