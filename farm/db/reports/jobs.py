"""The per-job query: one object per job (the JSON contract), and campaigns by reference.

The keys of `REPORT_KEYS` are a contract read by other tools: later versions may add
keys, never rename or drop these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from farm.db import repo
from farm.db.models import Campaign, Job, Result
from farm.db.reports.cells import (
    filter_conditions,
    parse_options,
    parse_reasons,
    stack_column,
)
from farm.db.reports.tuning import fetch_all
from farm.generation import GENERATION_KEYS
from farm.reports.cells import throughput
from farm.reports.selectors import Filters

REPORT_KEYS = (
    "campaign", "job", "state", "model", "input", "tokens", "batch_size", "backend",
    "pool", "host", "worker", "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms",
)  # fmt: skip


def resolve_campaigns(session: Session, refs: Iterable[str]) -> list[tuple[int, str]]:
    """(id, name) of each campaign reference (an id or a name), in order, without repeats."""
    found: dict[int, str] = {}
    for ref in refs:
        campaign = repo.find_campaign(session, ref)
        found.setdefault(campaign.id, campaign.name)
    return list(found.items())


def report_rows(
    session: Session, campaign_ids: list[int], filters: Filters | None = None
) -> list[dict[str, Any]]:
    """One object per job, with its result's summary when it has one (no samples loaded)."""
    stmt = select(
        Job.id,
        Job.campaign_id,
        Campaign.name,
        Job.state,
        Job.model,
        Job.input_name,
        Job.batch_size,
        Job.batching,
        Job.backend,
        Job.options,
        Job.allocator,
        Job.pool,
        Job.worker,
        Job.attempts,
        Job.error,
        Result.id,
        Result.host,
        Result.tokens,
        Result.n,
        Result.mean_ms,
        Result.p50_ms,
        Result.p90_ms,
        Result.p99_ms,
        Result.std_ms,
        Result.min_ms,
        Result.max_ms,
        Result.throughput,
        Result.verdict,
        cast(Result.reasons, String),  # as text: few distinct values, parsed once each
        Result.model_identity["weights"].as_string(),
        Result.weights_sha256,
        Result.model_identity["tokenizer"].as_string(),
        Result.output_check,
        stack_column(),
        Result.flops,
        Result.gflops,
        Result.peak_gflops,
        Result.efficiency_pct,
        Job.instances,
        Job.cores_per_instance,
        Job.measure,
        Job.task,
        Job.new_tokens,
        Job.prompt_tokens,
        *(getattr(Result, key) for key in GENERATION_KEYS),
    ).select_from(Job)
    stmt = (
        stmt.join(Campaign, Campaign.id == Job.campaign_id)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(*filter_conditions(campaign_ids, filters or Filters()))
        .order_by(Job.campaign_id, Job.id)
    )
    rows = []
    for r in fetch_all(session, stmt):
        has = r[15] is not None
        row: dict[str, Any] = {
            "campaign": r[1],
            "campaign_name": r[2],
            "job": r[0],
            "state": r[3],
            "model": r[4],
            "input": r[5],
            "tokens": r[17],
            "batch_size": r[6],
            "batching": r[7],
            "backend": r[8],
            "backend_options": dict(parse_options(r[9])[0]),
            "allocator": r[10],
            "pool": r[11],
            "host": r[16],
            "worker": r[12],
            "attempts": r[13],
            "error": r[14],
            "n": r[18],
            "mean_ms": r[19],
            "p50_ms": r[20],
            "p90_ms": r[21],
            "p99_ms": r[22],
            "std_ms": r[23],
            "min_ms": r[24],
            "max_ms": r[25],
            "throughput": throughput(r[26], r[19], r[6]) if has else None,
            "verdict": r[27],
            "reasons": list(parse_reasons(r[28])),
            "weights": r[29],
            "weights_sha256": r[30],
            "tokenizer": r[31],
            "output_check": r[32],
            "stack": r[33],
            "flops": r[34],
            "gflops": r[35],
            "peak_gflops": r[36],
            "efficiency_pct": r[37],
            "instances": r[38],
            "cores_per_instance": r[39],
            "measure": r[40],
        }
        if r[41] != "text-classification":  # a classification row keeps its keys, no more
            row |= {"task": r[41], "new_tokens": r[42], "prompt_tokens": r[43] or None}
            row |= dict(zip(GENERATION_KEYS, r[44:], strict=True))
        rows.append(row)
    return rows
