"""`optimum-ipex`: optimum-intel 1.27's IPEXModel class of the task (ipex stack only).

The last optimum-intel IPEX path (optimum-intel >= 2 dropped it). The model Farm resolved is
saved to a temporary directory and loaded with the task's class (workers/taskmodels.py:
`IPEXModelFor<Task>`, `IPEXModel` for features) `.from_pretrained(dir, torch_dtype=...)`,
as optimum-intel's examples do (no autocast: the
weights themselves are cast to the dtype). What 1.27 does with it: models of the types it
patches (bert among the study's three; not distilbert or roberta) get IPEX's fused layers,
and the forward is `torch.compile`d (inductor) with two process-wide side effects of
optimum-intel's: `torch._inductor.config.cpp_wrapper = True` and TORCHINDUCTOR_FREEZING=1,
which then hold for any later torch.compile in the same worker process. Compilation happens
in bind's warm call, per input shape. A timed call is one pipeline call, as for `pytorch`.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner
from farm.workers.backends.runner import Kwargs, SwappedPipelineRunner, require, version
from farm.workers.models import LoadedModel
from farm.workers.taskmodels import optimum_class


class OptimumIpexRunner(SwappedPipelineRunner):
    backend_name = "optimum-ipex"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        (ipex,) = require("optimum-ipex", "ipex", "intel_extension_for_pytorch")
        try:
            ipex_class = optimum_class(spec.task, "optimum_ipex")
        except (ImportError, AttributeError) as exc:  # optimum-intel >= 2 has no IPEX classes
            require("optimum-ipex", "ipex", f"optimum.intel.ipex ({exc})")
            raise
        self._bf16 = self.options.get("dtype", "bf16") == "bf16"
        dtype = torch.bfloat16 if self._bf16 else torch.float32
        workdir = tempfile.mkdtemp(prefix="farm-optimum-ipex-")
        try:  # from_pretrained needs a path: save what load_model resolved, whatever its source
            loaded.model.save_pretrained(workdir)
            loaded.tokenizer.save_pretrained(workdir)
            self._model = ipex_class.from_pretrained(
                workdir, torch_dtype=dtype, local_files_only=True
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return {
            "optimum-intel": version("optimum-intel"),
            "ipex": ipex.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "dtype": "bf16" if self._bf16 else "fp32",
            "class": type(self._model).__name__,
            "ipex_patched": bool(getattr(self._model, "_add_patch", False)),
            "torch_compile": bool(getattr(self._model.model.config, "compile", False)),
        }

    def forward(self, kwargs: Kwargs) -> Any:
        return self._model(**kwargs)


class OptimumIpexBackend(Backend):
    name = "optimum-ipex"
    requires = ("torch", "transformers", "intel_extension_for_pytorch", "optimum.intel")
    requires_versions = {
        "torch": "2.8.",
        "intel-extension-for-pytorch": "2.8.",
        "optimum-intel": "1.",
    }
    install_hint = "build and use the ipex stack: stacks/build.sh ipex"

    def load(self, spec: JobSpec) -> Runner:
        if spec.task == "text-generation":
            from farm.workers.backends.generate_optimum_ipex import OptimumIpexGenerateRunner

            return OptimumIpexGenerateRunner(spec)
        return OptimumIpexRunner(spec)
