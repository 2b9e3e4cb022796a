"""What reports say an output check measured: read from the fields' names, whatever the task
(classification's logits and timed scores, generation's tokens, embeddings' cosine, ...)."""

from __future__ import annotations

from farm.reports.checks import check_text, worst_check

CLASSIFICATION = {
    "status": "checked", "reference": "fp32 eager", "tolerance": 0.05, "rows_checked": 8,
    "label_agreement": 1.0, "max_abs_logit_diff": 0.0021, "worst_row": 3,
    "timed_output": {"status": "checked", "rows_checked": 8, "label_agreement": 0.875,
                     "max_abs_score_diff": 0.0004, "worst_row": 1},
}  # fmt: skip
GENERATION = {"status": "checked", "rows_checked": 4, "tokens_checked": 128,
              "token_agreement": 0.75, "max_abs_logit_diff": 0.013, "worst_row": 2}  # fmt: skip


def test_each_task_shows_what_its_check_measured() -> None:
    assert check_text(CLASSIFICATION) == (
        "max |logit diff| 0.0021; label agreement 100%; timed call max |score diff| 0.0004; "
        "timed call label agreement 88%"
    )
    assert check_text(GENERATION) == "max |logit diff| 0.013; token agreement 75%"
    # Fields another task records read the same way, with no change here.
    embeddings = {"status": "checked", "rows_checked": 2, "cosine_min": 0.99,
                  "min_cosine": 0.99912, "worst_row": 1, "max_abs_embedding_diff": 0.0042}
    assert check_text(embeddings) == "min cosine 0.9991; max |embedding diff| 0.0042"
    fill_mask = {"status": "checked", "max_abs_logit_diff": 0.01, "top1_agreement": 1.0}
    assert check_text(fill_mask) == "max |logit diff| 0.01; top1 agreement 100%"
    qa = {"status": "checked", "max_abs_logit_diff": 0.2, "span_agreement": 0.5}
    assert check_text(qa) == "max |logit diff| 0.2; span agreement 50%"


def test_a_check_that_did_not_pass_says_why() -> None:
    assert check_text(None) == "-"
    assert check_text({"status": "unavailable", "reason": "backend x exposes no logits"}) == (
        "unavailable: backend x exposes no logits"
    )
    mismatch = {**CLASSIFICATION, "timed_output": {"status": "mismatch", "reason": "a list"}}
    assert check_text(mismatch).endswith("; timed call mismatch: a list")


def test_a_cell_shows_the_worst_of_its_jobs() -> None:
    other = {**GENERATION, "max_abs_logit_diff": 0.002, "token_agreement": 0.5}
    worst = worst_check([GENERATION, other])
    assert worst == {"status": "checked", "max_abs_logit_diff": 0.013, "token_agreement": 0.5}
    rows = [{"status": "checked", "cosine_min": 0.99, "min_cosine": m} for m in (0.999, 0.995)]
    cosine = worst_check(rows)
    assert cosine == {"status": "checked", "min_cosine": 0.995}  # not the threshold
    timed = worst_check([CLASSIFICATION, {**CLASSIFICATION, "timed_output": {
        "status": "checked", "label_agreement": 1.0, "max_abs_score_diff": 0.01}}])  # fmt: skip
    assert timed is not None and timed["timed_output"] == {
        "status": "checked", "label_agreement": 0.875, "max_abs_score_diff": 0.01}
    # Any job without a passed check decides: the cell's check is that one.
    assert worst_check([GENERATION, None]) == {"status": "none recorded"}
    failed = {"status": "mismatch", "reason": "shapes"}
    assert worst_check([failed, GENERATION]) == failed
    assert worst_check([]) is None
