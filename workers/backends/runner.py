"""The pipeline runner every optimising backend shares (ipex, openvino, torch-compile,
optimum-ipex): a plain transformers pipeline whose *model call* is swapped for the backend's
optimised one. A timed call is therefore exactly what the `pytorch` backend times — one
pipeline call of the job's task (workers/taskcalls.py) — with only the forward differing;
with measure `forward`, it is the model calls alone on the inputs the pipeline would have made
(`record_model_inputs`, `forward_callable`, shared with `pytorch`). Heavy imports stay inside
functions.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

from farm.errors import BackendUnavailable
from farm.jobs import JobSpec
from farm.workers.backends.base import Runner, call_inputs
from farm.workers.models import LoadedModel, load_model
from farm.workers.taskcalls import Reader, output_reader, task_pipeline

Kwargs = dict[str, Any]
ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]


def shape_key(kwargs: Kwargs) -> ShapeKey:
    """The model inputs' names and shapes: what a trace is specialised on."""
    return tuple(sorted((k, tuple(v.shape)) for k, v in kwargs.items() if hasattr(v, "shape")))


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def require(backend: str, stack: str, *modules: str) -> list[Any]:
    """Import `modules` or raise BackendUnavailable naming the stack that has them."""
    try:
        return [importlib.import_module(m) for m in modules]
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {backend!r} cannot load here: {exc}; it runs in the {stack!r} software "
            f"stack (`stacks/build.sh {stack}` prints its venv)"
        ) from None


def require_ipex_bf16() -> None:
    """Say before loading, in Farm's words, what IPEX would assert deep in ipex.optimize."""
    from farm.hardware import ipex_bf16_missing
    from farm.workers.probe import cpu_flags

    missing = ipex_bf16_missing(cpu_flags())
    if missing:
        raise BackendUnavailable(
            f"ipex with dtype=bf16 cannot run on this CPU: {missing}; measure dtype=fp32 on "
            "this pool, or bf16 on a pool whose CPUs have them"
        )


# OpenVINO's precision hints by the `openvino` option's values (encoders and decoders).
OPENVINO_HINTS = {"f32": "f32", "bf16": "bf16"}


