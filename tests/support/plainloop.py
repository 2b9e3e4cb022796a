"""The blog's plain loop in a process of its own, the reference Farm's overhead is read against.

`Plain` starts `python -m tests.support.plainloop --cpus C --threads T` and talks JSON lines
to it: a cell (warm-up, then timed pipeline calls one by one, as the blog's `benchmark()`)
or a whole matrix (model loads included). Pinned before torch is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ALL_CPUS = os.sched_getaffinity(0)


def all_cpus() -> None:
    """preexec_fn: a worker or plain process starts with every CPU, then pins itself."""
    os.sched_setaffinity(0, ALL_CPUS)


def serve_plain(cpus: set[int], threads: int, gc_off: bool) -> None:
    """JSON lines on stdin → JSON lines on stdout. Pinned before torch is imported."""
    os.sched_setaffinity(0, cpus)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import gc

    import torch
    from transformers import logging as hf_logging
    from transformers import pipeline

    from farm.jobs import ModelSpec
    from farm.stats import describe
    from farm.workers.models import load_model

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    pipes: dict[str, Any] = {}

    def pipe_for(model: dict[str, Any]) -> Any:
        key = json.dumps(model, sort_keys=True)
        if key not in pipes:
            pipes.clear()
            loaded = load_model(ModelSpec(**model), "text-classification")
            pipes[key] = pipeline(
                "text-classification", model=loaded.model, tokenizer=loaded.tokenizer, device="cpu"
            )
        return pipes[key]

    def benchmark(pipe: Any, data: Any, warmup: int, iterations: int) -> list[int]:
        """The blog's benchmark(): warm-up calls, then timed calls one by one."""
        for _ in range(warmup):
            pipe(data)
        if gc_off:
            gc.disable()
        times = []
        for _ in range(iterations):
            tick = time.perf_counter_ns()
            pipe(data)
            tock = time.perf_counter_ns()
            times.append(tock - tick)
        gc.enable()
        return times

    def data_for(cell: dict[str, Any]) -> Any:
        # batch 1: the sentence; batch N: a list of N copies the pipeline runs one by one
        return cell["text"] if cell["batch"] == 1 else [cell["text"]] * cell["batch"]

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply(
        {
            "ready": True,
            "affinity": sorted(os.sched_getaffinity(0)),
            "threads": torch.get_num_threads(),
        }
    )
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            return
        if cmd["op"] == "cell":
            pipe = pipe_for(cmd["model"])
            times = benchmark(pipe, data_for(cmd), cmd["warmup"], cmd["iterations"])
            stats = describe(times)  # Farm's own statistics, so percentiles compare alike
            reply({"mean_ms": stats["mean_ms"], "p99_ms": stats["percentiles_ms"]["p99"]})
        elif cmd["op"] == "matrix":
            pipes.clear()
            start = time.perf_counter()
            means, load_s = [], 0.0
            for cell in cmd["cells"]:
                t0 = time.perf_counter()
                pipe = pipe_for(cell["model"])  # model loads inside the timed region
                load_s += time.perf_counter() - t0
                times = benchmark(pipe, data_for(cell), cmd["warmup"], cmd["iterations"])
                means.append(statistics.fmean(times) / 1e6)
            wall = time.perf_counter() - start
            reply({"wall_s": wall, "load_s": load_s, "means_ms": means})


class Plain:
    def __init__(self, cpus: str, threads: int, gc_off: bool):
        args = [
            sys.executable,
            "-m",
            "tests.support.plainloop",
            "--cpus",
            cpus,
            "--threads",
            str(threads),
        ]
        if gc_off:
            args.append("--gc-off")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env["HF_HUB_OFFLINE"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        self.proc = subprocess.Popen(  # noqa: S603 (our own executables)
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=all_cpus,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"plain process exited ({self.proc.wait()})")
        return dict(json.loads(line))

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--gc-off", action="store_true")
    args = parser.parse_args()
    from farm.settings import parse_cpu_list

    serve_plain(parse_cpu_list(args.cpus), args.threads, args.gc_off)


if __name__ == "__main__":
    main()
