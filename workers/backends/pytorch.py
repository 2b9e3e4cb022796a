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
from farm.workers.backends.runner import forward_callable, pipeline_logits, record_model_inputs
from farm.workers.models import load_model
from farm.workers.taskcalls import task_pipeline


class PipelineRunner(Runner):
    def __init__(self, spec: JobSpec) -> None:
        import torch
        from transformers import logging as hf_logging

        hf_logging.set_verbosity_error()  # not "Device set to use cpu" once per job
        loaded = load_model(spec.model, spec.task)
        self.identity = loaded.identity
        self.tokenizer = loaded.tokenizer
        self._pipe = task_pipeline(spec.task, loaded.model, loaded.tokenizer)
        self._model = loaded.model
        self.config = loaded.model.config  # labels and post-processing, for the output check
        self._bf16 = spec.backend_options.get("dtype") == "bf16"
        # fp32: the backend's forward *is* fp32 eager, so its logits equal the reference's by
        # construction; the output check says so and leans on the timed call's own output.
        self.reference_is_backend = not self._bf16
        self._torch = torch

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        args, kwargs = call_inputs(spec, self.tokenizer)
        pipe, context = self._pipe, self._context
        if not self._bf16:  # fp32: the blog's own call, with nothing around it

            def plain() -> Any:
                return pipe(*args, **kwargs)

            return plain

        def call() -> Any:
            with context():
                return pipe(*args, **kwargs)

        return call

    def _eager(self, kwargs: dict[str, Any]) -> Any:
        return self._model(**kwargs)

    def _in_context(self, kwargs: dict[str, Any]) -> Any:
        with self._context():
            return self._model(**kwargs)

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        model, context = self._pipe.model, self._context
        inputs = record_model_inputs(self._pipe, model, spec)

        def forward(kwargs: dict[str, Any]) -> Any:
            with context():
                return model(**kwargs)

        return forward_callable(inputs, forward, self._torch)

    def logits(self, spec: JobSpec) -> Any:
        """This backend's checked outputs for the job's inputs (one untimed pipeline call, each
        text as the timed call runs it): runner.pipeline_logits."""
        return pipeline_logits(self._pipe, self._model, self._in_context, spec)

    def reference_logits(self, spec: JobSpec) -> Any:
        """The same model's fp32 eager outputs on the same inputs."""
        return pipeline_logits(self._pipe, self._model, self._eager, spec)


class PytorchBackend(Backend):
    name = "pytorch"
    requires = ("torch", "transformers")

    def load(self, spec: JobSpec) -> Runner:
        if spec.task == "text-generation":
            from farm.workers.backends.generate import GenerateRunner

            return GenerateRunner(spec)
        return PipelineRunner(spec)
