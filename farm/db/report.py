"""Report queries: one row per job, with its result when it has one.

The keys of `REPORT_KEYS` are a contract read by other tools: later versions may add
keys, never rename or drop these.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.db.models import Campaign, Job, Result

REPORT_KEYS = (
    "campaign", "job", "state", "model", "input", "tokens", "batch_size", "backend",
    "pool", "host", "worker", "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms",
)  # fmt: skip


def report_rows(session: Session, campaign_ids: list[int]) -> list[dict[str, Any]]:
    stmt = (
        select(Job, Campaign.name, Result)
        .join(Campaign, Campaign.id == Job.campaign_id)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(Job.campaign_id.in_(campaign_ids))
        .order_by(Job.campaign_id, Job.id)
    )
    rows = []
    for job, campaign_name, result in session.execute(stmt):
        spec = job.spec
        row: dict[str, Any] = {
            "campaign": job.campaign_id,
            "campaign_name": campaign_name,
            "job": job.id,
            "state": job.state,
            "model": job.model,
            "input": job.input_name,
            "tokens": result.tokens if result else None,
            "batch_size": job.batch_size,
            "batching": spec.get("batching"),
            "backend": job.backend,
            "backend_options": spec.get("backend_options", {}),
            "pool": job.pool,
            "host": result.host if result else None,
            "worker": job.worker,
            "attempts": job.attempts,
            "error": job.error,
        }
        for key in ("n", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "min_ms", "max_ms"):
            row[key] = getattr(result, key) if result else None
        row["weights"] = result.model_identity.get("weights") if result else None
        row["tokenizer"] = result.model_identity.get("tokenizer") if result else None
        rows.append(row)
    return rows
