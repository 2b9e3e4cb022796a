"""`ipex`: what optimum-intel's removed `inference_mode(pipe, dtype, jit)` did, in the ipex stack.

The recipe (optimum-intel <= 1.19): `ipex.enable_onednn_fusion(True)`, `ipex.optimize(model,
dtype, level="O1", auto_kernel_selection=True)`, then with `jit` a `torch.jit.trace` (strict
off) + `torch.jit.freeze` made under `torch.autocast("cpu", bfloat16)` when the dtype is bf16,
two warm calls, and the pipeline's model swapped for the result. Differences, on purpose:
the trace is made per input shape on the job's own inputs (theirs used a 2-token dummy and
relied on the trace generalising), and there is no silent fallback to the eager model: a call
the traced module cannot take raises instead of timing something else.

This module also holds `SwappedPipelineRunner`, the runner every optimising backend here
shares (openvino, torch-compile, optimum-ipex too): a plain transformers pipeline whose
*model call* is swapped for the backend's optimised one. A timed call is therefore exactly
what the `pytorch` backend times — one pipeline call: tokenisation, forward, softmax/argmax
post-processing — with only the forward differing. Heavy imports stay inside functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from importlib import metadata
from typing import Any, cast

from farm.errors import BackendUnavailable
from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner, call_inputs
from farm.workers.models import LoadedModel, load_model

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
    import importlib

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
    """Records the model inputs of each call (and optionally the logits) while delegating."""

    def __init__(self, original: Any, call: Callable[[Kwargs], Any]) -> None:
        super().__init__(original, call)
        self.inputs: list[Kwargs] = []
        self.logits: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.inputs.append(dict(kwargs))
        out = super().__call__(*args, **kwargs)
        self.logits.append(out["logits"].detach().float().cpu().numpy())
        return out


class SwappedPipelineRunner(Runner):
    """A transformers pipeline with the model call swapped for the backend's optimised one.

    Subclasses set `backend_name` and implement `optimise` (setup, before any job: returns
    the backend's identity details) and `forward` (one optimised model call on the pipeline's
    keyword inputs); `prepare_shape` (a trace per input shape) and `context` (autocast around
    each call) are optional. `bind` records the job's model inputs with one eager call, lets
    the backend prepare for those shapes, then makes one warm call of the timed callable so
    that tracing, compilation and first-inference costs land before the timed region.

    Output checks, outside timing: `logits(spec)` runs the job's call once through the
    backend and returns its logits; `reference_logits(spec)` does the same through the
    original fp32 eager model. Both are float32 arrays of shape (batch_size, num_labels),
    row i for the i-th text (one forward per text for sequential, one of N for batched).
    """

    backend_name = ""

    def __init__(self, spec: JobSpec) -> None:
        import torch
        from transformers import logging as hf_logging
        from transformers import pipeline

        hf_logging.set_verbosity_error()
        self._torch = torch
        self.options = dict(spec.backend_options)
        loaded = load_model(spec.model, spec.task)
        self.tokenizer = loaded.tokenizer
        self.original = loaded.model  # eager fp32, kept for reference_logits and the config
        self._pipe: Any = cast(
            Any, pipeline(spec.task, model=loaded.model, tokenizer=loaded.tokenizer, device="cpu")
        )
        details = self.optimise(spec, loaded)
        self.identity = {
            **loaded.identity,
            "backend": {
                "name": self.backend_name,
                **details,
                "timed": "pipeline call: tokenise + optimised forward + softmax/argmax",
            },
        }
        self._pipe.model = _SwappedModel(self.original, self._forward_in_context)

    # --- what a backend provides -----------------------------------------------------

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        """Build the optimised model (setup time); return details for the identity."""
        raise NotImplementedError

    def forward(self, kwargs: Kwargs) -> Any:
        """One optimised model call; the result must support `result["logits"]`."""
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

    def _run(self, spec: JobSpec, model: _Recorder) -> _Recorder:
        data, kwargs = call_inputs(spec)
        swapped, self._pipe.model = self._pipe.model, model
        try:
            self._pipe(data, **kwargs)
        finally:
            self._pipe.model = swapped
        return model

    def model_inputs(self, spec: JobSpec) -> list[Kwargs]:
        """The keyword inputs the pipeline hands the model in one call of this job (one
        per text for sequential, one batch of N for batched), recorded from an eager call."""
        return self._run(spec, _Recorder(self.original, lambda kw: self.original(**kw))).inputs

    def bind(self, spec: JobSpec) -> Callable[[], Any]:
        seen: dict[ShapeKey, Kwargs] = {}
        for kwargs in self.model_inputs(spec):
            seen.setdefault(shape_key(kwargs), kwargs)
        with self._torch.no_grad():
            for kwargs in seen.values():
                self.prepare_shape(kwargs)
        data, kwargs = call_inputs(spec)
        pipe = self._pipe

        def call() -> Any:
            return pipe(data, **kwargs)

        call()  # warm: compile / first inference of these shapes, outside the timed region
        return call

    def bind_forward(self, spec: JobSpec) -> Callable[[], Any]:
        """Model-forward timing (benchmarks): the job's model calls on pre-tokenised inputs,
        under the pipeline's no_grad, without tokenisation or post-processing."""
        self.bind(spec)
        inputs = self.model_inputs(spec)
        forward, no_grad = self._forward_in_context, self._torch.no_grad

        def call() -> Any:
            with no_grad():
                return [forward(dict(kw)) for kw in inputs]

        call()
        return call

    def logits(self, spec: JobSpec) -> Any:
        """The backend's logits for the job's inputs (one untimed call): float32 (N, labels)."""
        import numpy as np

        self.bind(spec)
        return np.concatenate(
            self._run(spec, _Recorder(self.original, self._forward_in_context)).logits
        )

    def reference_logits(self, spec: JobSpec) -> Any:
        """The original fp32 eager model's logits on the same inputs, same pipeline."""
        import numpy as np

        recorder = _Recorder(self.original, lambda kw: self.original(**kw))
        return np.concatenate(self._run(spec, recorder).logits)


