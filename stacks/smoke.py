"""Smoke test of a software stack: every backend of the stack runs a 1-layer replica once.

    <stack venv>/bin/python stacks/smoke.py STACK      (from the checkout; build.sh runs it)

For each backend the stack promises: it must be reported available, load a 1-layer
distilbert replica, bind a batch-1 job (which makes one warm call), run one timed call, and
give logits whose predicted labels agree with the fp32 eager model's. Exit 1 on any failure.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The backends each stack is built for (a stack may import more, e.g. torch-compile in ipex).
STACK_BACKENDS = {
    "main": {"pytorch": {}, "openvino": {}, "torch-compile": {}},
    "ipex": {"pytorch": {}, "ipex": {}, "optimum-ipex": {}},
}
SENTENCE = "This is a really nice pair of shoes, I am completely satisfied with my purchase"


def main(stack: str) -> int:
    import numpy as np

    from farm.backends import validate_options
    from farm.hardware import ipex_bf16_missing
    from farm.jobs import JobSpec, ModelSpec
    from farm.workers.backends import available_backends, get_backend
    from farm.workers.probe import cpu_flags

    if stack not in STACK_BACKENDS:
        print(f"unknown stack {stack!r}; known: {', '.join(STACK_BACKENDS)}", file=sys.stderr)
        return 2
    available = available_backends()
    failures = 0
    bf16_missing = ipex_bf16_missing(cpu_flags())
    for backend, options in STACK_BACKENDS[stack].items():
        start = time.perf_counter()
        if backend == "ipex" and bf16_missing:  # the CPU decides, not the stack
            print(f"note {stack}/ipex: dtype=fp32, since {bf16_missing} (bf16 is refused here)")
            options = {"dtype": "fp32"}
        try:
            reason = available[backend]
            if reason is not None:
                raise RuntimeError(f"not available: {reason}")
            spec = JobSpec(
                model=ModelSpec(name="distilbert-base-uncased", layers=1),
                input_name="smoke",
                input_text=SENTENCE,
                batch_size=1,
                backend=backend,
                backend_options=validate_options(backend, options),
                pool="smoke",
            )
            runner = get_backend(backend).load(spec)
            out = runner.bind(spec)()
            detail = ""
            if hasattr(runner, "logits"):
                got, ref = runner.logits(spec), runner.reference_logits(spec)
                if got.shape != ref.shape or (got.argmax(1) != ref.argmax(1)).any():
                    raise RuntimeError(f"labels differ from fp32 eager: {got} vs {ref}")
                detail = f", max |logit diff| vs fp32 eager {float(np.abs(got - ref).max()):.2g}"
            print(f"ok   {stack}/{backend}: {out}{detail} ({time.perf_counter() - start:.1f} s)")
        except Exception as exc:  # report every backend, then fail
            failures += 1
            print(f"FAIL {stack}/{backend}: {type(exc).__name__}: {exc}", file=sys.stderr)
    others = sorted(n for n, r in available.items() if r is None and n not in STACK_BACKENDS[stack])
    if others:
        print(f"also importable here: {', '.join(others)}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1]))
