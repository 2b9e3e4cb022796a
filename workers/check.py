"""The output check of a job, outside the timing: the backend against fp32 eager.

Two comparisons, each over every row of the job's call (one row per text):
- logits: the backend's forward against the fp32 eager model's, both inside one pipeline call
  of the job (same tokenizer, padding, batch size and batching). For `pytorch` fp32 the
  backend's forward *is* fp32 eager, so this part is equal by construction, and says so;
- the timed output: the labels and scores that the timed callable itself returns (one more
  call after the timed phase) against those the pipeline's post-processing gives for the
  reference logits. A score is compared with the reference's probability *of the label the
  output names*, so a wrong label fails unless the reference itself is a near-tie.

A reference is computed once per worker for everything that shapes it (model and weights,
tokenizer, task, input, batch size, batching), not once per job. A row count or shape that
differs from the reference's is a failed check, never a truncation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.jobs import JobSpec
from farm.verdict import OUTPUT_TOLERANCE
from farm.workers.backends.base import Runner

Array = npt.NDArray[np.float64]
REFERENCE = "fp32 eager: same weights, tokenizer, task, input, batch size and batching"
SAME_COMPUTATION = (
    "same computation as the reference (this backend's forward is fp32 eager): equal by "
    "construction; the timed output is the check that counts"
)
FORWARD = "the backend's forward against fp32 eager"
TIMED_OUTPUT = (
    "labels and scores of one more call of the timed callable, against the pipeline's "
    "post-processing of the reference logits"
)


def reference_key(runner: Runner, spec: JobSpec) -> str:
    """Everything the reference logits depend on."""
    identity = runner.identity
    shaping = [spec.model.model_dump(), identity.get("weights_sha256"), identity.get("tokenizer"),
               spec.task, spec.input_text, spec.batch_size, spec.batching]  # fmt: skip
    if spec.input_context is not None:  # question-answering: the question's context
        shaping.append(spec.input_context)
    blob = json.dumps(shaping, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def output_check(
    references: dict[str, Any], runner: Runner, spec: JobSpec, timed: Callable[[], Any]
) -> dict[str, Any]:
    """The check recorded with the result; `references` caches fp32 eager logits by
    reference_key, `timed` is the callable the job timed."""
    logits = getattr(runner, "logits", None)
    reference = getattr(runner, "reference_logits", None)
    if logits is None or reference is None:
        return {"status": "unavailable", "reason": f"backend {spec.backend} exposes no logits"}
    key = reference_key(runner, spec)
    if key not in references:
        references[key] = np.asarray(reference(spec), dtype=np.float64)
    ref: Array = references[key]
    got: Array = np.asarray(logits(spec), dtype=np.float64)
    same = bool(getattr(runner, "reference_is_backend", False))
    check: dict[str, Any] = {
        "status": "checked",
        "reference": REFERENCE,
        "logits": SAME_COMPUTATION if same else FORWARD,
        "tolerance": OUTPUT_TOLERANCE,
    }
    if ref.ndim != 2 or got.shape != ref.shape or len(ref) != spec.batch_size:
        return {**check, "status": "mismatch", "reason": (
            f"the backend's logits have shape {got.shape} and the reference's {ref.shape}, "
            f"for {spec.batch_size} texts")}  # fmt: skip
    diff = np.abs(got - ref).max(axis=1)
    check.update(
        rows_checked=len(ref),
        label_agreement=float(np.mean(got.argmax(-1) == ref.argmax(-1))),
        max_abs_logit_diff=float(diff.max()),
        worst_row=int(diff.argmax()),
    )
    config = getattr(runner, "config", None)
    if config is not None:
        check["timed_output"] = timed_output_check(timed(), ref, config)
    return check


def timed_output_check(output: Any, ref: Array, config: Any) -> dict[str, Any]:
    """The timed call's [{label, score}] per text against the reference logits `ref`."""
    expected = postprocess(config, ref)
    label_ids = {str(name): int(i) for i, name in config.id2label.items()}
    rows = output if isinstance(output, list) else [output]
    shaped = all(isinstance(r, dict) and {"label", "score"} <= set(r) for r in rows)
    if not shaped or len(rows) != len(ref):
        return {"status": "mismatch", "compares": TIMED_OUTPUT, "reason": (
            f"the timed call returned {_describe(output)}, not one label and score for each "
            f"of the {len(ref)} texts")}  # fmt: skip
    unknown = sorted({str(r["label"]) for r in rows} - set(label_ids))
    if unknown:
        return {"status": "mismatch", "compares": TIMED_OUTPUT,
                "reason": f"the timed call returned labels the model lacks: {unknown}"}  # fmt: skip
    ids = np.array([label_ids[str(r["label"])] for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    diff = np.abs(scores - expected[np.arange(len(rows)), ids])
    return {
        "status": "checked",
        "compares": TIMED_OUTPUT,
        "rows_checked": len(rows),
        "label_agreement": float(np.mean(ids == expected.argmax(-1))),
        "max_abs_score_diff": float(diff.max()),
        "worst_row": int(diff.argmax()),
    }


def postprocess(config: Any, logits: Array) -> Array:
    """Scores per label as the text-classification pipeline makes them by default."""
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return logits
    if problem == "multi_label_classification" or logits.shape[-1] == 1:
        return np.asarray(1 / (1 + np.exp(-logits)), dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float64)


def _describe(output: Any) -> str:
    if isinstance(output, list):
        return f"a list of {len(output)} {type(output[0]).__name__ if output else 'items'}"
    return f"a {type(output).__name__}"
