"""Tests that run inside a software stack's venv (stacks/), and the dev-venv driver for them.

Each in-stack module is marked with its stack (`main` or `ipex`). Inside a stack's venv
(`<venv>/bin/python -m pytest tests/stacks -m main`) the other stack's tests are deselected.
In any other environment (the dev venv) every in-stack test is deselected and
`test_in_stacks.py` runs them in each built stack's venv through a subprocess instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.jobs import JobSpec
from farm.stacks import STACKS
from tests.support.stacks import current_stack


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


@pytest.fixture(scope="session")
def eager_logits() -> Callable[[JobSpec], Any]:
    """fp32 eager logits computed independently of any runner: one row per text."""
    cache: dict[str, Any] = {}

    def compute(spec: JobSpec) -> Any:
        import numpy as np
        import torch

        from farm.workers.models import load_model

        key = spec.model.model_dump_json()
        if key not in cache:
            cache[key] = load_model(spec.model)
        loaded = cache[key]
        enc = loaded.tokenizer(spec.input_text, return_tensors="pt")
        with torch.no_grad():
            row = loaded.model(**enc).logits.float().numpy()
        return np.repeat(row, spec.batch_size, axis=0)

    return compute


