"""Tests that run inside a software stack's venv (stacks/), and the dev-venv driver for them.

Each in-stack module is marked with its stack (`main` or `ipex`). Inside a stack's venv
(`<venv>/bin/python -m pytest tests/stacks -m main`) the other stack's tests are deselected.
In any other environment (the dev venv) every in-stack test is deselected and
`test_in_stacks.py` runs them in each built stack's venv through a subprocess instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.backends import validate_options
from farm.hardware import ipex_bf16_missing, native_bf16
from farm.jobs import JobSpec, ModelSpec
from workers.probe import cpu_flags

STACKS = ("main", "ipex")
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
NATIVE_BF16 = native_bf16(FLAGS)  # AVX-512 BF16 or AMX: OpenVINO honours a bf16 hint


def current_stack() -> str | None:
    """The stack this interpreter's venv was built as (its marker), or FARM_STACK, or None."""
    marker = Path(sys.prefix) / ".farm-stack-ok"
    if marker.is_file():
        for line in marker.read_text().splitlines():
            if line.startswith("stack="):
                return line.split("=", 1)[1]
    return os.environ.get("FARM_STACK") or None


def pytest_configure(config: pytest.Config) -> None:
    for stack in STACKS:
        config.addinivalue_line(
            "markers", f"{stack}: runs inside the {stack} software stack (stacks/{stack}.txt)"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Inside a stack, the code under test must be the driver's checkout, not whichever one
    the stack's editable install points at."""
    import farm

    checkout = os.environ.get("FARM_CHECKOUT")
    if checkout and not Path(farm.__file__).resolve().is_relative_to(Path(checkout).resolve()):
        pytest.exit(f"farm imported from {farm.__file__}, not the checkout {checkout}", 3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = current_stack()
    keep, drop = [], []
    for item in items:
        marks = {m.name for m in item.iter_markers() if m.name in STACKS}
        driver = item.path.name == "test_in_stacks.py"
        if (marks and here not in marks) or (driver and here is not None):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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


@pytest.fixture(scope="session")
def eager_logits() -> Callable[[JobSpec], Any]:
    """fp32 eager logits computed independently of any runner: one row per text."""
    cache: dict[str, Any] = {}

    def compute(spec: JobSpec) -> Any:
        import numpy as np
        import torch

        from workers.models import load_model

        key = spec.model.model_dump_json()
        if key not in cache:
            cache[key] = load_model(spec.model)
        loaded = cache[key]
        enc = loaded.tokenizer(spec.input_text, return_tensors="pt")
        with torch.no_grad():
            row = loaded.model(**enc).logits.float().numpy()
        return np.repeat(row, spec.batch_size, axis=0)

    return compute


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
