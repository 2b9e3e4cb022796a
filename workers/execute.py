"""Run one job end to end: claim it, measure it, write its result or its failure.

The same function serves the Celery task and the embedded `farm run`, so both measure
identically. A loaded runner is kept for the next job with the same model, backend and
options, so setup (load, optimise) is paid once and recorded apart from timed calls.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.flops import Efficiency, EncoderShape, compute_dtype, efficiency
from farm.jobs import JobSpec
from farm.results import JobResult
from farm.settings import Settings
from farm.stats import describe, encode_samples
from farm.store import Claim, JobStore, StoreUnavailable
from farm.verdict import check_reasons, judge, precision_reasons
from farm.workers import spool
from farm.workers.backends import get_backend
from farm.workers.backends.base import Runner, timed
from farm.workers.check import output_check
from farm.workers.gencheck import first_tokens, generation_check, generation_fields, prompt_tokens
from farm.workers.instances import measure_instances
from farm.workers.lease import Heartbeat, JobTimeout, lease_alive, my_lease, time_limit
from farm.workers.measure import TimedPhase, measure, release_heap, settle_heap
from farm.workers.probe import peak_rss_mb, run_environment
from farm.workers.quiet import LeaseLost, phase_bound, quiet_phase
from farm.workers.taskcalls import task_tokens
from farm.workers.taskcheck import COMPARES, task_check

log = logging.getLogger("farm.worker")


@dataclass
class WorkerContext:
    """Who is executing (recorded with each result) and the settings it runs under."""

    name: str
    host: str
    fingerprint: dict[str, Any]
    settings: Settings
    threads: int | None = None
    peak: dict[str, Any] | None = None  # the GEMM peak of this host, CPUs and threads
    # The worker's phase lock (workers/quiet.py), shared with its supervising process;
    # None in the embedded `farm run`, which has no supervisor.
    phase_lock: str | None = None
    # Run once, before the first backend that needs torch loads (the worker's pool child
    # sets torch's threads and measures its GEMM peak there): a selftest job imports no torch.
    before_torch: Callable[[], None] | None = field(default=None, repr=False)
    _runner: tuple[str, Runner, float] | None = field(default=None, repr=False)
    # fp32 eager reference logits by workers/check.py reference_key: once, not once per job.
    _references: dict[str, Any] = field(default_factory=dict, repr=False)

    def runner_for(self, spec: JobSpec) -> tuple[Runner, float]:
        """The cached runner when the key matches (setup 0), else a fresh one and its setup time."""
        key = spec.runner_key()
        if self._runner is not None and self._runner[0] == key:
            return self._runner[1], 0.0
        if self._runner is not None:
            self._runner = None  # free the previous model before loading the next
            release_heap()
        backend = get_backend(spec.backend)
        if self.before_torch is not None and "torch" in backend.requires:
            prepare, self.before_torch = self.before_torch, None
            prepare()
        start = time.perf_counter()
        runner = backend.load(spec)
        setup = time.perf_counter() - start
        self._runner = (key, runner, setup)
        settle_heap()  # each job's own collection then skips the runner and the imports
        return runner, setup


def execute_job(store: JobStore, job_id: int, ctx: WorkerContext) -> str:
    """Returns the job's final state as seen by this call ('skipped' if not ours to run).

    Each step is one call to the job store: claim, heartbeats while measuring (none in the
    timed phase: one extension of the lease covers it), then complete (spooled to a file
    when the store stays away) or fail. A run whose lease another attempt took over stops
    at the next step and writes nothing.
    """
    lease, settings = my_lease(), ctx.settings
    claim = claim_job(store, job_id, ctx.name, lease, settings)
    spec = claim.spec
    if spec is None:
        log.warning("job %s not run (%s); message dropped", job_id, claim.reason)
        return "skipped"
    log.info("job %s: %s %s batch %s on %s", job_id, spec.model.label, spec.input_name,
             spec.batch_size, spec.backend)  # fmt: skip
    started = time.monotonic()
    beat = Heartbeat(store, job_id, lease, max(1.0, settings.lease_ttl_s / 4))

    def phase(warm: npt.NDArray[np.int64]) -> AbstractContextManager[None]:
        bound = phase_bound(spec.protocol, warm, time.monotonic() - started,
                            settings.visibility_timeout_s)  # fmt: skip
        return quiet_phase(beat, bound, settings.lease_ttl_s, ctx.phase_lock)

    try:
        with beat, time_limit(spec.protocol.timeout_s):
            result = _measure_job(spec, ctx, phase)
            if beat.lost:
                raise LeaseLost(f"lease {lease} no longer holds job {job_id}")
    except LeaseLost as exc:
        log.error("job %s abandoned, nothing written: %s (another attempt took it over)",
                  job_id, exc)  # fmt: skip
        return "abandoned"
    except Exception as exc:  # any failure ends the job failed; the worker goes on
        reason = str(exc) if isinstance(exc, JobTimeout) else f"{type(exc).__name__}: {exc}"
        log.error("job %s failed: %s\n%s", job_id, reason, traceback.format_exc(limit=5))
        if not store.fail(job_id, reason, lease):
            log.error("job %s: this run's failure was not recorded (lease %s no longer holds "
                      "the job, or it succeeded)", job_id, lease)  # fmt: skip
        return "failed"
    outcome = write_result(store, job_id, lease, result, settings)
    if outcome == "duplicate":
        log.warning("job %s already had a result; this run's result was discarded", job_id)
    return outcome if outcome in ("spooled", "refused") else "succeeded"


def claim_job(store: JobStore, job_id: int, worker: str, lease: str, settings: Settings) -> Claim:
    """The store's claim, retried like a result while the store is away (a database
    restart cuts pooled connections: the first call after it fails, the next reconnects),
    so a blip does not cost the job its message."""
    deadline = time.monotonic() + settings.result_retry_s
    delay = 0.1
    while True:
        try:
            return store.claim(job_id, worker, lease, settings.lease_ttl_s,
                               settings.max_attempts, lease_alive)  # fmt: skip
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("job %s: database unavailable at claim (%s), retrying in %.1f s",
                        job_id, exc, delay)  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


def write_result(
    store: JobStore, job_id: int, lease: str, result: JobResult, settings: Settings
) -> str:
    """'written', 'duplicate', 'refused' (another attempt holds the job), or 'spooled' when
    the database stayed away past the retries (the file carries the lease)."""
    deadline = time.monotonic() + settings.result_retry_s
    delay = 0.5
    while True:
        try:
            done = store.complete(job_id, result, lease)
            if done.outcome == "refused":
                log.error("job %s: result of lease %s refused: %s; this run's result was "
                          "discarded", job_id, lease, done.reason)  # fmt: skip
            return done.outcome
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                path = spool.save(settings.spool_dir, job_id, lease, result)
                log.error("job %s: database unavailable (%s); result spooled to %s",
                          job_id, exc, path)  # fmt: skip
                return "spooled"
            log.warning("job %s: database unavailable, retrying in %.1f s", job_id, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


def _measure_job(spec: JobSpec, ctx: WorkerContext, phase: TimedPhase | None) -> JobResult:
    runner, setup_s = ctx.runner_for(spec)
    fn = runner.bind_measure(spec)
    generation = spec.task == "text-generation"
    if generation:
        tokens = prompt_tokens(runner, spec)
        getattr(fn, "first_token_ns", []).clear()
    else:
        tokens = task_tokens(runner.tokenizer, spec)
    limit = getattr(runner.tokenizer, "model_max_length", None)
    if isinstance(limit, int) and tokens > limit:  # HF uses ~1e30 for "no limit"
        raise ValueError(
            f"input {spec.input_name!r} is {tokens} tokens; {spec.model.label} reads at most "
            f"{limit} (shorten the input)"
        )
    extra: dict[str, Any] = {}
    if spec.cores_per_instance:  # throughput mode: N pinned copies at once, in processes
        cpus = sorted(os.sched_getaffinity(0))
        run = measure_instances(spec, cpus, f"worker {ctx.name}", phase)
        m, stats, reasons, extra = run.measurement, run.stats, run.reasons, run.environment
    else:
        m = measure(fn, spec.protocol, phase=phase)
        stats = describe(m.samples_ns, spec.batch_size)
        reasons = judge(
            stats, spec.protocol, m.warmup_ns, m.samples_ns, m.stop_reason, m.timed_s
        ).reasons
    # The timed output checked is a pipeline call's (labels, scores): forward's timed call
    # returns raw model outputs, so it gets the pipeline callable (bound outside timing).
    ttft = first_tokens(fn, m.warmup_ns.size, m.samples_ns.size) if generation else None
    if generation:
        check = generation_check(ctx._references, runner, spec)
    elif spec.task in COMPARES:  # the other encoder tasks: their model outputs, no labels
        check = task_check(ctx._references, runner, spec)
    else:
        pipeline_fn = fn if spec.measure == "pipeline" else runner.bind(spec)
        check = output_check(ctx._references, runner, spec, pipeline_fn)
    backend = getattr(runner, "identity", {}).get("backend") or {}
    reasons = reasons + check_reasons(check) + precision_reasons(backend)
    environment = {
        **run_environment(ctx.threads),
        **extra,
        "host": ctx.fingerprint,
        "gc_disabled_while_timing": True,
        "clock": "time.perf_counter_ns",
        "measure": spec.measure,
        "timed": timed(spec),
        "stop_reason": m.stop_reason,
        "runner_reused": setup_s == 0.0,
    }
    pct = stats["percentiles_ms"]
    eff = result_efficiency(ctx, runner, spec, tokens, stats["mean_ms"])
    environment["efficiency"] = {"dtype": eff.dtype, "note": eff.note, "peak": ctx.peak}
    return JobResult(
        worker=ctx.name,
        host=ctx.host,
        tokens=tokens,
        n=stats["n"],
        mean_ms=stats["mean_ms"],
        std_ms=stats["std_ms"],
        min_ms=stats["min_ms"],
        max_ms=stats["max_ms"],
        p50_ms=pct["p50"],
        p90_ms=pct["p90"],
        p99_ms=pct["p99"],
        stats=stats,
        verdict="invalid" if reasons else "valid",
        reasons=reasons,
        output_check=check,
        throughput=stats["throughput_per_s"],
        samples=encode_samples(m.samples_ns),
        warmup_samples=encode_samples(m.warmup_ns),
        first_call_ms=m.first_call_ms,
        peak_rss_mb=peak_rss_mb(),
        model_identity=runner.identity,
        environment=environment,
        setup_s=setup_s,
        measure_s=m.wall_s,
        flops=eff.flops,
        gflops=eff.gflops,
        peak_gflops=eff.peak_gflops,
        efficiency_pct=eff.percent,
        **generation_fields(spec, m.samples_ns, ttft),
    )


def result_efficiency(
    ctx: WorkerContext, runner: Runner, spec: JobSpec, tokens: int, mean_ms: float
) -> Efficiency:
    """FLOPs per call from the model's shape, GFLOP/s and % of the peak of its precision."""
    identity = getattr(runner, "identity", {}) or {}
    shape = identity.get("shape")
    dtype = compute_dtype(spec.backend_options, identity.get("backend"))
    encoder = EncoderShape(**shape) if isinstance(shape, dict) else None
    return efficiency(encoder, tokens, spec.batch_size, mean_ms, dtype, ctx.peak)
