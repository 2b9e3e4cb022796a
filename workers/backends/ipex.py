"""`ipex`: what optimum-intel's removed `inference_mode(pipe, dtype, jit)` did, in the ipex stack.

The recipe (optimum-intel <= 1.19): `ipex.enable_onednn_fusion(True)`, `ipex.optimize(model,
dtype, level="O1", auto_kernel_selection=True)`, then with `jit` a `torch.jit.trace` (strict
off) + `torch.jit.freeze` made under `torch.autocast("cpu", bfloat16)` when the dtype is bf16,
two warm calls, and the pipeline's model swapped for the result. Differences, on purpose:
the trace is made per input shape on the job's own inputs (theirs used a 2-token dummy and
relied on the trace generalising), and there is no silent fallback to the eager model: a call
the traced module cannot take raises instead of timing something else.

The runner is `SwappedPipelineRunner` (workers/backends/runner.py); heavy imports stay inside
functions.
"""

from __future__ import annotations

import contextlib
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner
from farm.workers.backends.runner import (
    Kwargs,
    ShapeKey,
    SwappedPipelineRunner,
    require,
    require_ipex_bf16,
    shape_key,
    version,
)
from farm.workers.models import LoadedModel
from farm.workers.taskcalls import output_mapper


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
        self._as_output = output_mapper(spec.task)  # a trace returns a dict or a tuple
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
        return self._as_output(traced(**kwargs))


class IpexBackend(Backend):
    name = "ipex"
    requires = ("torch", "transformers", "intel_extension_for_pytorch")
    # IPEX refuses at import any torch but its own minor version.
    requires_versions = {"torch": "2.8.", "intel-extension-for-pytorch": "2.8."}
    install_hint = "build and use the ipex stack: stacks/build.sh ipex"

    def load(self, spec: JobSpec) -> Runner:
        if spec.task == "text-generation":
            from farm.workers.backends.generate_ipex import IpexGenerateRunner

            return IpexGenerateRunner(spec)
        return IpexRunner(spec)
