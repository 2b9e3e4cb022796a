"""`ipex` for text-generation: `ipex.llm.optimize` (ipex stack, IPEX 2.8).

`ipex.llm.optimize(model, dtype, inplace=True, deployment_mode=True)` on a copy of the fp32
eager decoder (which stays the check's reference). For the architectures IPEX's LLM path
covers (Llama, so SmolLM2, among them) it swaps in IPEX's fused decoder layers and its
indirect-access KV cache, jit-traces the model for deployment and replaces `generate`'s
greedy loop with its own. For the others (GPT-2 in IPEX 2.8) IPEX itself falls back to
`ipex.optimize(model, dtype)` under stock `generate`: Farm runs that and says so in the
identity (`llm_path: false`, `jit: false` and the recipe), rather than refusing the model.
The `jit` option is fixed to true for this task in the backend table: IPEX traces itself.
bf16 runs under CPU autocast, as IPEX's own generation scripts do, and needs AVX-512
(refused before loading elsewhere); fp32 runs on any host.

The check's teacher-forced logits come from the backend's own prefill: on the LLM path a
one-token `generate` on the sequence, its traced graph's first output recorded (the traced
model takes IPEX's cache layout, so it is not called directly); on the fallback, a forward.
"""

from __future__ import annotations

import copy
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.generate import GenerateRunner, prefill_logits
from farm.workers.backends.runner import require, require_ipex_bf16, version
from farm.workers.models import LoadedModel


def _mllama_alias() -> str | None:
    """IPEX 2.8's LLM conversion lists transformers' `MllamaTextCrossSdpaAttention` among the
    attention classes it replaces, a name transformers 4.55 (the ipex stack's) no longer has:
    its conversion then fails on any model. Aliasing the name to `MllamaTextCrossAttention`
    lets it run (a decoder-only model holds no Mllama module, so nothing else changes).
    Returns what was done, for the identity, or None when nothing was needed."""
    try:
        from transformers.models.mllama import modeling_mllama as mllama
    except ImportError:
        return None
    if hasattr(mllama, "MllamaTextCrossSdpaAttention"):
        return None
    setattr(mllama, "MllamaTextCrossSdpaAttention", mllama.MllamaTextCrossAttention)  # noqa: B010
    return "transformers' MllamaTextCrossSdpaAttention aliased to MllamaTextCrossAttention"


class IpexGenerateRunner(GenerateRunner):
    backend_name = "ipex"
    warm_in_bind = True

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        torch = self._torch
        (ipex,) = require("ipex", "ipex", "intel_extension_for_pytorch")
        self._bf16 = self.options.get("dtype", "bf16") == "bf16"
        if self._bf16:
            require_ipex_bf16()
        dtype = torch.bfloat16 if self._bf16 else torch.float32
        architecture = type(self.model).__name__
        shim = _mllama_alias()
        with torch.no_grad():
            self._ipex = ipex.llm.optimize(
                copy.deepcopy(self.model), dtype=dtype, inplace=True, deployment_mode=True
            )
        self._llm = hasattr(self._ipex, "trace_graph")  # what IPEX set for `generate`
        recipe = (
            "ipex.llm.optimize(deployment_mode=True): IPEX's fused decoder layers, its KV "
            "cache and greedy loop, jit-traced"
            if self._llm
            else f"ipex.optimize (fallback of ipex.llm.optimize: IPEX {ipex.__version__}'s "
            f"LLM path lacks {architecture}) under stock generate"
        )
        return {
            "ipex": ipex.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "dtype": "bf16" if self._bf16 else "fp32",
            "llm_path": self._llm,
            "jit": self._llm,  # traced on the LLM path only; `jit: false` is refused at submit
            "recipe": recipe,
            "transformers_shim": shim,
        }

    def backend_generate(self, **kwargs: Any) -> Any:
        return self._ipex.generate(**kwargs)

    def backend_logits(self, ids: Any) -> Any:
        ones = self._torch.ones_like(ids)
        if not self._llm:
            return self._ipex(input_ids=ids, attention_mask=ones, use_cache=False).logits
        graph = getattr(self._ipex, "trace_graph_first", None) or self._ipex.trace_graph
        return prefill_logits(graph, self._ipex.generate, ids, pad_token_id=self.pad_token_id)
