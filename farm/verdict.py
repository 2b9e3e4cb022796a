"""Validity verdicts, in the spirit of MLPerf: a number with the reasons it can't be trusted.

Rules (each failing rule is one reason; any reason makes the result `invalid`):
- a percentile needs enough samples to be supported: the fewest calls for which, at 99 %
  confidence, at most one of them lies above the percentile (p90 64, p99 662 — MLPerf
  LoadGen's minimum query counts — and p99.9 6,636);
- the timed calls lasted at least the protocol's `min_duration_s`;
- the coefficient of variation is at most the protocol's `max_cv` (a noisy host);
- warm-up converged: the median of the last warm-up window (10 calls, or a fifth of
  the warm-up if longer) is within 10 % of the timed median (warm-up too short to judge
  — fewer than 10 calls — is a reason too, only when the protocol asked for no warm-up
  seconds);
- an adaptive run reached its target interval before its caps;
- the backend's logits, and the labels and scores its timed call returns, are within
  OUTPUT_TOLERANCE of fp32 eager on the same inputs, row for row (per token, start/end or
  at the masks for the other encoder tasks; embeddings: cosine similarity >= COSINE_MIN);
- the backend ran the precision it was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.protocol import Protocol


def supporting_samples(percentile: float, confidence: float = 0.99) -> int:
    """The fewest calls n for which P(at most one of n calls lies above the percentile) is at
    most 1 - confidence: the tail then shows more than one call, so the percentile is not
    read off its single largest sample."""
    above = 1 - percentile / 100
    below = 1 - above
    n = 1
    while below**n + n * above * below ** (n - 1) > 1 - confidence:
        n += 1
    return n


MIN_SAMPLES = {key: supporting_samples(q) for key, q in (("p90", 90), ("p99", 99), ("p99.9", 99.9))}
WARMUP_WINDOW = 10
WARMUP_MARGIN = 0.10


def min_samples(percentile: float) -> int:
    """The fewest samples that support this percentile (0 below p90)."""
    if percentile >= 99.9:
        return MIN_SAMPLES["p99.9"]
    if percentile >= 99:
        return MIN_SAMPLES["p99"]
    return MIN_SAMPLES["p90"] if percentile >= 90 else 0


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reasons: list[str]

    @property
    def label(self) -> str:
        return "valid" if self.valid else "invalid"


def judge(
    stats: dict[str, Any],
    protocol: Protocol,
    warmup_ns: npt.NDArray[np.int64],
    samples_ns: npt.NDArray[np.int64],
    stop_reason: str,
    timed_s: float | None = None,
) -> Verdict:
    """`timed_s`: the timed phase's wall time (what min_duration_s bounds); defaults to
    the sum of the call latencies, which leaves out the loop's own time between calls."""
    reasons: list[str] = []
    duration = stats["duration_s"] if timed_s is None else timed_s
    n = int(stats["n"])
    for key, need in MIN_SAMPLES.items():
        if key == "p99.9" and protocol.target_percentile < 99.9:
            continue
        if n < need:
            reasons.append(f"{key} not supported: {n} samples, needs at least {need}")
    if protocol.min_duration_s and duration < protocol.min_duration_s:
        reasons.append(
            f"timed calls lasted {duration:.1f} s, below the minimum "
            f"{protocol.min_duration_s} s ({stop_reason})"
        )
    if stats["cv"] > protocol.max_cv:
        reasons.append(f"noisy: coefficient of variation {stats['cv']:.2f} above {protocol.max_cv}")
    reasons.extend(_warmup_reasons(protocol, warmup_ns, samples_ns))
    if protocol.target_ci is not None and stop_reason != "target reached":
        reasons.append(
            f"p{protocol.target_percentile:g} interval not within ±{protocol.target_ci:.1%} "
            f"({stop_reason})"
        )
    return Verdict(valid=not reasons, reasons=reasons)


