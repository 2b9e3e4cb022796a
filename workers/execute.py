"""Run one job end to end: claim it, measure it, write its result or its failure.

The same function serves the Celery task and the embedded `farm run`, so both measure
identically. A loaded runner is kept for the next job with the same model, backend and
options, so setup (load, optimise) is paid once and recorded apart from timed calls.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farm.jobs import JobSpec
from farm.results import JobResult
from farm.settings import Settings
from farm.stats import describe, encode_samples
from farm.store import JobStore, StoreUnavailable
from farm.verdict import OUTPUT_TOLERANCE, check_reasons, judge, precision_reasons
from farm.workers import spool
from farm.workers.backends import get_backend
from farm.workers.backends.base import TIMED, Runner
from farm.workers.lease import JobTimeout, heartbeat, lease_alive, my_lease, time_limit
from farm.workers.measure import measure
from farm.workers.models import count_tokens
from farm.workers.probe import peak_rss_mb, run_environment

log = logging.getLogger("farm.worker")


@dataclass
class WorkerContext:
    """Who is executing (recorded with each result) and the settings it runs under."""

    name: str
    host: str
    fingerprint: dict[str, Any]
    settings: Settings
    threads: int | None = None
    _runner: tuple[str, Runner, float] | None = field(default=None, repr=False)
    # fp32 eager reference logits per (weights, input): computed once, not once per job.
    _references: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def runner_for(self, spec: JobSpec) -> tuple[Runner, float]:
        """The cached runner when the key matches (setup 0), else a fresh one and its setup time."""
        key = spec.runner_key()
        if self._runner is not None and self._runner[0] == key:
            return self._runner[1], 0.0
        self._runner = None  # free the previous model before loading the next
        start = time.perf_counter()
        runner = get_backend(spec.backend).load(spec)
        setup = time.perf_counter() - start
        self._runner = (key, runner, setup)
        return runner, setup


def execute_job(store: JobStore, job_id: int, ctx: WorkerContext) -> str:
    """Returns the job's final state as seen by this call ('skipped' if not ours to run).

    Each step is one call to the job store: claim, heartbeats while measuring, then
    complete (spooled to a file when the store stays away) or fail.
    """
    lease, settings = my_lease(), ctx.settings
    claim = store.claim(
        job_id, ctx.name, lease, settings.lease_ttl_s, settings.max_attempts, lease_alive
    )
    spec = claim.spec
    if spec is None:
        log.warning("job %s not run (%s); message dropped", job_id, claim.reason)
        return "skipped"
    log.info("job %s: %s %s batch %s on %s", job_id, spec.model.label, spec.input_name,
             spec.batch_size, spec.backend)  # fmt: skip
    try:
        with (
            heartbeat(store, job_id, lease, max(1.0, settings.lease_ttl_s / 4)),
            time_limit(spec.protocol.timeout_s),
        ):
            result = _measure_job(spec, ctx)
    except Exception as exc:  # any failure ends the job failed; the worker goes on
        reason = str(exc) if isinstance(exc, JobTimeout) else f"{type(exc).__name__}: {exc}"
        log.error("job %s failed: %s\n%s", job_id, reason, traceback.format_exc(limit=5))
        store.fail(job_id, reason)
        return "failed"
    outcome = write_result(store, job_id, result, settings)
    if outcome == "duplicate":
        log.warning("job %s already had a result; this run's result was discarded", job_id)
    return "spooled" if outcome == "spooled" else "succeeded"


def write_result(store: JobStore, job_id: int, result: JobResult, settings: Settings) -> str:
    """'written', 'duplicate', or 'spooled' when the database stayed away past the retries."""
    deadline = time.monotonic() + settings.result_retry_s
    delay = 0.5
    while True:
        try:
            return "written" if store.complete(job_id, result) else "duplicate"
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                path = spool.save(settings.spool_dir, job_id, result)
                log.error("job %s: database unavailable (%s); result spooled to %s",
                          job_id, exc, path)  # fmt: skip
                return "spooled"
            log.warning("job %s: database unavailable, retrying in %.1f s", job_id, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


def _measure_job(spec: JobSpec, ctx: WorkerContext) -> JobResult:
    runner, setup_s = ctx.runner_for(spec)
    fn = runner.bind_measure(spec)
    tokens = count_tokens(runner.tokenizer, spec.input_text)
    limit = getattr(runner.tokenizer, "model_max_length", None)
    if isinstance(limit, int) and tokens > limit:  # HF uses ~1e30 for "no limit"
        raise ValueError(
            f"input {spec.input_name!r} is {tokens} tokens; {spec.model.label} reads at most "
            f"{limit} (shorten the input)"
        )
    m = measure(fn, spec.protocol)
    stats = describe(m.samples_ns, spec.batch_size)
    verdict = judge(stats, spec.protocol, m.warmup_ns, m.samples_ns, m.stop_reason, m.timed_s)
    check = output_check(ctx, runner, spec)
    backend = getattr(runner, "identity", {}).get("backend") or {}
    reasons = verdict.reasons + check_reasons(check) + precision_reasons(backend)
    environment = {
        **run_environment(ctx.threads),
        "host": ctx.fingerprint,
        "gc_disabled_while_timing": True,
        "clock": "time.perf_counter_ns",
        "measure": spec.measure,
        "timed": TIMED[spec.measure],
        "stop_reason": m.stop_reason,
        "runner_reused": setup_s == 0.0,
    }
    pct = stats["percentiles_ms"]
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
    )


def output_check(ctx: WorkerContext, runner: Runner, spec: JobSpec) -> dict[str, Any]:
    """The backend's logits against fp32 eager on the same input, outside the timing."""
    logits = getattr(runner, "logits", None)
    reference = getattr(runner, "reference_logits", None)
    if logits is None or reference is None:
        return {"status": "unavailable", "reason": f"backend {spec.backend} exposes no logits"}
    key = (str(runner.identity.get("weights_sha256")), spec.input_text)
    if key not in ctx._references:
        ctx._references[key] = np.asarray(reference(spec), dtype=np.float64)
    ref = ctx._references[key]
    got = np.asarray(logits(spec), dtype=np.float64)
    rows = min(len(got), len(ref))
    got, ref = got[:rows], ref[:rows]
    return {
        "status": "checked",
        "reference": "fp32 eager, same weights and input",
        "label_agreement": float(np.mean(got.argmax(-1) == ref.argmax(-1))),
        "max_abs_logit_diff": float(np.max(np.abs(got - ref))),
        "tolerance": OUTPUT_TOLERANCE,
    }

