"""`torch-compile`: `torch.compile` with inductor, fp32 or bf16 autocast (main stack).

The upstream successor of IPEX. Compilation is lazy and costs seconds per new input shape,
so bind makes one warm pipeline call per job (under the pipeline's no_grad and the job's
autocast, the same guards as the timed calls) before the timed region. Inductor generates
C++: the host needs a C++ compiler (`c++`, or `$CXX`). A timed call is one pipeline call.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner
from farm.workers.backends.runner import Kwargs, SwappedPipelineRunner, version
from farm.workers.models import LoadedModel


class TorchCompileRunner(SwappedPipelineRunner):
    backend_name = "torch-compile"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        mode = self.options.get("mode", "default")
        self._bf16 = self.options.get("dtype", "fp32") == "bf16"
        self._compiled = torch.compile(
            self.original, backend="inductor", mode=None if mode == "default" else mode
        )
        return {
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "compiler": "inductor",
            "mode": mode,
            "dtype": "bf16" if self._bf16 else "fp32",
            "cxx": os.environ.get("CXX") or shutil.which("c++"),
        }

    def context(self) -> contextlib.AbstractContextManager[Any]:
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, kwargs: Kwargs) -> Any:
        return self._compiled(**kwargs)


def _has_cxx() -> str | None:
    """None when a C++ compiler is found (inductor's CPU code generation needs one)."""
    if os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++"):
        return None
    return "no C++ compiler (c++, g++ or $CXX) for inductor's CPU code generation"


class TorchCompileBackend(Backend):
    name = "torch-compile"
    requires = ("torch", "transformers")
    install_hint = "needs torch >= 2.1 and a C++ compiler (apt-get install g++)"
    probe = staticmethod(_has_cxx)

    def load(self, spec: JobSpec) -> Runner:
        if spec.task == "text-generation":
            from farm.workers.backends.generate_compile import TorchCompileGenerateRunner

            return TorchCompileGenerateRunner(spec)
        return TorchCompileRunner(spec)
