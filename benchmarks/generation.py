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

Rounds are short (by default one warm-up and one timed call a path: Farm's measure()
starts with a gc.collect(), whose cold caches its warm-up absorbs, so the plain loop warms
up alike) so that both paths see the same load; each figure is a median over every call of
every round (one call slowed by another process does not move it): TTFT the median
per-call TTFT, TPOT (median end to end − median TTFT) / (N − 1) for both paths alike.
The aim: farm / plain within 2 %.

    .venv/bin/python benchmarks/generation.py --cpus 1 --threads 1   # 100 rounds
    .venv/bin/python benchmarks/generation.py --rounds 5 --layers 1 --cpus 0 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from farm.jobs import JobSpec, ModelSpec  # noqa: E402 (after the checkout is on the path)
from farm.protocol import Protocol  # noqa: E402
from farm.workers.backends.generate import GenerateRunner, generate_kwargs  # noqa: E402
from farm.workers.gencheck import first_tokens  # noqa: E402
from farm.workers.measure import measure  # noqa: E402

Calls = dict[str, npt.NDArray[np.float64]]  # "ttft" and "e2e": ms per timed call


def farm_round(runner: GenerateRunner, spec: JobSpec) -> Calls:
    """Per-call TTFT and end-to-end times as a Farm job measures them (measure(), the stamp)."""
    fn = runner.bind(spec)
    m = measure(fn, spec.protocol)
    ttft = first_tokens(fn, m.warmup_ns.size, m.samples_ns.size)
    assert ttft is not None
    return {"ttft": ttft / 1e6, "e2e": m.samples_ns / 1e6}


def _timed_ms(call: Callable[[], Any], warmup: int, iterations: int) -> npt.NDArray[np.float64]:
    for _ in range(warmup):
        call()
    times = np.empty(iterations, dtype=np.float64)
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        call()
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    return times


def plain_round(runner: GenerateRunner, spec: JobSpec) -> Calls:
    """Plain `generate` calls timed directly: max_new_tokens=1 (TTFT), then N (end to end)."""
    import torch

    model, inputs = runner.model, runner.inputs(spec)
    one = {**generate_kwargs(spec, runner.pad_token_id), "max_new_tokens": 1, "min_new_tokens": 1}
    full = generate_kwargs(spec, runner.pad_token_id)
    warmup, iterations = spec.protocol.warmup, spec.protocol.iterations

    def first() -> Any:
        with torch.no_grad():
            return model.generate(**inputs, **one)

    def whole() -> Any:
        with torch.no_grad():
            return model.generate(**inputs, **full)

    return {
        "ttft": _timed_ms(first, warmup, iterations),
        "e2e": _timed_ms(whole, warmup, iterations),
    }


def figures(calls: list[Calls], new_tokens: int) -> tuple[float, float]:
    """(TTFT, TPOT) in ms: the median per-call TTFT, and (median end to end − median TTFT)
    / (new_tokens − 1), over every call of every round."""
    ttft = float(np.median(np.concatenate([c["ttft"] for c in calls])))
    e2e = float(np.median(np.concatenate([c["e2e"] for c in calls])))
    return ttft, (e2e - ttft) / (new_tokens - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1, help="per path per round")
    parser.add_argument("--iterations", type=int, default=1, help="per path per round")
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
    warm = spec.model_copy(update={"protocol": Protocol(warmup=0, iterations=1, max_cv=10)})
    farm_round(runner, warm), plain_round(runner, warm)  # first calls: allocation, caches
    got: dict[str, list[Calls]] = {"farm": [], "plain": []}
    n = args.new_tokens
    for r in range(args.rounds):
        paths = [("farm", farm_round), ("plain", plain_round)]
        for name, fn in paths if r % 2 == 0 else paths[::-1]:
            got[name].append(fn(runner, spec))
        (f_ttft, f_tpot), (p_ttft, p_tpot) = (figures(got[k][-1:], n) for k in ("farm", "plain"))
        if (r + 1) % 10 == 0 or r + 1 == args.rounds:
            print(f"round {r + 1}: TTFT farm {f_ttft:.3f} ms / plain {p_ttft:.3f} ms; "
                  f"TPOT farm {f_tpot:.3f} ms / plain {p_tpot:.3f} ms")  # fmt: skip
    (f_ttft, f_tpot), (p_ttft, p_tpot) = (figures(got[k], n) for k in ("farm", "plain"))
    worst = 0.0
    for metric, farm_ms, plain_ms in (("TTFT", f_ttft, p_ttft), ("TPOT", f_tpot, p_tpot)):
        ratio = farm_ms / plain_ms
        worst = max(worst, abs(ratio - 1))
        print(f"{metric}: farm {farm_ms:.3f} ms, plain {plain_ms:.3f} ms (medians over "
              f"{args.rounds} alternating rounds): ratio {ratio:.4f} "
              f"({(ratio - 1) * 100:+.2f} %)")  # fmt: skip
    verdict = "within" if worst <= 0.02 else "NOT within"
    print(f"{verdict} 2 % (worst {worst * 100:.2f} %)")
    return 0 if worst <= 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
