"""What the in-stack tests share: the stacks, the call shapes, the job builder and the
checks every runner must pass against fp32 eager (tests/stacks)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm.backends import validate_options
from farm.hardware import ipex_bf16_missing, native_bf16
from farm.jobs import JobSpec, ModelSpec
from farm.workers.probe import cpu_flags

SENTENCE = "This is a really nice pair of shoes, I am completely satisfied with my purchase"
# (batch_size, batching): the three call shapes every runner must handle.
CALLS = [(1, "sequential"), (8, "sequential"), (8, "batched")]
# Largest |logit - fp32 eager logit| allowed on the 2-layer replica (random weights, logits
# ~0.3, label margin ~0.37 on this sentence): fp32 paths agree to ~1e-6; bf16 ones were
# measured at 1e-3 .. 3e-3 (ipex, openvino, autocast); 0.05 leaves room for other CPUs.
TOLERANCE = {"fp32": 1e-4, "bf16": 0.05}
# What this host's CPU can do decides some expectations (CI and workers run on AVX2 hosts too).
FLAGS = cpu_flags()
IPEX_BF16_MISSING = ipex_bf16_missing(FLAGS)  # None: IPEX can run bf16 here
NATIVE_BF16 = native_bf16(FLAGS)  # AVX-512 BF16 or AMX
# OpenVINO keeps a bf16 hint there, and also on AVX-512 cores without BF16 instructions,
# where it emulates it (seen on an Ice Lake class host: ~680 ms a call against ~90 ms f32);
# on AVX2-only CPUs it runs f32.
OPENVINO_KEEPS_BF16 = NATIVE_BF16 or all(
    FLAGS.get(flag) for flag in ("avx512f", "avx512bw", "avx512vl", "avx512dq")
)


def current_stack() -> str | None:
    """The stack this interpreter's venv was built as (its marker), or FARM_STACK, or None."""
    marker = Path(sys.prefix) / ".farm-stack-ok"
    if marker.is_file():
        for line in marker.read_text().splitlines():
            if line.startswith("stack="):
                return line.split("=", 1)[1]
    return os.environ.get("FARM_STACK") or None


def make_job(backend: str, options: dict[str, Any], batch: int = 1,
             batching: str = "sequential", layers: int = 2) -> JobSpec:  # fmt: skip
    return JobSpec(
        model=ModelSpec(name="distilbert-base-uncased", layers=layers),
        input_name="short",
        input_text=SENTENCE,
        batch_size=batch,
        batching=batching,
        backend=backend,
        backend_options=validate_options(backend, options),
        pool="test",
    )


def check_runner(runner: Any, spec: JobSpec, eager: Callable[[JobSpec], Any], dtype: str) -> None:
    """The shared checks: one call of each shape runs, its model inputs have the job's shape,
    and its logits agree with fp32 eager (labels, and within the dtype's tolerance)."""
    import numpy as np

    out = runner.bind(spec)()
    assert isinstance(out, list) and len(out) == spec.batch_size
    assert all(set(r) == {"label", "score"} for r in out), out
    inputs = runner.model_inputs(spec)
    if spec.batching == "batched" and spec.batch_size > 1:
        assert [kw["input_ids"].shape[0] for kw in inputs] == [spec.batch_size]
    else:
        assert [kw["input_ids"].shape[0] for kw in inputs] == [1] * spec.batch_size
    got, ref, independent = runner.logits(spec), runner.reference_logits(spec), eager(spec)
    assert got.shape == ref.shape == independent.shape == (spec.batch_size, 2)
    assert np.abs(ref - independent).max() < 1e-5  # the runner's own reference is fp32 eager
    diff = float(np.abs(got - independent).max())
    assert (got.argmax(1) == independent.argmax(1)).all(), (got, independent)
    assert diff < TOLERANCE[dtype], f"max |logit diff| {diff} vs fp32 eager ({dtype})"
    labels = {r["label"] for r in out}
    assert labels == {runner.original.config.id2label[int(independent[0].argmax())]}


def check_forward(runner: Any, spec: JobSpec, eager: Callable[[JobSpec], Any], dtype: str) -> None:
    """Measure `forward`: the timed call makes the model calls of one pipeline call (one per
    text for sequential, one of N for batched), no pipeline output, logits as fp32 eager's."""
    import numpy as np

    forward = spec.model_copy(update={"measure": "forward"})
    out = runner.bind_measure(forward)()
    calls = 1 if spec.batching == "batched" and spec.batch_size > 1 else spec.batch_size
    assert isinstance(out, list) and len(out) == calls
    got = np.concatenate([o["logits"].detach().float().numpy() for o in out])
    independent = eager(spec)
    assert got.shape == independent.shape == (spec.batch_size, 2)
    assert (got.argmax(1) == independent.argmax(1)).all(), (got, independent)
    diff = float(np.abs(got - independent).max())
    assert diff < TOLERANCE[dtype], f"forward: max |logit diff| {diff} vs fp32 eager ({dtype})"
