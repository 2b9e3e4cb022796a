"""The output check of the encoder tasks beyond classification, outside the timing: the
backend against fp32 eager on what the task's model gives (workers/taskcalls.py
output_reader), both inside one pipeline call of the job (same tokenizer, padding, batch
size and batching), row for row.

Judged (farm/verdict.py): token-classification's per-token logits, question-answering's
start and end logits and fill-mask's logits at the mask positions within OUTPUT_TOLERANCE;
feature-extraction's pooled embeddings at a cosine similarity of at least COSINE_MIN per row.
Reported beside, not judged (random weights flip discrete outputs on rounding): label
agreement per token, answer span agreement (argmax start and end), top-1 token agreement at
the masks. The fp32 eager reference is computed once per worker, as classification's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from farm.jobs import JobSpec
from farm.verdict import COSINE_MIN, OUTPUT_TOLERANCE
from farm.workers.backends.base import Runner
from farm.workers.check import FORWARD, REFERENCE, SAME_COMPUTATION, reference_key

Row = npt.NDArray[np.float64]
COMPARES = {
    "token-classification": "per-token logits of every text",
    "question-answering": "start and end logits of every token of every text",
    "fill-mask": "logits over the vocabulary at each mask position of every text",
    "feature-extraction": "mean-pooled embeddings: cosine similarity per text",
}


def task_check(references: dict[str, Any], runner: Runner, spec: JobSpec) -> dict[str, Any]:
    """The check recorded with a result of a task in COMPARES; `references` caches fp32
    eager's outputs by reference key."""
    logits = getattr(runner, "logits", None)
    reference = getattr(runner, "reference_logits", None)
    if logits is None or reference is None:
        return {"status": "unavailable", "reason": f"backend {spec.backend} exposes no outputs"}
    key = "task:" + reference_key(runner, spec)
    if key not in references:
        references[key] = rows(reference(spec))
    ref: list[Row] = references[key]
    got = rows(logits(spec))
    same = bool(getattr(runner, "reference_is_backend", False))
    check: dict[str, Any] = {
        "status": "checked",
        "reference": REFERENCE,
        "logits": SAME_COMPUTATION if same else FORWARD,
        "compares": COMPARES[spec.task],
    }
    got_shapes, ref_shapes = [g.shape for g in got], [r.shape for r in ref]
    if got_shapes != ref_shapes:
        return {**check, "status": "mismatch", "reason": (
            f"the backend's outputs have {len(got)} rows of shapes {sorted(set(got_shapes))} "
            f"and the reference's {len(ref)} of {sorted(set(ref_shapes))}")}  # fmt: skip
    check["rows_checked"] = len(ref)
    return {**check, **compare(spec.task, got, ref)}


def rows(outputs: Any) -> list[Row]:
    """One float64 array per row, from an array (rows, ...) or a list of rows."""
    return [np.asarray(row, dtype=np.float64) for row in outputs]


def compare(task: str, got: list[Row], ref: list[Row]) -> dict[str, Any]:
    """The task's judged number, where it is worst, and the agreement reported beside it."""
    if task == "feature-extraction":
        cosines = np.array([cosine(g, r) for g, r in zip(got, ref, strict=True)])
        diffs = np.array([np.abs(g - r).max() for g, r in zip(got, ref, strict=True)])
        return {"cosine_min": COSINE_MIN, "min_cosine": float(cosines.min()),
                "worst_row": int(cosines.argmin()),
                "max_abs_embedding_diff": float(diffs.max())}  # fmt: skip
    diff = np.array([np.abs(g - r).max() for g, r in zip(got, ref, strict=True)])
    found: dict[str, Any] = {
        "tolerance": OUTPUT_TOLERANCE,
        "max_abs_logit_diff": float(diff.max()),
        "worst_row": int(diff.argmax()),
    }
    # Last axis: labels (token-classification), tokens (QA's start and end), vocabulary.
    picks = [(g.argmax(-1), r.argmax(-1)) for g, r in zip(got, ref, strict=True)]
    if task == "question-answering":  # a span agrees when its start and its end both do
        found["span_agreement"] = float(np.mean([(a == b).all() for a, b in picks]))
        return found
    same = np.concatenate([(a == b).reshape(-1) for a, b in picks])
    counted = "tokens_checked" if task == "token-classification" else "masks_checked"
    agreement = "label_agreement" if task == "token-classification" else "top1_agreement"
    return {**found, counted: int(same.size), agreement: float(same.mean())}


def cosine(a: Row, b: Row) -> float:
    """Cosine similarity of two vectors (1.0 for two zero vectors: nothing differs)."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)
