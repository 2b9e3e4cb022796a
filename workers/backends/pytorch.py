"""`pytorch`: the vanilla transformers pipeline, fp32 (the blog's baseline) or bf16 autocast.

Measure `forward` times the same model, under the same autocast, on the inputs the pipeline
would hand it (recorded from one untimed pipeline call), without the pipeline around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner, call_inputs
from farm.workers.backends.runner import forward_callable, record_model_inputs
from farm.workers.models import load_model


class PipelineRunner(Runner):
    def __init__(self, spec: JobSpec) -> None:
        import torch
        from transformers import logging as hf_logging
        from transformers import pipeline

        hf_logging.set_verbosity_error()  # not "Device set to use cpu" once per job
        loaded = load_model(spec.model, spec.task)
        self.identity = loaded.identity
        self.tokenizer = loaded.tokenizer
        self._pipe = pipeline(
            spec.task, model=loaded.model, tokenizer=loaded.tokenizer, device="cpu"
        )
        self._bf16 = spec.backend_options.get("dtype") == "bf16"
        self._torch = torch

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        data, kwargs = call_inputs(spec)
        pipe, context = self._pipe, self._context

        def call() -> Any:
            with context():
                return pipe(data, **kwargs)

        return call

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        model, context = self._pipe.model, self._context
        inputs = record_model_inputs(self._pipe, model, spec)

        def forward(kwargs: dict[str, Any]) -> Any:
            with context():
                return model(**kwargs)

        return forward_callable(inputs, forward, self._torch)

    def _forward(self, text: str, context: contextlib.AbstractContextManager[Any]) -> Any:
        model = self._pipe.model
        encoded = self.tokenizer([text], return_tensors="pt")
        with self._torch.inference_mode(), context:
            return model(**encoded).logits.float().numpy()

    def logits(self, spec: JobSpec) -> Any:
        """This backend's logits for the job's input (one untimed forward)."""
        return self._forward(spec.input_text, self._context())

    def reference_logits(self, spec: JobSpec) -> Any:
        """The same model's fp32 eager logits on the same input."""
        return self._forward(spec.input_text, contextlib.nullcontext())


class PytorchBackend(Backend):
    name = "pytorch"
    requires = ("torch", "transformers")

    def load(self, spec: JobSpec) -> Runner:
        return PipelineRunner(spec)
