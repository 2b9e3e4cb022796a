"""`openvino`: optimum-intel's OpenVINO model class of the task in the pipeline (main stack).

optimum-intel >= 2 is OpenVINO-only. The model Farm resolved (replica, packaged MiniLM,
local directory or HF cache) is saved to a temporary directory, exported to OpenVINO IR
offline (`OVModelFor<Task>.from_pretrained(dir, export=True)`, the class of the job's task:
workers/taskmodels.py) and compiled
for the CPU with the job's precision hint, one stream and the process's torch thread count
(the worker's `--threads`). Export and compilation are setup; the first inference of each
input shape happens in bind. A timed call is one pipeline call, as for `pytorch`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Backend, Runner
from farm.workers.backends.runner import (
    OPENVINO_HINTS,
    Kwargs,
    SwappedPipelineRunner,
    require,
    version,
)
from farm.workers.models import LoadedModel
from farm.workers.taskmodels import optimum_class


class OpenvinoRunner(SwappedPipelineRunner):
    backend_name = "openvino"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        ov, _ = require("openvino", "main", "openvino", "optimum.intel")
        ov_class = optimum_class(spec.task, "openvino")

        hint = OPENVINO_HINTS[self.options.get("inference_precision_hint", "f32")]
        streams = int(self.options.get("num_streams", 1))
        threads = int(self._torch.get_num_threads())
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(threads),
            "PERFORMANCE_HINT": "LATENCY",
        }
        workdir = tempfile.mkdtemp(prefix="farm-openvino-")
        quiet = logging.getLogger("optimum")  # "could not infer whether ... converted" etc.
        level = quiet.level
        try:  # export needs a path: save what load_model resolved, whatever its source
            loaded.model.save_pretrained(workdir)
            loaded.tokenizer.save_pretrained(workdir)
            quiet.setLevel(logging.ERROR)
            with warnings.catch_warnings():  # the exporter's TracerWarnings
                warnings.simplefilter("ignore")
                self._ov = ov_class.from_pretrained(
                    workdir, export=True, ov_config=config, compile=False, local_files_only=True
                )
                self._ov.compile()
        finally:
            quiet.setLevel(level)
            shutil.rmtree(workdir, ignore_errors=True)
        actual: dict[str, str | None] = {}  # what the CPU plugin says it compiled with
        for prop in ("INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
                     "ENABLE_CPU_PINNING"):  # fmt: skip
            try:
                value = self._ov.request.get_property(prop)
                actual[prop] = value.to_string() if hasattr(value, "to_string") else str(value)
            except Exception:  # a property this plugin does not report
                actual[prop] = None
        return {
            "openvino": ov.__version__,
            "optimum-intel": version("optimum-intel"),
            "transformers": version("transformers"),
            "torch": self._torch.__version__,
            "class": ov_class.__name__,
            "inference_precision_hint": hint,
            "num_streams": streams,
            "threads": threads,
            "ov_config": config,
            "compiled_properties": actual,
        }

    def forward(self, kwargs: Kwargs) -> Any:
        return self._ov(**kwargs)


class OpenvinoBackend(Backend):
    name = "openvino"
    requires = ("torch", "transformers", "openvino", "optimum.intel")
    install_hint = "build and use the main stack: stacks/build.sh main"

    def load(self, spec: JobSpec) -> Runner:
        if spec.task == "text-generation":
            from farm.workers.backends.generate_openvino import OpenvinoGenerateRunner

            return OpenvinoGenerateRunner(spec)
        return OpenvinoRunner(spec)