class _SwappedModel:
    """Stands in for `pipe.model`: calls go to the backend, everything else to the original
    model (its config for post-processing, its `forward` signature for the pipeline)."""

    def __init__(self, original: Any, call: Callable[[Kwargs], Any]) -> None:
        self._original = original
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError("the swapped model takes keyword inputs only, as the pipeline passes")
        return self._call(kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _Recorder(_SwappedModel):
    """Records the model inputs of each call (and what the output check reads of its output:
    workers/taskcalls.py output_reader) while delegating."""

    def __init__(self, original: Any, call: Callable[[Kwargs], Any], reader: Reader) -> None:
        super().__init__(original, call)
        self.inputs: list[Kwargs] = []
        self.outputs: list[Any] = []
        self._reader = reader

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.inputs.append(dict(kwargs))
        out = super().__call__(*args, **kwargs)
        self.outputs.append(self._reader(kwargs, out))
        return out


def record(pipe: Any, original: Any, call: Callable[[Kwargs], Any], spec: JobSpec) -> _Recorder:
    """One pipeline call of the job with its model call made by `call` (`original` answers
    everything else), the model inputs and checked outputs of each model call recorded."""
    recorder = _Recorder(original, call, output_reader(spec.task, pipe.tokenizer))
    args, kwargs = call_inputs(spec, pipe.tokenizer)
    swapped, pipe.model = pipe.model, recorder
    try:
        pipe(*args, **kwargs)
    finally:
        pipe.model = swapped
    return recorder


def pipeline_logits(pipe: Any, original: Any, call: Callable[[Kwargs], Any], spec: JobSpec) -> Any:
    """What the output check compares (output_reader: logits, start/end logits, logits at the
    masks, pooled embeddings) that `call` gives inside one pipeline call of the job, row i for
    the i-th text (QA: the i-th chunk), batched or sequential as the timed call runs them:
    one float32 array (rows, ...), or a list of rows where calls differ in shape (a long
    QA context's chunks)."""
    import numpy as np

    calls = record(pipe, original, call, spec).outputs
    if len({c.shape[1:] for c in calls}) == 1:
        return np.concatenate(calls)
    return [row for c in calls for row in c]


def record_model_inputs(pipe: Any, original: Any, spec: JobSpec) -> list[Kwargs]:
    """The keyword inputs `pipe` hands its model in one call of this job (one per text for
    sequential, one batch of N for batched), recorded from a call of the eager `original`."""
    return record(pipe, original, lambda kw: original(**kw), spec).inputs


def forward_callable(
    inputs: list[Kwargs], forward: Callable[[Kwargs], Any], torch: Any
) -> Callable[[], Any]:
    """Measure `forward`'s timed call: the model calls on pre-tokenised `inputs`, under the
    no_grad the pipeline's own forward runs in (so pipeline − forward is exactly tokenisation
    and post-processing); warmed once, outside the timed region."""
    no_grad = torch.no_grad

    def call() -> Any:
        with no_grad():
            return [forward(kw) for kw in inputs]

    call()
    return call


class SwappedPipelineRunner(Runner):
    """A transformers pipeline with the model call swapped for the backend's optimised one.

    Subclasses set `backend_name` and implement `optimise` (setup, before any job: returns
    the backend's identity details) and `forward` (one optimised model call on the pipeline's
    keyword inputs); `prepare_shape` (a trace per input shape) and `context` (autocast around
    each call) are optional. `bind` records the job's model inputs with one eager call, lets
    the backend prepare for those shapes, then makes one warm call of the timed callable so
    that tracing, compilation and first-inference costs land before the timed region.

    Output checks, outside timing: `logits(spec)` runs the job's call once through the
    backend and returns what the task's check compares (`pipeline_logits`: classification's
    (batch_size, num_labels) logits, the other tasks' per-token logits, start/end logits,
    mask logits or pooled embeddings), row i for the i-th text; `reference_logits(spec)` does
    the same through the original fp32 eager model.
    """

    backend_name = ""

    def __init__(self, spec: JobSpec) -> None:
        import torch
        from transformers import logging as hf_logging

        hf_logging.set_verbosity_error()
        self._torch = torch
        self.options = dict(spec.backend_options)
        loaded = load_model(spec.model, spec.task)
        self.tokenizer = loaded.tokenizer
        self.original = loaded.model  # eager fp32, kept for reference_logits and the config
        self.config = loaded.model.config  # labels and post-processing, for the output check
        self._pipe: Any = task_pipeline(spec.task, loaded.model, loaded.tokenizer)
        details = self.optimise(spec, loaded)
        self.identity = {
            **loaded.identity,
            "backend": {
                "name": self.backend_name,
                **details,
            },
        }
        self._pipe.model = _SwappedModel(self.original, self._forward_in_context)

    # --- what a backend provides -----------------------------------------------------

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        """Build the optimised model (setup time); return details for the identity."""
        raise NotImplementedError

    def forward(self, kwargs: Kwargs) -> Any:
        """One optimised model call; the result must support the task's fields by name
        (`result["logits"]`; taskcalls.output_mapper maps a tuple or plain dict onto them)."""
        raise NotImplementedError

    def prepare_shape(self, kwargs: Kwargs) -> None:
        """Called in bind once per distinct input shape of the job, before the warm call."""

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """Entered around each model call (e.g. CPU autocast)."""
        return contextlib.nullcontext()

    # --- shared machinery -------------------------------------------------------------

    def _forward_in_context(self, kwargs: Kwargs) -> Any:
        with self.context():
            return self.forward(kwargs)

    def model_inputs(self, spec: JobSpec) -> list[Kwargs]:
        """The keyword inputs the pipeline hands the model in one call of this job."""
        return record_model_inputs(self._pipe, self.original, spec)

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        seen: dict[ShapeKey, Kwargs] = {}
        for kwargs in self.model_inputs(spec):
            seen.setdefault(shape_key(kwargs), kwargs)
        with self._torch.no_grad():
            for kwargs in seen.values():
                self.prepare_shape(kwargs)
        args, kwargs = call_inputs(spec, self.tokenizer)
        pipe = self._pipe

        def call() -> Any:
            return pipe(*args, **kwargs)

        call()  # warm: compile / first inference of these shapes, outside the timed region
        return call

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        """Measure `forward`: the job's model calls through the backend's optimised forward
        (its context included, e.g. autocast) on pre-tokenised inputs."""
        self.bind(spec)  # traces / compiles these shapes, outside the timed region
        return forward_callable(self.model_inputs(spec), self._forward_in_context, self._torch)

    def logits(self, spec: JobSpec) -> Any:
        """The backend's checked outputs for the job's inputs (one untimed call)."""
        self.bind(spec)
        return pipeline_logits(self._pipe, self.original, self._forward_in_context, spec)

    def reference_logits(self, spec: JobSpec) -> Any:
        """The original fp32 eager model's checked outputs on the same inputs and pipeline."""
        return pipeline_logits(self._pipe, self.original, lambda kw: self.original(**kw), spec)
