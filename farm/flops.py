"""FLOPs per call and efficiency against the host's peak: pure arithmetic, no torch.

How far a backend sits from what the CPU can compute says whether a speed-up is still to be
had. The work of one call is counted from the model's shape, the token count and the batch;
the host's roof is a measured GEMM (`farm.workers.peak`), fp32 and, where the CPU computes
it natively, bf16. A FLOP is half a multiply-accumulate, as torch.utils.flop_counter counts
(the test checks the formula against it on the replicas).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# HF config keys of each family of BERT-style encoder: (layers, hidden, heads, intermediate).
_KEYS = {
    "distilbert": ("n_layers", "dim", "n_heads", "hidden_dim"),
    "bert": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
}
_FAMILY = {"distilbert": "distilbert", "bert": "bert", "roberta": "bert", "xlm-roberta": "bert"}
DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class EncoderShape:
    """What the arithmetic of a BERT-style sequence classifier depends on."""

    model_type: str
    layers: int
    hidden: int
    heads: int
    intermediate: int
    labels: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def encoder_shape(config: Mapping[str, Any]) -> EncoderShape | None:
    """The shape from a Hugging Face config dict (`model.config.to_dict()`), or None for an
    architecture this formula does not describe (its results then carry no FLOPs)."""
    family = _FAMILY.get(str(config.get("model_type", "")))
    if family is None:
        return None
    try:
        layers, hidden, heads, inter = (int(config[k]) for k in _KEYS[family])
    except (KeyError, TypeError, ValueError):
        return None
    labels = len(config.get("id2label") or {}) or int(config.get("num_labels") or 2)
    return EncoderShape(str(config["model_type"]), layers, hidden, heads, inter, labels)


def flops_per_sequence(shape: EncoderShape, tokens: int) -> int:
    """FLOPs of one forward of one sequence of `tokens` tokens (2 per multiply-accumulate).

    Embeddings are table lookups and sums (no multiply-accumulate); per layer: the Q, K, V
    and output projections 4 × 2·S·H², attention scores and context 2 × 2·S²·H (over all
    heads), the feed-forward 2 × 2·S·H·I; the head on the first token: a dense layer H×H
    (BERT's pooler, DistilBERT's pre-classifier, RoBERTa's dense) then H×labels. Softmax,
    layer norms and GELU are element-wise and left out, as the flop counter leaves them.
    """
    s, h, i = tokens, shape.hidden, shape.intermediate
    layer = 8 * s * h * h + 4 * s * s * h + 4 * s * h * i
    head = 2 * h * h + 2 * h * shape.labels
    return shape.layers * layer + head


def flops_per_call(shape: EncoderShape, tokens: int, batch: int) -> int:
    """One timed call handles `batch` copies of the input: run one by one (sequential) or as
    one padded batch (batched: all texts are the same, so nothing is padded) — N × one."""
    return batch * flops_per_sequence(shape, tokens)


def compute_dtype(options: Mapping[str, Any], backend: Mapping[str, Any] | None = None) -> str:
    """The precision a backend computes in: what it reports it ran (OpenVINO's compiled
    precision), else its `dtype` / `inference_precision_hint` option, else fp32."""
    ran = ((backend or {}).get("compiled_properties") or {}).get("INFERENCE_PRECISION_HINT")
    asked = ran or options.get("dtype") or options.get("inference_precision_hint") or "fp32"
    return {"f32": "fp32", "bf16": "bf16"}.get(str(asked).lower(), str(asked).lower())


def gflops(flops: float | None, mean_ms: float | None) -> float | None:
    """Achieved GFLOP/s: FLOPs per call over the mean latency (calls × FLOPs / timed time)."""
    if flops is None or not mean_ms or mean_ms <= 0:
        return None
    return flops / (mean_ms * 1e6)


def percent_of_peak(achieved: float | None, peak: float | None) -> float | None:
    if achieved is None or not peak or peak <= 0:
        return None
    return 100.0 * achieved / peak


def peak_for(peak: Mapping[str, Any] | None, dtype: str) -> float | None:
    """The stored peak (GFLOP/s) of this precision, None when none was measured."""
    value = (peak or {}).get(f"{dtype}_gflops")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def peak_matches(peak: Mapping[str, Any] | None, host: str, cpus: str | None, threads: int) -> bool:
    """A peak holds for the host, CPUs and thread count it was measured with, nothing else."""
    if not peak:
        return False
    return (peak.get("hostname"), peak.get("cpus"), peak.get("threads")) == (host, cpus, threads)


@dataclass(frozen=True)
class Efficiency:
    """What a result stores: its work, its speed and how far it is from the roof."""

    flops: float | None
    gflops: float | None
    peak_gflops: float | None
    percent: float | None
    dtype: str
    note: str | None = None  # why a figure is null


def efficiency(
    shape: EncoderShape | None,
    tokens: int,
    batch: int,
    mean_ms: float,
    dtype: str,
    peak: Mapping[str, Any] | None,
) -> Efficiency:
    """A result's FLOPs per call, achieved GFLOP/s and % of the peak of its precision."""
    if shape is None:
        return Efficiency(None, None, None, None, dtype, "no FLOP formula for this model")
    flops = float(flops_per_call(shape, tokens, batch))
    achieved = gflops(flops, mean_ms)
    roof = peak_for(peak, dtype)
    note = None
    if roof is None:
        note = "no peak measured here" if not peak else f"no {dtype} peak measured here"
    return Efficiency(flops, achieved, roof, percent_of_peak(achieved, roof), dtype, note)
