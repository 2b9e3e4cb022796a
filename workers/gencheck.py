"""Text generation's output check and metrics, outside the timing.

The check: the fp32 eager model generates the greedy continuation once (per worker, per
reference key); then the backend and fp32 eager each predict every new token of that same
sequence (teacher forcing), and their logits are compared (tolerance as classification's).
The tokens the backend generates on its own are compared with fp32's too — reported beside
the logits, not judged: with random weights a rounding difference flips a token.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.generation import generation_stats
from farm.jobs import JobSpec
from farm.verdict import OUTPUT_TOLERANCE
from farm.workers.backends.base import Runner
from farm.workers.check import REFERENCE, reference_key

SAME_COMPUTATION = (
    "same computation as the reference (this backend's forward is fp32 eager): equal by "
    "construction"
)
TEACHER_FORCED = (
    "teacher-forced logits of every new token of the fp32 eager greedy continuation: the "
    "backend's against fp32 eager's"
)


def generation_check(references: dict[str, Any], runner: Runner, spec: JobSpec) -> dict[str, Any]:
    """The check recorded with a generation result; `references` caches fp32 eager's."""
    teacher = getattr(runner, "teacher_forced", None)
    continuation = getattr(runner, "continuation", None)
    if teacher is None or continuation is None:
        return {"status": "unavailable", "reason": f"backend {spec.backend} exposes no logits"}
    blob = f"{reference_key(runner, spec)}:{spec.new_tokens}:{spec.prompt_tokens}"
    key = "generate:" + hashlib.sha256(blob.encode()).hexdigest()
    if key not in references:
        sequence = continuation(spec, reference=True)
        references[key] = (sequence, np.asarray(teacher(spec, sequence, True), np.float64))
    sequence, ref = references[key]
    got: npt.NDArray[np.float64] = np.asarray(teacher(spec, sequence, False), np.float64)
    same = bool(getattr(runner, "reference_is_backend", False))
    check: dict[str, Any] = {
        "status": "checked",
        "reference": REFERENCE + ", new tokens",
        "logits": SAME_COMPUTATION if same else TEACHER_FORCED,
        "tolerance": OUTPUT_TOLERANCE,
    }
    if got.shape != ref.shape:
        shapes = f"the backend's logits have shape {got.shape} and the reference's {ref.shape}"
        return {**check, "status": "mismatch", "reason": shapes}
    n = spec.new_tokens or 1
    own = np.asarray(continuation(spec, reference=False))[:, -n:]
    diff = np.abs(got - ref).reshape(len(ref), -1).max(axis=1)
    check.update(
        rows_checked=len(ref),
        tokens_checked=int(ref.shape[0] * ref.shape[1]),
        token_agreement=float(np.mean(own == np.asarray(sequence)[:, -n:])),
        max_abs_logit_diff=float(diff.max()),
        worst_row=int(diff.argmax()),
    )
    return check


def first_tokens(fn: Any, warmup: int, timed: int) -> npt.NDArray[np.int64] | None:
    """The timed calls' TTFTs the callable recorded (its warm-up's dropped), or None."""
    stamps = getattr(fn, "first_token_ns", None)
    if stamps is None:
        return None
    if len(stamps) != warmup + timed:
        raise RuntimeError(
            f"{len(stamps)} TTFT stamps for {warmup} warm-up and {timed} timed calls"
        )
    return np.asarray(stamps[warmup:], dtype=np.int64)


def generation_fields(
    spec: JobSpec, samples_ns: npt.NDArray[np.int64], ttft_ns: npt.NDArray[np.int64] | None
) -> dict[str, Any]:
    """The JobResult's generation fields ({} for any other task)."""
    if spec.task != "text-generation" or ttft_ns is None:
        return {}
    from farm.stats import encode_samples

    stats = generation_stats(samples_ns, ttft_ns, spec.batch_size, spec.new_tokens or 1)
    return {"ttft_samples": encode_samples(ttft_ns), **stats}


def prompt_tokens(runner: Runner, spec: JobSpec) -> int:
    """Tokens of the prompt the model reads (the result's `tokens`)."""
    prompt = getattr(runner, "prompt", None)
    if prompt is not None:
        return len(prompt(spec))
    return spec.prompt_tokens or len(runner.tokenizer(spec.input_text)["input_ids"])
