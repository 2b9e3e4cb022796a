"""`selftest`: a backend with no model, for drills of the farm itself.

Each timed call spins the CPU for `work_ms`; `crash: true` kills the process on the first
call, as a segfaulting backend would. Tokens are counted by whitespace. There is no pipeline
around the spin, so measure `forward` times the same call as `pipeline` (the whole call is
"the model").
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner


class WhitespaceTokenizer:
    mask_token = "[MASK]"  # fill-mask's placeholder becomes one more word

    def __call__(self, text: str, pair: str | None = None) -> dict[str, list[str]]:
        return {"input_ids": text.split() + (pair or "").split()}


class SpinRunner(Runner):
    def __init__(self, spec: JobSpec) -> None:
        self.identity = {"name": spec.model.name, "source": "selftest", "weights": "none",
                         "tokenizer": "whitespace"}  # fmt: skip
        self.tokenizer = WhitespaceTokenizer()

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        if spec.task == "text-generation":
            return SpinGenerate(spec)
        seconds = spec.backend_options["work_ms"] / 1000 * spec.batch_size
        crash = spec.backend_options["crash"]

        def call() -> None:
            if crash:
                os.kill(os.getpid(), signal.SIGKILL)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass

        return call

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        return self.bind(spec)


class SpinGenerate:
    """text-generation: `new_tokens` steps of `work_ms` each (× batch size); the first
    step's end is the first token (its TTFT kept in `first_token_ns`)."""

    def __init__(self, spec: JobSpec) -> None:
        self.step_s = spec.backend_options["work_ms"] / 1000 * spec.batch_size
        self.steps = spec.new_tokens or 1
        self.crash = spec.backend_options["crash"]
        self.first_token_ns: list[int] = []

    def __call__(self) -> None:
        if self.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        start = time.perf_counter_ns()
        for step in range(self.steps):
            end = time.perf_counter() + self.step_s
            while time.perf_counter() < end:
                pass
            if step == 0:
                self.first_token_ns.append(time.perf_counter_ns() - start)


class SelftestBackend(Backend):
    name = "selftest"

    def load(self, spec: JobSpec) -> Runner:
        return SpinRunner(spec)
