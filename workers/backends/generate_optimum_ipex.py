"""`optimum-ipex` for text-generation: optimum-intel 1.27's IPEXModelForCausalLM (ipex stack).

The decoder Farm resolved is saved to a temporary directory and loaded through
`IPEXModelForCausalLM.from_pretrained(dir, torch_dtype=...)` (no autocast: the weights are
cast). For the model types 1.27 patches (gpt2 and llama among them) it swaps in IPEX's
fused layers and paged attention with its own paged KV cache (`cache_implementation
"ipex_paged"`), set by its `generate`; same kwargs and TTFT streamer as `pytorch`. The check's
teacher-forced logits are one forward of that model on the whole sequence.
"""

from __future__ import annotations

import contextlib
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.generate import GenerateRunner
from farm.workers.backends.runner import require, version
from farm.workers.backends.saved import saved
from farm.workers.models import LoadedModel


class OptimumIpexGenerateRunner(GenerateRunner):
    backend_name = "optimum-ipex"
    warm_in_bind = True

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        (ipex,) = require("optimum-ipex", "ipex", "intel_extension_for_pytorch")
        try:
            from optimum.intel import IPEXModelForCausalLM
        except ImportError as exc:  # optimum-intel >= 2 has no IPEX classes
            require("optimum-ipex", "ipex", f"optimum.intel.ipex ({exc})")
            raise
        bf16 = self.options.get("dtype", "bf16") == "bf16"
        with saved(loaded, "farm-optimum-ipex-") as workdir:
            self._model = IPEXModelForCausalLM.from_pretrained(
                workdir, torch_dtype=torch.bfloat16 if bf16 else torch.float32,
                local_files_only=True,
            )  # fmt: skip
        return {
            "optimum-intel": version("optimum-intel"),
            "ipex": ipex.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "dtype": "bf16" if bf16 else "fp32",
            "class": type(self._model).__name__,
            "ipex_patched": bool(getattr(self._model, "_add_patch", False)),
            "torch_compile": bool(getattr(self._model.model.config, "compile", False)),
        }

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # the weights themselves are in the job's dtype

    def backend_generate(self, **kwargs: Any) -> Any:
        return self._model.generate(**kwargs)

    def backend_logits(self, ids: Any) -> Any:
        return self._model(input_ids=ids, attention_mask=self._torch.ones_like(ids)).logits
