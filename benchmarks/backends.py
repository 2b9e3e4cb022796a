"""Every backend available in this software stack against vanilla eager fp32, on this host.

    <stack venv>/bin/python benchmarks/backends.py [--layers 6] [--rounds 5] [--calls 40]
    (the stack's venv: `stacks/build.sh main` / `stacks/build.sh ipex` print it)

Model: the distilbert-base-uncased replica (random weights, published shapes; --layers to
shrink it), input: the blog's 18-token sentence, batch 1. Two timing modes:

  forward   one model call on pre-tokenised inputs, under the pipeline's no_grad (and the
            variant's autocast): what the issue's table measured;
  pipeline  one transformers pipeline call (tokenise, forward, softmax/argmax): what a
            Farm job times. The `pytorch` rows run the real `pytorch` backend runner.

Each variant is loaded and bound first (setup, compile and trace excluded), then the
variants are timed in interleaved rounds (each round: --calls calls of every variant, in
turn) so that drift on a shared host hits them all alike; a variant's time is the median
of all its calls. Ratios are speed-ups over eager fp32 in the same mode (higher = faster).
Forward-mode ratios are compared with the issue's table (measured on this machine model);
a difference over 30 % is flagged. Rows the issue has no number for show "-".
The load average is printed: on a shared host, other work skews every number, and
multi-threaded torch most of all (--threads, default 1). Compiled variants share one
process here: dynamo keeps one cache per code object for all of them, and optimum-ipex
sets inductor's cpp_wrapper and TORCHINDUCTOR_FREEZING process-wide; for a definitive
number of one variant, run it alone against the baseline (`--only pytorch optimum-ipex`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from farm.backends import validate_options  # noqa: E402
from farm.jobs import JobSpec, ModelSpec  # noqa: E402
from farm.workers.backends import available_backends, get_backend  # noqa: E402
from farm.workers.backends.runner import Kwargs, SwappedPipelineRunner  # noqa: E402
from farm.workers.models import LoadedModel  # noqa: E402
from tests.support.timing import time_calls  # noqa: E402

SENTENCE = "This is a really nice pair of shoes, I am completely satisfied with my purchase"
FLAG_AT = 0.30

# (label, backend, options, the issue's forward-mode ratio or None)
VARIANTS: list[tuple[str, str, dict[str, Any], float | None]] = [
    ("eager fp32", "pytorch", {"dtype": "fp32"}, 1.0),
    ("eager bf16 autocast", "pytorch", {"dtype": "bf16"}, 1.5),
    ("torch-compile fp32", "torch-compile", {"dtype": "fp32"}, None),
    ("torch-compile bf16", "torch-compile", {"dtype": "bf16"}, 1.6),
    ("ipex fp32 jit", "ipex", {"dtype": "fp32", "jit": True}, None),
    ("ipex bf16 (no jit)", "ipex", {"dtype": "bf16", "jit": False}, None),
    ("ipex bf16 jit", "ipex", {"dtype": "bf16", "jit": True}, 4.1),
    ("optimum-ipex fp32", "optimum-ipex", {"dtype": "fp32"}, None),
    ("optimum-ipex bf16", "optimum-ipex", {"dtype": "bf16"}, 2.3),
    ("openvino f32", "openvino", {"inference_precision_hint": "f32"}, None),
    ("openvino bf16", "openvino", {"inference_precision_hint": "bf16"}, 4.7),
]
ISSUE_ONLY = [("jit trace+freeze bf16 (no ipex)", 2.4)]  # no Farm backend does exactly this


class EagerRunner(SwappedPipelineRunner):
    """The `pytorch` backend's arithmetic for forward mode: the original model, eager."""

    backend_name = "pytorch"

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        self._bf16 = spec.backend_options.get("dtype") == "bf16"
        return {}

    def context(self) -> contextlib.AbstractContextManager[Any]:
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, kwargs: Kwargs) -> Any:
        return self.original(**kwargs)


def job(backend: str, options: dict[str, Any], layers: int | None) -> JobSpec:
    return JobSpec(
        model=ModelSpec(name="distilbert-base-uncased", layers=layers),
        input_name="short",
        input_text=SENTENCE,
        batch_size=1,
        backend=backend,
        backend_options=validate_options(backend, options),
        pool="bench",
    )


