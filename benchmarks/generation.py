"""Does Farm's TTFT / TPOT timing cost anything? Farm's figures against a plain loop.

One generation cell (a `gpt2` replica, a synthetic prompt, batch 1, greedy, exactly N new
tokens) is measured in rounds. Each round runs, in an order that alternates from round to
round, in this one process pinned to the same CPUs with the same torch threads:

- Farm: the job's timed callable (`GenerateRunner.bind`: one `generate` with the logits
  processor that stamps the first token) through Farm's own `measure()`; TTFT and TPOT
  from its per-call samples (`farm.generation.generation_stats`);
- plain: `model.generate` timed directly with `time.perf_counter_ns`, nothing added:
  `generate(max_new_tokens=1)` for TTFT, `generate(max_new_tokens=N)` end to end, and
  TPOT = (end-to-end − TTFT) / (N − 1), as issue 14 defines them.

Each path's figure in a round is the median of its per-call values (so one call slowed by
another process does not move it); rounds are short so that both paths of a round see the
same load. It prints each round and the median over rounds of the ratio farm / plain. The
aim: within 2 % (the stamp is one clock reading per step).

    .venv/bin/python benchmarks/generation.py                     # 21 rounds of 10 calls
    .venv/bin/python benchmarks/generation.py --rounds 5 --layers 1 --cpus 0 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from farm.generation import tpot_ns  # noqa: E402 (after the checkout is on the path)
from farm.jobs import JobSpec, ModelSpec  # noqa: E402
from farm.protocol import Protocol  # noqa: E402
from farm.workers.backends.generate import GenerateRunner, generate_kwargs  # noqa: E402
from farm.workers.gencheck import first_tokens  # noqa: E402
from farm.workers.measure import measure  # noqa: E402


def farm_round(runner: GenerateRunner, spec: JobSpec) -> tuple[float, float]:
    """(TTFT ms, TPOT ms) as a Farm job measures them."""
    fn = runner.bind(spec)
    m = measure(fn, spec.protocol)
    ttft = first_tokens(fn, m.warmup_ns.size, m.samples_ns.size)
    assert ttft is not None
    tpot = tpot_ns(m.samples_ns, ttft, spec.new_tokens or 1)
    assert tpot is not None
    return float(np.median(ttft)) / 1e6, float(np.median(tpot)) / 1e6


def _timed_ms(call: Callable[[], Any], warmup: int, iterations: int) -> npt.NDArray[np.float64]:
    for _ in range(warmup):
        call()
    times = np.empty(iterations, dtype=np.float64)
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        call()
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    return times


def plain_round(runner: GenerateRunner, spec: JobSpec) -> tuple[float, float]:
    """(TTFT ms, TPOT ms) from plain `generate` calls timed directly."""
    import torch

    model, inputs, n = runner.model, runner.inputs(spec), spec.new_tokens or 1
    one = {**generate_kwargs(spec, runner.pad_token_id), "max_new_tokens": 1, "min_new_tokens": 1}
    full = generate_kwargs(spec, runner.pad_token_id)
    warmup, iterations = spec.protocol.warmup, spec.protocol.iterations

    def first() -> Any:
        with torch.no_grad():
            return model.generate(**inputs, **one)

    def whole() -> Any:
        with torch.no_grad():
            return model.generate(**inputs, **full)

    ttft = float(np.median(_timed_ms(first, warmup, iterations)))
    e2e = float(np.median(_timed_ms(whole, warmup, iterations)))
    return ttft, (e2e - ttft) / (n - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--cpus", default=None, help="pin to these CPUs, e.g. 0-3 [all allowed]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [one per CPU]")
    args = parser.parse_args()
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2 (TPOT needs a second token)")
    import torch

    from farm.settings import parse_cpu_list

    cpus = parse_cpu_list(args.cpus) if args.cpus else os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    torch.set_num_threads(args.threads or len(cpus))
    protocol = Protocol(warmup=args.warmup, iterations=args.iterations, max_cv=10)
    spec = JobSpec(model=ModelSpec(name="gpt2", layers=args.layers), task="text-generation",
                   input_name=f"prompt{args.prompt_tokens}", input_text="", batch_size=1,
                   backend="pytorch", backend_options={"dtype": "fp32"}, pool="bench",
                   new_tokens=args.new_tokens, prompt_tokens=args.prompt_tokens,
                   protocol=protocol)  # fmt: skip
    runner = GenerateRunner(spec)
    print(f"gpt2[{args.layers}L], prompt {args.prompt_tokens} tokens, {args.new_tokens} new, "
          f"batch 1, CPUs {sorted(cpus)}, {torch.get_num_threads()} threads; "
          f"{args.warmup} warm-up + {args.iterations} calls per path per round")  # fmt: skip
    ratios: dict[str, list[float]] = {"ttft": [], "tpot": []}
    for r in range(args.rounds):
        paths = [("farm", farm_round), ("plain", plain_round)]
        got = {name: fn(runner, spec) for name, fn in (paths if r % 2 == 0 else paths[::-1])}
        (f_ttft, f_tpot), (p_ttft, p_tpot) = got["farm"], got["plain"]
        ratios["ttft"].append(f_ttft / p_ttft)
        ratios["tpot"].append(f_tpot / p_tpot)
        print(f"round {r + 1}: TTFT farm {f_ttft:.3f} ms / plain {p_ttft:.3f} ms "
              f"({f_ttft / p_ttft:.3f}x); TPOT farm {f_tpot:.3f} ms / plain {p_tpot:.3f} ms "
              f"({f_tpot / p_tpot:.3f}x)")  # fmt: skip
    worst = 0.0
    for metric, values in ratios.items():
        median = statistics.median(values)
        worst = max(worst, abs(median - 1))
        print(f"{metric.upper()}: median ratio farm / plain over {len(values)} rounds "
              f"{median:.4f} ({(median - 1) * 100:+.2f} %)")  # fmt: skip
    verdict = "within" if worst <= 0.02 else "NOT within"
    print(f"{verdict} 2 % (worst {worst * 100:.2f} %)")
    return 0 if worst <= 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
