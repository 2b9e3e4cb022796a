"""`torch-compile` for text-generation: the decoder's forward `torch.compile`d (inductor),
generating with a static KV cache (main and ipex stacks).

transformers' recipe for compiled generation: a static cache keeps every decode step's
shapes fixed, so the decode graph compiles once; the prefill compiles once per prompt shape.
The compiled model is a copy of the fp32 eager one (whose forward stays eager: the check's
reference). bf16 runs each call under CPU autocast, as `pytorch` does. bind makes one warm
call, so compilation lands there, never in a timed call; the check's teacher-forced forward
(a longer sequence, no cache) compiles its own graph, outside timing too.
"""

from __future__ import annotations

import copy
import os
import shutil
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.generate import GenerateRunner
from farm.workers.backends.runner import version
from farm.workers.models import LoadedModel

CACHE = "static"


class TorchCompileGenerateRunner(GenerateRunner):
    backend_name = "torch-compile"
    warm_in_bind = True

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        mode = self.options.get("mode", "default")
        self._compiled = copy.deepcopy(self.model)
        self._compiled.forward = torch.compile(
            self._compiled.forward, backend="inductor", mode=None if mode == "default" else mode
        )
        return {
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "compiler": "inductor",
            "compiled": "the model's forward (prefill and decode steps)",
            "mode": mode,
            "dtype": "bf16" if self._bf16 else "fp32",
            "cache_implementation": CACHE,
            "cxx": os.environ.get("CXX") or shutil.which("c++"),
        }

    def backend_generate(self, **kwargs: Any) -> Any:
        return self._compiled.generate(**kwargs, cache_implementation=CACHE)

    def backend_logits(self, ids: Any) -> Any:
        ones = self._torch.ones_like(ids)
        return self._compiled(input_ids=ids, attention_mask=ones, use_cache=False).logits