class IpexRunner(SwappedPipelineRunner):
    backend_name = "ipex"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        (ipex,) = require("ipex", "ipex", "intel_extension_for_pytorch")
        self._bf16 = self.options.get("dtype", "bf16") == "bf16"
        self._jit = bool(self.options.get("jit", True))
        if self._bf16:
            require_ipex_bf16()
        dtype = torch.bfloat16 if self._bf16 else torch.float32
        ipex.enable_onednn_fusion(True)
        with torch.no_grad():
            self._optimised = ipex.optimize(
                self.original, dtype=dtype, level="O1", auto_kernel_selection=True, inplace=False
            )
        self._traced: dict[ShapeKey, Any] = {}
        return {
            "ipex": ipex.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "dtype": "bf16" if self._bf16 else "fp32",
            "jit": self._jit,
            "recipe": "ipex.optimize(level=O1, auto_kernel_selection) + onednn fusion"
            + (" + jit.trace(per input shape, strict=False) + jit.freeze" if self._jit else ""),
        }

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def context(self) -> contextlib.AbstractContextManager[Any]:
        # A frozen trace made under autocast has its casts in the graph (as inference_mode
        # ran it); eager ipex-optimised bf16 needs autocast around each call.
        return contextlib.nullcontext() if self._jit else self._autocast()

    def prepare_shape(self, kwargs: Kwargs) -> None:
        if not self._jit:
            return
        key = shape_key(kwargs)
        if key in self._traced:
            return
        torch = self._torch
        with self._autocast(), torch.no_grad():
            traced = torch.jit.trace(
                self._optimised, example_kwarg_inputs=dict(kwargs), strict=False
            )
            traced = torch.jit.freeze(traced)
            traced(**kwargs)  # the profiling executor optimises on the first two runs
            traced(**kwargs)
        self._traced[key] = traced

    def forward(self, kwargs: Kwargs) -> Any:
        if not self._jit:
            return self._optimised(**kwargs)
        traced = self._traced.get(shape_key(kwargs))
        if traced is None:  # never fall back to eager silently: that would time something else
            raise RuntimeError(f"ipex: no trace for input shapes {shape_key(kwargs)}; bind first")
        return traced(**kwargs)


class IpexBackend(Backend):
    name = "ipex"
    requires = ("torch", "transformers", "intel_extension_for_pytorch")
    # IPEX refuses at import any torch but its own minor version.
    requires_versions = {"torch": "2.8.", "intel-extension-for-pytorch": "2.8."}
    stack = "ipex"
    install_hint = "build and use the ipex stack: stacks/build.sh ipex"

    def load(self, spec: JobSpec) -> Runner:
        return IpexRunner(spec)
