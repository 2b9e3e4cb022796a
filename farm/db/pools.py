"""Pools as priced things: what one worker of a pool occupies costs this much per hour.

The `pool` table is optional data: a pool exists as soon as a job or a worker names it;
a row here only gives it a price, so reports can show the cost per million inferences.

Also declared here (on the models' metadata) the indexes the report queries need.
`METADATA` is therefore every table and index: what Alembic compares the schema with.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, func, select, union
from sqlalchemy.orm import Mapped, Session, mapped_column

from farm.db.models import Base, Calibration, Job, Worker, utcnow

# Reports and state counts select one campaign's jobs by state.
JOB_CAMPAIGN_STATE_INDEX = Index("ix_job_campaign_id_state", Job.campaign_id, Job.state)


class Pool(Base):
    """The hourly price of what one worker of the pool occupies (a VM, a share of a host)."""

    __tablename__ = "pool"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    price_per_hour: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# The models' metadata, complete once this module has declared the pool table and indexes.
METADATA = Base.metadata


def set_price(session: Session, name: str, price_per_hour: float, currency: str = "USD") -> Pool:
    pool = session.get(Pool, name)
    if pool is None:
        pool = Pool(name=name, price_per_hour=price_per_hour, currency=currency)
        session.add(pool)
    else:
        pool.price_per_hour, pool.currency = price_per_hour, currency
    pool.updated_at = utcnow()
    return pool


def clear_price(session: Session, name: str) -> bool:
    pool = session.get(Pool, name)
    if pool is None:
        return False
    session.delete(pool)
    return True


def prices(session: Session, names: set[str] | None = None) -> dict[str, tuple[float, str]]:
    """pool → (price per hour, currency) for the priced pools (of `names` when given)."""
    stmt = select(Pool.name, Pool.price_per_hour, Pool.currency)
    if names is not None:
        stmt = stmt.where(Pool.name.in_(names))
    return {name: (price, currency) for name, price, currency in session.execute(stmt)}


def list_pools(session: Session) -> list[dict[str, object]]:
    """Every pool a job, a worker or a price names, with its price and worker count."""
    names = union(select(Job.pool), select(Worker.pool), select(Pool.name)).subquery()
    all_names = sorted(session.scalars(select(names.c[0]).distinct()))
    priced = {p.name: p for p in session.scalars(select(Pool))}
    workers: dict[str, int] = {
        pool: count
        for pool, count in session.execute(select(Worker.pool, func.count()).group_by(Worker.pool))
    }
    out: list[dict[str, object]] = []
    for name in all_names:
        pool = priced.get(name)
        out.append(
            {
                "pool": name,
                "price_per_hour": pool.price_per_hour if pool else None,
                "currency": pool.currency if pool else None,
                "updated_at": pool.updated_at if pool else None,
                "workers": workers.get(name, 0),
            }
        )
    return out


def noise_floors(session: Session, names: set[str] | None) -> dict[str, tuple[float, float]]:
    """pool → (mean_noise, p99_noise) of its latest calibration (of `names`, or of all)."""
    stmt = select(Calibration.pool, Calibration.mean_noise, Calibration.p99_noise).order_by(
        Calibration.pool, Calibration.created_at.desc(), Calibration.id.desc()
    )
    if names is not None:
        stmt = stmt.where(Calibration.pool.in_(names))
    out: dict[str, tuple[float, float]] = {}
    for pool, mean_noise, p99_noise in session.execute(stmt):
        out.setdefault(pool, (mean_noise, p99_noise))
    return out
