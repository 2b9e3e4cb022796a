"""Farm's `openvino` pipeline call against a plain optimum-intel pipeline, alternating.

    <main stack venv>/bin/python benchmarks/openvino_overhead.py [--threads 2] [--hint bf16]
        [--rounds 8] [--calls 40] [--layers N]
    (`stacks/build.sh --path main` prints the venv; run it with PYTHONPATH=<this checkout>)

One cell: the distilbert-base-uncased replica (Farm's offline resolver), the blog's short
sentence, batch 1. Four callables in one process, on the same weights:

  farm      the `openvino` backend's bound pipeline call (a Farm job, measure: pipeline);
  plain     `OVModelForSequenceClassification` exported from the same weights with the same
            OpenVINO config, inside `transformers.pipeline` built on the OpenVINO model
            itself (the optimum-intel documentation's way);
  farm-fwd  the backend's forward call (a Farm job, measure: forward);
  forward   the plain model's forward on pre-tokenised inputs, under no_grad.

They take turns in rounds (each round: --calls calls of each, in turn, after a warm-up), so
drift on a shared host hits them alike. Printed: each callable's median per round, and the
median over rounds of the per-round ratios farm / plain and farm-fwd / forward (1.00 = no
overhead). With OpenVINO's threads on every CPU of the host, any other runnable process
stalls a call (its parallel layers wait for a descheduled thread): compare absolute figures
only between runs at the same load average, printed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from farm.backends import validate_options  # noqa: E402
from farm.jobs import JobSpec, ModelSpec  # noqa: E402
from tests.support.timing import time_calls  # noqa: E402

SENTENCE = "This is a really nice pair of shoes, I am completely satisfied with my purchase"


def plain_callables(spec: JobSpec, ov_config: dict[str, str]) -> dict[str, Callable[[], Any]]:
    """The optimum-intel way, on the weights Farm's resolver gives for the same spec."""
    import torch
    from optimum.intel import OVModelForSequenceClassification
    from transformers import pipeline

    from farm.workers.models import load_model

    loaded = load_model(spec.model)
    workdir = tempfile.mkdtemp(prefix="ov-overhead-")
    try:
        loaded.model.save_pretrained(workdir)
        loaded.tokenizer.save_pretrained(workdir)
        model = OVModelForSequenceClassification.from_pretrained(
            workdir, export=True, ov_config=ov_config, local_files_only=True
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    pipe = pipeline("text-classification", model=model, tokenizer=loaded.tokenizer)
    encoded = dict(loaded.tokenizer([SENTENCE], return_tensors="pt"))

    def forward() -> Any:
        with torch.no_grad():
            return model(**encoded)

    return {"plain": lambda: pipe(SENTENCE), "forward": forward}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hint", choices=("f32", "bf16"), default="bf16")
    parser.add_argument("--layers", type=int, default=None, help="replica layers (default 6)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=40, help="calls per callable per round")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    import torch

    from farm.workers.backends import get_backend

    torch.set_num_threads(args.threads)
    spec = JobSpec(
        model=ModelSpec(name="distilbert-base-uncased", layers=args.layers),
        input_name="short",
        input_text=SENTENCE,
        batch_size=1,
        backend="openvino",
        backend_options=validate_options("openvino", {"inference_precision_hint": args.hint}),
        pool="bench",
    )
    runner: Any = get_backend("openvino").load(spec)
    plain = plain_callables(spec, runner.identity["backend"]["ov_config"])
    fns: dict[str, Callable[[], Any]] = {
        "farm": runner.bind(spec),
        "plain": plain["plain"],
        "farm-fwd": runner.bind_forward(spec),
        "forward": plain["forward"],
    }
    for fn in fns.values():
        time_calls(fn, args.warmup)
    medians: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(args.rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for name in order:
            medians[name].append(statistics.median(time_calls(fns[name], args.calls)))
    compiled = runner.identity["backend"]["compiled_properties"]
    load = os.getloadavg()[0]
    print(f"torch threads {torch.get_num_threads()}, hint {args.hint} (compiled: {compiled}),"
          f" {args.rounds} x {args.calls} calls, load average {load:.2f}")  # fmt: skip
    for name, values in medians.items():
        print(f"{name:<9} median of round medians {statistics.median(values):7.2f} ms   "
              + " ".join(f"{v:.2f}" for v in values))  # fmt: skip
    for a, b in (("farm", "plain"), ("farm-fwd", "forward")):
        ratios = [x / y for x, y in zip(medians[a], medians[b], strict=True)]
        print(f"{a} / {b}: median {statistics.median(ratios):.3f} "
              f"(rounds {min(ratios):.3f} .. {max(ratios):.3f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
