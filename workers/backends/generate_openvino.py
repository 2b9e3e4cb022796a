"""`openvino` for text-generation: optimum-intel's OVModelForCausalLM (main stack).

The decoder Farm resolved is saved to a temporary directory and exported to OpenVINO IR
offline (stateful: the KV cache lives inside the compiled model), then compiled for the CPU
with the job's precision hint, streams and the process's torch thread count, as the
classification path does. `generate` is transformers' loop over the compiled model, with the
same kwargs and TTFT streamer as `pytorch`. The check's teacher-forced logits are one forward
on the whole sequence: with no past it resets the model's state first, so no earlier call's
cache leaks in.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.generate import GenerateRunner
from farm.workers.backends.runner import OPENVINO_HINTS, require, version
from farm.workers.backends.saved import saved
from farm.workers.models import LoadedModel

# What the CPU plugin is asked, and what identity records it compiled with.
PROPERTIES = ("INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
              "ENABLE_CPU_PINNING", "KV_CACHE_PRECISION", "KEY_CACHE_PRECISION",
              "VALUE_CACHE_PRECISION", "DYNAMIC_QUANTIZATION_GROUP_SIZE")  # fmt: skip


def compiled_properties(compiled: Any) -> dict[str, str | None]:
    """What the CPU plugin says a compiled model runs with (None: not reported)."""
    actual: dict[str, str | None] = {}
    for prop in PROPERTIES:
        try:
            value = compiled.get_property(prop)
            actual[prop] = value.to_string() if hasattr(value, "to_string") else str(value)
        except Exception:  # a property this plugin does not report
            actual[prop] = None
    return actual


class OpenvinoGenerateRunner(GenerateRunner):
    backend_name = "openvino"
    warm_in_bind = True

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        ov, _ = require("openvino", "main", "openvino", "optimum.intel")
        from optimum.intel import OVModelForCausalLM

        hint = OPENVINO_HINTS[self.options.get("inference_precision_hint", "f32")]
        streams = int(self.options.get("num_streams", 1))
        threads = int(self._torch.get_num_threads())
        config = {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": str(streams),
                  "INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
        quiet = logging.getLogger("optimum")
        level = quiet.level
        try:
            quiet.setLevel(logging.ERROR)
            with saved(loaded, "farm-openvino-") as workdir, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's TracerWarnings
                self._ov = OVModelForCausalLM.from_pretrained(
                    workdir, export=True, ov_config=config, compile=False, use_cache=True,
                    local_files_only=True,
                )  # fmt: skip
                self._ov.compile()
        finally:
            quiet.setLevel(level)
        return {
            "openvino": ov.__version__,
            "optimum-intel": version("optimum-intel"),
            "transformers": version("transformers"),
            "torch": self._torch.__version__,
            "class": type(self._ov).__name__,
            "stateful": bool(self._ov.stateful),
            "inference_precision_hint": hint,
            "num_streams": streams,
            "threads": threads,
            "ov_config": config,
            "compiled_properties": compiled_properties(self._ov.request.get_compiled_model()),
        }

    def backend_generate(self, **kwargs: Any) -> Any:
        return self._ov.generate(**kwargs)

    def backend_logits(self, ids: Any) -> Any:
        return self._ov(input_ids=ids, attention_mask=self._torch.ones_like(ids)).logits
