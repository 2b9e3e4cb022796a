"""The dashboard's own reads (`farm serve`): campaigns with states per pool, one job in
full, the workers with the database's clock, campaigns of one name for trends.

Every number of a report or a comparison comes from `farm.db.reports` through the report
use cases; this module only gathers what those do not: counts, a job's record, workers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db import repo
from farm.db.clock import db_now
from farm.db.models import TERMINAL_STATES, Campaign, Job, Result, as_utc
from farm.db.reports.jobs import report_rows
from farm.reports.selectors import Filters
from farm.stats import NS_PER_MS, decode_samples


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat(timespec="seconds")


def campaign_overview(
    session: Session, limit: int = 50, campaign_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest first: each campaign's jobs by state, by pool and state, and results by
    validity verdict (what the campaigns page shows and its progress bars poll)."""
    stmt = select(Campaign.id, Campaign.name, Campaign.created_at).order_by(Campaign.id.desc())
    stmt = stmt.where(Campaign.id == campaign_id) if campaign_id is not None else stmt
    found = list(session.execute(stmt.limit(limit)))
    out: dict[int, dict[str, Any]] = {
        cid: {"id": cid, "name": name, "created_at": _iso(created), "jobs": 0, "ended": 0,
              "states": {}, "pools": {}, "validity": {"valid": 0, "invalid": 0}}
        for cid, name, created in found
    }  # fmt: skip
    if not out:
        return []
    counts = session.execute(
        select(Job.campaign_id, Job.pool, Job.state, func.count())
        .where(Job.campaign_id.in_(out))
        .group_by(Job.campaign_id, Job.pool, Job.state)
    )
    for cid, pool, state, n in counts:
        row = out[cid]
        row["jobs"] += n
        row["ended"] += n if state in TERMINAL_STATES else 0
        row["states"][state] = row["states"].get(state, 0) + n
        row["pools"].setdefault(pool, {})[state] = n
    verdicts = session.execute(
        select(Job.campaign_id, Result.verdict, func.count())
        .join(Result, Result.job_id == Job.id)
        .where(Job.campaign_id.in_(out))
        .group_by(Job.campaign_id, Result.verdict)
    )
    for cid, verdict, n in verdicts:
        key = verdict if verdict in ("valid", "invalid") else "unjudged"
        out[cid]["validity"][key] = out[cid]["validity"].get(key, 0) + n
    return list(out.values())


def job_detail(session: Session, job_id: int) -> dict[str, Any] | None:
    """One job: its `farm report --format json` row, plus what it ran with (protocol,
    fingerprint, stop reason, output check), its attempts, and its raw and warm-up samples
    in ms (under the keys `samples_ms` and `warmup_ms`, numpy arrays, for the figures)."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    narrow = Filters(models=(job.model,), inputs=(job.input_name,), batches=(job.batch_size,),
                     backends=(job.backend,), pools=(job.pool,))  # fmt: skip
    rows = [r for r in report_rows(session, [job.campaign_id], narrow) if r["job"] == job_id]
    detail: dict[str, Any] = dict(rows[0]) if rows else {"job": job_id}
    environment: dict[str, Any] = {}
    result = job.result
    if result is not None:
        environment = dict(result.environment or {})
    detail.update(
        queue=job.queue,
        created_at=_iso(job.created_at),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        protocol=(job.spec or {}).get("protocol") or {},
        history=list(job.history or []),
        stop_reason=environment.get("stop_reason"),
        fingerprint=environment.get("host") or {},
        environment={k: v for k, v in environment.items() if k != "host"},
        stats=(result.stats if result is not None else None) or {},
        model_identity=(result.model_identity if result is not None else None) or {},
        first_call_ms=result.first_call_ms if result is not None else None,
        setup_s=result.setup_s if result is not None else None,
        measure_s=result.measure_s if result is not None else None,
    )
    detail["samples_ms"] = _ms(result.samples if result is not None else None)
    detail["warmup_ms"] = _ms(result.warmup_samples if result is not None else None)
    return detail


def _ms(blob: bytes | None) -> Any:
    if not blob:
        return None
    return decode_samples(blob).astype("float64") / NS_PER_MS


def workers_view(session: Session, ttl_s: int) -> list[dict[str, Any]]:
    """Every registered worker, with its age and liveness by the database's clock (as
    `farm hosts` judges them)."""
    now = db_now(session)
    live = {w.name for w in repo.live_workers(session, ttl_s)}
    out = []
    for w in repo.list_workers(session):
        age = (now - as_utc(w.last_seen)).total_seconds()
        fingerprint = w.fingerprint or {}
        out.append(
            {
                "worker": w.name,
                "pool": w.pool,
                "host": w.hostname,
                "hardware_class": w.hardware_class,
                "cpu_model": fingerprint.get("cpu_model"),
                "stack": fingerprint.get("stack", "main"),
                "allocator": w.allocator or "default",
                "cpus": w.cpus,
                "threads": w.threads,
                "queues": list(w.queues or []),
                "peak": dict(w.peak or {}),
                "started_at": _iso(w.started_at),
                "last_seen": _iso(w.last_seen),
                "age_s": round(age, 1),
                "live": w.name in live,
            }
        )
    return out


def campaign_names(session: Session) -> list[tuple[str, int]]:
    """(name, how many campaigns) for names used more than once first: trend candidates."""
    rows = session.execute(
        select(Campaign.name, func.count()).group_by(Campaign.name).order_by(Campaign.name)
    )
    found = [(name, n) for name, n in rows]
    return sorted(found, key=lambda r: (-min(r[1], 2), r[0]))


def campaigns_named(session: Session, name: str, limit: int) -> list[tuple[int, str, str | None]]:
    """The newest `limit` campaigns of this name, oldest first: (id, name, created at)."""
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.created_at)
        .where(Campaign.name == name)
        .order_by(Campaign.id.desc())
        .limit(limit)
    )
    return [(cid, n, _iso(created)) for cid, n, created in reversed(list(rows))]