def cpu_flags() -> str:
    """The CPU features bf16 speed hinges on: AMX (tiles) or only AVX-512 BF16."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f")
    return " ".join(f for f in wanted if f in words) or "none of amx/avx512"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=None, help="replica layers (default 6)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40, help="calls per variant per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="labels or backend names to run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, also given to OpenVINO (default 1: a multi-"
                        "threaded op stalls whenever one of its threads is descheduled, so on "
                        "a busy host 1 thread gives far steadier ratios)")  # fmt: skip
    args = parser.parse_args()

    import torch
    import transformers

    torch.set_num_threads(args.threads)

    available = available_backends()
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}\n"
          f"cpu flags: {cpu_flags()}")  # fmt: skip
    modes: dict[str, dict[str, Callable[[], Any]]] = {"forward": {}, "pipeline": {}}
    rows: list[tuple[str, str, dict[str, Any], float | None, str]] = []
    for label, backend, options, issue in VARIANTS:
        if args.only and label not in args.only and backend not in args.only:
            continue
        reason = available.get(backend)
        if reason is not None:
            rows.append((label, backend, options, issue, f"not in this stack: {reason}"))
            continue
        spec = job(backend, options, args.layers)
        start = time.perf_counter()
        if backend == "pytorch":
            runner: Any = EagerRunner(spec)
            modes["pipeline"][label] = get_backend("pytorch").load(spec).bind(spec)
        else:
            runner = get_backend(backend).load(spec)
            modes["pipeline"][label] = runner.bind(spec)
        modes["forward"][label] = runner.bind_forward(spec)
        for fn in (modes["pipeline"][label], modes["forward"][label]):
            time_calls(fn, args.warmup)
        print(f"  set up {label}: {time.perf_counter() - start:.1f} s", flush=True)
        rows.append((label, backend, options, issue, ""))

    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mode, fns in modes.items():
            for label, fn in fns.items():
                samples.setdefault((mode, label), []).extend(time_calls(fn, args.calls))
    median = {key: statistics.median(values) for key, values in samples.items()}
    base = {mode: median.get((mode, "eager fp32")) for mode in modes}

    print(f"\ndistilbert-base-uncased replica ({args.layers or 6} layers), 18 tokens, batch 1; "
          f"median of {args.rounds} x {args.calls} calls; load average after "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    head = (f"{'variant':<32}{'fwd ms':>9}{'fwd x':>8}{'issue x':>9}{'diff':>8}  "
            f"{'pipe ms':>9}{'pipe x':>8}")  # fmt: skip
    print(head + "  note")
    print("-" * (len(head) + 6))
    flagged = []
    for label, _backend, _options, issue, note in rows:
        if note:
            print(f"{label:<32}{'':>9}{'':>8}{_fmt(issue):>9}{'':>8}  {'':>9}{'':>8}  {note}")
            continue
        cells = []
        for mode in ("forward", "pipeline"):
            ms = median[(mode, label)]
            ref = base[mode]
            cells.append((ms, ref / ms if ref else None))
        (f_ms, f_x), (p_ms, p_x) = cells
        diff, mark = "", ""
        if issue is not None and f_x is not None:
            rel = f_x / issue - 1
            diff = f"{rel:+.0%}"
            if abs(rel) > FLAG_AT:
                mark = f"FLAG: differs from the issue's {issue}x by more than {FLAG_AT:.0%}"
                flagged.append(label)
        print(f"{label:<32}{f_ms:>9.2f}{_fmt(f_x):>8}{_fmt(issue):>9}{diff:>8}  "
              f"{p_ms:>9.2f}{_fmt(p_x):>8}  {mark}")  # fmt: skip
    for label, issue in ISSUE_ONLY:
        print(f"{label:<32}{'':>9}{'':>8}{_fmt(issue):>9}{'':>8}  {'':>9}{'':>8}  "
              "issue only: no Farm backend runs exactly this")  # fmt: skip
    print(f"\nflagged (> {FLAG_AT:.0%} from the issue): {', '.join(flagged) or 'none'}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
