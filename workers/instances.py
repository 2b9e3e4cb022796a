"""Throughput mode: N pinned copies of a cell measured at once (MLPerf's Offline idea).

The parent starts N fresh interpreters (`python -m farm.workers.instances`: exec'd, never
a fork of a process that has torch loaded), each pinned to its own C CPUs with C torch
threads. Each loads the runner, binds and warms up, then reports ready and waits; once
every copy is ready the parent notes the release time and lets them all go (the
barrier), so their timed phases start together. Each measures with the same loop as a
single job (farm.workers.measure), keeping each call's end time, and sends back its
samples as JSON lines on its own pipe — numbers only, never a pickled object.

Messages, one JSON line each: parent → child `{"spec", "cpus"}` then `"go"`; child →
parent `{"ready": ns, "warmup_ns": [...]}` then `{"result": {...}}`, or `{"error": "..."}`
and exit 1. The parent holds the job's quiet phase (farm.workers.quiet) from the release
to the last result, bounded by the copies' warm-up.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from farm.instances import common_window, first_start, split_cpus
from farm.jobs import JobSpec
from farm.stats import describe, encode_samples
from farm.verdict import judge
from farm.workers.measure import Measurement, TimedPhase

MODULE = "farm.workers.instances"


@dataclass(frozen=True)
class Instance:
    """What one copy measured, as it sent it back."""

    index: int
    cpus: list[int]
    pid: int
    ready_ns: int
    setup_s: float
    m: Measurement


@dataclass(frozen=True)
class InstancesRun:
    """The copies of one job: the pooled measurement, the statistics and reasons to store."""

    measurement: Measurement  # every instance's samples, in instance order
    stats: dict[str, Any]  # describe() of the pooled samples + throughput over the window
    reasons: list[str]
    environment: dict[str, Any]


def measure_instances(
    spec: JobSpec, cpus: list[int], who: str, phase: TimedPhase | None = None
) -> InstancesRun:
    """Run the job's instances on `cpus` (this worker's set) and aggregate them; the copies'
    timed phase runs inside `phase` (given all their warm-up samples), as a single process's
    does, so this process's own heartbeat and its supervisor keep still meanwhile."""
    groups = split_cpus(cpus, spec.instances, spec.cores_per_instance or 1, who)
    procs: list[subprocess.Popen[str]] = []
    try:
        for group in groups:
            env = dict(os.environ, OMP_NUM_THREADS=str(len(group)),
                       MKL_NUM_THREADS=str(len(group)))  # fmt: skip
            proc = subprocess.Popen(  # noqa: S603 (this interpreter, our own module)
                [sys.executable, "-m", MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            procs.append(proc)
            _send(proc, {"spec": spec.to_json(), "cpus": group})
        readies = [_receive(p, i, "ready") for i, p in enumerate(procs)]
        ready = [int(r["ready"]) for r in readies]
        warm = np.concatenate([np.asarray(r["warmup_ns"], dtype=np.int64) for r in readies])
        with phase(warm) if phase is not None else nullcontext():
            release_ns = time.perf_counter_ns()  # every copy is warm and waiting: go
            for proc in procs:
                _send(proc, "go")
            results = [_receive(p, i, "result")["result"] for i, p in enumerate(procs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    instances = [_instance(i, groups[i], procs[i].pid, ready[i], r) for i, r in enumerate(results)]
    return aggregate(spec, instances, release_ns)


def aggregate(spec: JobSpec, instances: list[Instance], release_ns: int) -> InstancesRun:
    """The pooled headline statistics, each instance's own, and throughput over the window."""
    ms = [inst.m for inst in instances]
    ends = [m.ends_ns for m in ms if m.ends_ns is not None]
    window = common_window([m.samples_ns for m in ms], ends)
    pooled = Measurement(
        warmup_ns=np.concatenate([m.warmup_ns for m in ms]),
        samples_ns=np.concatenate([m.samples_ns for m in ms]),
        wall_s=max(m.wall_s for m in ms),
        stop_reason=", ".join(dict.fromkeys(m.stop_reason for m in ms)),
        timed_s=min(m.timed_s for m in ms),
    )
    stats = describe(pooled.samples_ns, spec.batch_size)
    stats["latency_pooled_over_instances"] = True
    stats["throughput_per_s"] = window.throughput(spec.batch_size)
    stats["window"] = {**window.as_dict(spec.batch_size), "release_ns": release_ns}
    by_reason: dict[str, list[str]] = {}  # a reason → the instances it holds for
    per_instance = []
    for inst, calls in zip(instances, window.calls, strict=True):
        m = inst.m
        verdict = judge(describe(m.samples_ns), spec.protocol, m.warmup_ns, m.samples_ns,
                        m.stop_reason, m.timed_s)  # fmt: skip
        for reason in verdict.reasons:
            by_reason.setdefault(reason, []).append(str(inst.index))
        assert m.ends_ns is not None
        per_instance.append({
            **describe(m.samples_ns, spec.batch_size),
            "instance": inst.index,
            "cpus": inst.cpus,
            "pid": inst.pid,
            "setup_s": inst.setup_s,
            "stop_reason": m.stop_reason,
            "warmup_n": int(m.warmup_ns.size),
            "ready_ns": inst.ready_ns,
            "start_ns": first_start(m.samples_ns, m.ends_ns),
            "end_ns": int(m.ends_ns[-1]),
            "calls_in_window": calls,
            "ends_ns": base64.b64encode(encode_samples(m.ends_ns)).decode(),
        })  # fmt: skip
    stats["instances"] = per_instance
    reasons = [
        f"instance{'s' if len(which) > 1 else ''} {', '.join(which)}: {reason}"
        for reason, which in by_reason.items()
    ]
    if window.throughput(spec.batch_size) is None:
        reasons.append("instances never measured at the same time: no common window")
    environment = {
        "instances": spec.instances,
        "cores_per_instance": spec.cores_per_instance,
        "instance_cpus": [inst.cpus for inst in instances],
        "instance_threads": spec.cores_per_instance,
        "barrier": "every instance warm and waiting, then released by the parent at release_ns",
        "instance_setup_s": max(inst.setup_s for inst in instances),
    }
    return InstancesRun(pooled, stats, reasons, environment)


def _instance(index: int, cpus: list[int], pid: int, ready: int, r: dict[str, Any]) -> Instance:
    def arr(key: str) -> npt.NDArray[np.int64]:
        return np.asarray(r[key], dtype=np.int64)

    m = Measurement(arr("warmup_ns"), arr("samples_ns"), float(r["wall_s"]),
                    str(r["stop_reason"]), float(r["timed_s"]), arr("ends_ns"))  # fmt: skip
    return Instance(index, cpus, pid, ready, float(r["setup_s"]), m)


def _send(proc: subprocess.Popen[str], message: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _receive(proc: subprocess.Popen[str], index: int, key: str) -> dict[str, Any]:
    """The next message of instance `index`, which must have `key`; its error, or its death,
    as an exception."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    message = json.loads(line) if line.strip() else {}
    if key in message:
        return dict(message)
    why = message.get("error") or f"exited with status {proc.wait()} before sending {key}"
    raise RuntimeError(f"instance {index}: {why}")


# --- the child -----------------------------------------------------------------------------


def _child(channel: IO[str]) -> None:
    """One instance: pin, load, warm up, wait for the parent's go, measure, report."""
    config = json.loads(sys.stdin.readline())
    cpus = [int(c) for c in config["cpus"]]
    from farm.workers.pinning import pin

    pin(set(cpus), len(cpus))
    import torch

    torch.set_num_threads(len(cpus))
    from farm.workers.backends import get_backend
    from farm.workers.measure import measure

    spec = JobSpec.from_json(config["spec"])
    start = time.perf_counter()
    fn = get_backend(spec.backend).load(spec).bind_measure(spec)
    setup_s = time.perf_counter() - start

    @contextmanager
    def barrier(warm: npt.NDArray[np.int64]) -> Iterator[None]:
        _write(channel, {"ready": time.perf_counter_ns(), "warmup_ns": warm.tolist()})
        if sys.stdin.readline().strip() != '"go"':
            raise SystemExit("the parent went away before the barrier was released")
        yield

    m = measure(fn, spec.protocol, phase=barrier, keep_ends=True)
    result = {
        "warmup_ns": m.warmup_ns.tolist(),
        "samples_ns": m.samples_ns.tolist(),
        "ends_ns": m.ends_ns.tolist() if m.ends_ns is not None else [],
        "wall_s": m.wall_s,
        "timed_s": m.timed_s,
        "stop_reason": m.stop_reason,
        "setup_s": setup_s,
    }
    _write(channel, {"result": result})


def _write(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main() -> None:
    # The messages own stdout; whatever a library prints goes to stderr (the worker's log).
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        _child(channel)
    except BaseException as exc:  # report any failure to the parent, then exit non-zero
        _write(channel, {"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
