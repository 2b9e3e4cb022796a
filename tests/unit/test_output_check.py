"""workers/check.py on a runner of known logits (no model): every row is compared, a shape
other than the reference's fails the check, the timed call's labels and scores are held to
the reference's, and the reference is cached per everything that shapes it."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from farm.jobs import JobSpec, ModelSpec
from farm.verdict import check_reasons
from farm.workers.backends.base import Runner
from farm.workers.check import output_check, postprocess, reference_key

LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
REF = np.array([[0.1, 0.6]] * 8)  # POSITIVE, p = 0.622


def spec(batch: int = 8, batching: str = "sequential", text: str = "nice shoes") -> JobSpec:
    return JobSpec(model=ModelSpec(name="m"), input_name="short", input_text=text,
                   batch_size=batch, batching=batching, backend="fake", pool="p")  # fmt: skip


class Fake(Runner):
    """Logits and reference logits as given; counts the reference computations."""

    def __init__(self, got: Any, ref: Any = REF) -> None:
        self.identity = {"weights_sha256": "w", "tokenizer": "t"}
        self.tokenizer = None
        self.config = SimpleNamespace(id2label=LABELS, problem_type=None)
        self.got, self.ref, self.references_made = np.asarray(got), np.asarray(ref), 0

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        raise NotImplementedError

    def logits(self, spec: JobSpec) -> Any:
        return self.got

    def reference_logits(self, spec: JobSpec) -> Any:
        self.references_made += 1
        return self.ref


def pipeline_output(logits: Any) -> list[dict[str, Any]]:
    scores = postprocess(SimpleNamespace(problem_type=None), np.asarray(logits, dtype=float))
    return [{"label": LABELS[int(s.argmax())], "score": float(s.max())} for s in scores]


def check(runner: Fake, output: Any = None, job: JobSpec | None = None) -> dict[str, Any]:
    output = pipeline_output(runner.got) if output is None else output
    return output_check({}, runner, job or spec(), lambda: output)


def test_every_row_is_compared() -> None:
    got = REF.copy()
    got[5, 0] += 0.3
    result = check(Fake(got))
    assert result["rows_checked"] == 8 and result["worst_row"] == 5
    assert result["max_abs_logit_diff"] == pytest.approx(0.3)
    assert result["timed_output"]["rows_checked"] == 8
    assert check_reasons(result) == [
        "output check: logits differ from fp32 eager by up to 0.3 (tolerance 0.05) at row 5 "
        "of 8; labels agree on 100%",
        "output check: the timed call's labels and scores differ from fp32 eager's by up to "
        "0.0726 (tolerance 0.05) at row 5 of 8; labels agree on 100%",
    ]


@pytest.mark.parametrize(
    ("got", "ref"),
    [(REF[:1], REF), (REF, REF[:1]), (REF[:, :1], REF)],
    ids=["fewer-rows", "reference-of-another-batch", "fewer-labels"],
)
def test_a_shape_other_than_the_references_fails_the_check(got: Any, ref: Any) -> None:
    result = check(Fake(got, ref), output=[])
    assert result["status"] == "mismatch" and "rows_checked" not in result
    (reason,) = check_reasons(result)
    assert reason.startswith("output check: the backend's logits have shape ")
    assert reason.endswith("for 8 texts")


@pytest.mark.parametrize(
    ("output", "says"),
    [
        (pipeline_output(REF[:7]), "returned a list of 7 dict, not one label and score for each"),
        (None, "returned a NoneType"),
        ([{"label": "LABEL_1", "score": 0.6}] * 8, "labels the model lacks: ['LABEL_1']"),
    ],
    ids=["fewer-rows", "nothing", "unknown-label"],
)
def test_a_timed_output_of_another_shape_fails_the_check(output: Any, says: str) -> None:
    result = output_check({}, Fake(REF), spec(), lambda: output)
    assert result["timed_output"]["status"] == "mismatch"
    (reason,) = check_reasons(result)
    assert says in reason, reason


def test_a_wrong_label_fails_unless_the_reference_is_a_near_tie() -> None:
    flipped = [{"label": "NEGATIVE", "score": 0.622}] * 8
    assert check_reasons(check(Fake(REF), flipped))  # p(NEGATIVE) is 0.378, not 0.622
    tie = np.array([[0.3, 0.31]] * 8)
    near = [{"label": "NEGATIVE", "score": 0.4975}] * 8
    result = check(Fake(tie, tie), near)
    assert result["timed_output"]["label_agreement"] == 0.0
    assert check_reasons(result) == []  # bf16 may flip a near-tie: not a broken backend


def test_the_reference_is_made_once_per_shape_of_the_call() -> None:
    runner, references = Fake(REF[:1], REF[:1]), {}
    for _ in range(2):
        output_check(references, runner, spec(1), lambda: pipeline_output(REF[:1]))
    assert runner.references_made == 1
    keys = {reference_key(runner, s) for s in (spec(1), spec(8), spec(8, "batched"),
                                                  spec(1, text="other"))}  # fmt: skip
    assert len(keys) == 4
    other_weights = Fake(REF)
    other_weights.identity = {**runner.identity, "weights_sha256": "v"}
    assert reference_key(other_weights, spec(1)) != reference_key(runner, spec(1))


def test_the_check_says_when_the_backend_is_the_reference() -> None:
    runner = Fake(REF)
    assert check(runner)["logits"] == "the backend's forward against fp32 eager"
    runner.reference_is_backend = True  # type: ignore[attr-defined]
    assert check(runner)["logits"].startswith("same computation as the reference")


def test_a_runner_without_logits_is_unavailable() -> None:
    class Bare(Runner):
        identity: dict[str, Any] = {}

        def bind(self, spec: JobSpec) -> Callable[[], Any]:
            raise NotImplementedError

    result = output_check({}, Bare(), spec(), lambda: None)
    assert result == {"status": "unavailable", "reason": "backend fake exposes no logits"}
    assert check_reasons(result) == []


def test_postprocess_follows_the_pipeline() -> None:
    probs = postprocess(SimpleNamespace(problem_type=None), np.array([[0.0, np.log(3.0)]]))
    assert probs == pytest.approx(np.array([[0.25, 0.75]]))
    single = postprocess(SimpleNamespace(problem_type=None), np.array([[0.0]]))
    assert single == pytest.approx(np.array([[0.5]]))  # one label: sigmoid
    regression = SimpleNamespace(problem_type="regression")
    assert postprocess(regression, np.array([[2.0, 3.0]])).tolist() == [[2.0, 3.0]]