def _warmup_reasons(
    protocol: Protocol, warmup_ns: npt.NDArray[np.int64], samples_ns: npt.NDArray[np.int64]
) -> list[str]:
    if warmup_ns.size < WARMUP_WINDOW:
        if protocol.warmup_s:
            return []
        return [f"warm-up too short to judge: {warmup_ns.size} calls, needs {WARMUP_WINDOW}"]
    window = max(WARMUP_WINDOW, warmup_ns.size // 5)
    tail = float(np.median(warmup_ns[-window:]))
    timed = float(np.median(samples_ns))
    if timed > 0 and tail > timed * (1 + WARMUP_MARGIN):
        return [
            f"warm-up not converged: last {window} warm-up calls' median {tail / 1e6:.2f} ms "
            f"is {tail / timed - 1:.0%} above the timed median {timed / 1e6:.2f} ms"
        ]
    return []


# Largest |logit - fp32 eager logit| a backend may show: bf16 paths measured 1e-3 .. 3e-3
# on replicas; ten times more is a broken optimisation, not rounding.
OUTPUT_TOLERANCE = 0.05
# Smallest cosine similarity of a backend's pooled embedding to fp32 eager's, per row
# (feature-extraction: the vector's direction is what similarity search uses).
COSINE_MIN = 0.99


def check_reasons(check: dict[str, Any]) -> list[str]:
    """The output check's verdict (workers/check.py): logits or the timed call's scores
    further from fp32 eager than OUTPUT_TOLERANCE, or output of another shape than the
    reference's."""
    reasons = []
    if check.get("status") == "mismatch":
        reasons.append(f"output check: {check['reason']}")
    diff = check.get("max_abs_logit_diff")
    if diff is not None and diff > OUTPUT_TOLERANCE:
        reasons.append(
            f"output check: logits differ from fp32 eager by up to {diff:.3g} "
            f"(tolerance {OUTPUT_TOLERANCE}){_row(check)}; {_agreement(check)}"
        )
    cosine = check.get("min_cosine")
    if cosine is not None and cosine < COSINE_MIN:
        reasons.append(
            f"output check: embeddings' cosine similarity to fp32 eager's is down to "
            f"{cosine:.4f} (at least {COSINE_MIN}){_row(check)}"
        )
    timed = check.get("timed_output") or {}
    if timed.get("status") == "mismatch":
        reasons.append(f"output check: {timed['reason']}")
    diff = timed.get("max_abs_score_diff")
    if diff is not None and diff > OUTPUT_TOLERANCE:
        reasons.append(
            f"output check: the timed call's labels and scores differ from fp32 eager's by up "
            f"to {diff:.3g} (tolerance {OUTPUT_TOLERANCE}){_row(timed)}; "
            f"labels agree on {timed['label_agreement']:.0%}"
        )
    return reasons


# What each task reports beside its logits (not judged), and how a reason says it.
AGREEMENTS = {
    "token_agreement": "generated tokens agree",
    "span_agreement": "answer spans agree",
    "top1_agreement": "top-1 tokens at the masks agree",
    "label_agreement": "labels agree",
}


def _agreement(check: dict[str, Any]) -> str:
    """Labels (classification, per token), generated tokens, answer spans or top-1 tokens
    agree on so much: reported with the logits' reason, not judged."""
    for key, words in AGREEMENTS.items():
        if key in check:
            return f"{words} on {check[key]:.0%}"
    return "no agreement reported"


def _row(check: dict[str, Any]) -> str:
    """Where the worst difference is, when the check covered more than one row."""
    if check.get("rows_checked", 1) > 1 and "worst_row" in check:
        return f" at row {check['worst_row']} of {check['rows_checked']}"
    return ""


def precision_reasons(backend: dict[str, Any]) -> list[str]:
    """A backend that ran another precision than asked (OpenVINO's bf16 hint on a CPU
    without native bf16 runs f32): its column would claim what it did not measure."""
    asked = backend.get("inference_precision_hint")
    ran = (backend.get("compiled_properties") or {}).get("INFERENCE_PRECISION_HINT")
    if not asked or not ran or asked == ran:
        return []
    return [
        f"{backend.get('name', 'the backend')} ran {ran}, not the {asked} asked "
        "(this CPU has no native support for it)"
    ]
