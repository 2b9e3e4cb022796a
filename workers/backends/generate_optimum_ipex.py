"""`optimum-ipex` for text-generation: optimum-intel 1.27's IPEXModelForCausalLM (ipex stack).

The decoder Farm resolved is saved to a temporary directory and loaded through
`IPEXModelForCausalLM.from_pretrained(dir, torch_dtype=...)` (no autocast: the weights are
cast). For the model types 1.27 patches (gpt2 and llama among them) it swaps in IPEX's
fused layers and paged attention with its own paged KV cache (`cache_implementation
"ipex_paged"`), set by its `generate`; same kwargs and TTFT streamer as `pytorch`. The check's
teacher-forced logits come from its own prefill on the whole sequence (a one-token
`generate`, the decoder body's hidden states recorded, then its own head).

1.27 also `torch.compile`s the patched decoder's forward on torch >= 2.7, but dynamo (torch
2.8) fails to trace it for gpt2 and llama alike (InternalTorchDynamoError: AttributeError
'UserDefinedExceptionObjectVariable' object has no attribute 'call_setattr', at the first
generate). Farm undoes that compile and runs the patched model eager, and says so in the
identity (`torch_compile: false`, `torch_compile_skipped`); its process-wide inductor
settings (optimum_ipex.py's docstring) are set all the same.
"""

from __future__ import annotations

import contextlib
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.generate import GenerateRunner, prefill_logits
from farm.workers.backends.runner import require, version
from farm.workers.backends.saved import saved
from farm.workers.models import LoadedModel

NO_COMPILE = (
    "optimum-intel 1.27 compiles the patched decoder's forward; dynamo (torch 2.8) fails to "
    "trace it, so it runs eager"
)


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
        compiled = bool(getattr(self._model.model.config, "compile", False))
        if compiled:  # undo it: dynamo cannot trace the patched decoder (see the docstring)
            self._model.model.forward = self._model.model.forward._torchdynamo_orig_callable
            self._model.model.config.compile = False
        return {
            "optimum-intel": version("optimum-intel"),
            "ipex": ipex.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "dtype": "bf16" if bf16 else "fp32",
            "class": type(self._model).__name__,
            "ipex_patched": bool(getattr(self._model, "_add_patch", False)),
            "torch_compile": False,
            "torch_compile_skipped": NO_COMPILE if compiled else None,
        }

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # the weights themselves are in the job's dtype

    def backend_generate(self, **kwargs: Any) -> Any:
        return self._model.generate(**kwargs)

    def backend_logits(self, ids: Any) -> Any:
        # Its own prefill: a bare forward (no cache) leaves the paged model generating other
        # tokens afterwards (seen with 1.27 on gpt2 and llama), and its llama prefill keeps
        # only the last position's logits, so the decoder body's hidden states are recorded
        # and put through the model's own (patched) head.
        model = self._model.model
        hidden = prefill_logits(model.base_model, self._model.generate, ids,
                                pad_token_id=self.pad_token_id)  # fmt: skip
        return model.get_output_embeddings()(hidden.reshape(*ids.shape, -1))
