"""farm.app.ports.BundleStore on SQLAlchemy: a campaign's rows out as JSON values, and
back in, column for column, into another database under new ids.

Rows travel as every column of their table but the ids that tie them to one database
(campaign, job and result ids, and the job and campaign they point at): a column added
by a later migration travels with no change here. A row is read back only if every column
it names is one this Farm knows, with a value of that column's type; a missing column
takes its default (a bundle of an older Farm). Core inserts, not the ORM: the validators
that derive columns on a fresh write would not change a copied row, and they stay out.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from functools import cached_property
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Row,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from farm.app.bundlefile import BundleError
from farm.app.ports import Pushed
from farm.db import repo
from farm.db.migrate import alembic_config, current
from farm.db.models import TERMINAL_STATES, Campaign, Job, Result, Worker, as_utc
from farm.db.session import check_database, session_factory, transaction
from farm.errors import FarmError

CAMPAIGN: Table = Campaign.__table__  # type: ignore[assignment]
JOB: Table = Job.__table__  # type: ignore[assignment]
RESULT: Table = Result.__table__  # type: ignore[assignment]
WORKER: Table = Worker.__table__  # type: ignore[assignment]
# The columns that only mean something in the database a row was read from.
LOCAL = {"campaign": {"id"}, "job": {"id", "campaign_id"}, "result": {"id", "job_id"},
         "worker": set[str]()}  # fmt: skip


def carried(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if c.key not in LOCAL[table.name]]


def to_json(table: Table, row: Row[Any]) -> dict[str, Any]:
    """A row as JSON values: times in ISO 8601 (UTC), bytes in base64."""
    values = row._mapping
    return {c.key: _out(c, values[c.key]) for c in carried(table)}


def _out(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, DateTime):
        return as_utc(value).isoformat()
    if isinstance(column.type, LargeBinary):
        return base64.b64encode(value).decode("ascii")
    return value


class RowError(ValueError):
    """A row of a bundle that does not fit this database's table."""


def from_json(table: Table, values: dict[str, Any], source: str, where: str) -> dict[str, Any]:
    """A bundle's row back as column values; RowError says which column of which row
    (`where`) is wrong, BundleError that the bundle `source` has columns this Farm lacks."""
    known = {c.key: c for c in carried(table)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BundleError(
            f"{source} has {table.name} column(s) {', '.join(unknown)} this Farm does not know: "
            "it was made by a newer Farm; upgrade Farm"
        )
    out: dict[str, Any] = {}
    for key, column in known.items():
        if key in values:
            out[key] = _in(column, values[key], f"{where}: {table.name}.{key}")
        elif not column.nullable and column.default is None and column.server_default is None:
            raise RowError(f"{where}: {table.name}.{key} is missing")
    return out


def _in(column: Column[Any], value: Any, where: str) -> Any:  # noqa: PLR0911
    kind = column.type
    if value is None:
        if not column.nullable:
            raise RowError(f"{where} is null")
        return None
    if isinstance(kind, JSON):
        return value
    if isinstance(kind, DateTime) and isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            raise RowError(f"{where} is not an ISO 8601 time: {value[:40]!r}") from None
    if isinstance(kind, LargeBinary) and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise RowError(f"{where} is not base64") from None
    if isinstance(kind, Boolean) and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        raise RowError(f"{where} is a boolean")
    if isinstance(kind, Integer) and isinstance(value, int):
        return value
    if isinstance(kind, Float) and isinstance(value, int | float):
        return float(value)
    if isinstance(kind, String) and isinstance(value, str):
        if kind.length is not None and len(value) > kind.length:
            raise RowError(f"{where} is longer than {kind.length} characters")
        return value
    raise RowError(f"{where} is {type(value).__name__}, not {kind}")


def uniform(rows: list[dict[str, Any]], what: str, source: str) -> list[dict[str, Any]]:
    """One INSERT of many rows needs the same columns in each."""
    if rows and any(row.keys() != rows[0].keys() for row in rows):
        raise BundleError(f"{source} is malformed: its {what} rows differ in their columns")
    return rows


class SqlBundleStore:
    """The bundle store on one database; the engine is made on first use."""

    def __init__(self, url: str) -> None:
        self.url = url

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return session_factory(self.url)

    def export_campaign(self, ref: str, new_id: str) -> dict[str, Any]:
        self.check_schema()
        with transaction(self.factory) as session:
            campaign = repo.find_campaign(session, ref)
            open_jobs = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.campaign_id == campaign.id, Job.state.not_in(TERMINAL_STATES))
            )
            if open_jobs:
                raise FarmError(
                    f"campaign {campaign.id} ({campaign.name}) has {open_jobs} jobs not ended: a "
                    "bundle carries an ended campaign; let it finish or `farm cancel` it first"
                )
            if campaign.bundle_id is None:
                campaign.bundle_id = new_id
                session.flush()
            return export_rows(session, campaign.id)

    def import_campaign(self, payload: dict[str, Any], source: str) -> Pushed:
        self.check_schema()
        bundle_id = payload["campaign"].get("bundle_id")
        found = self.pushed(bundle_id)
        if found is not None:
            return found
        try:
            with transaction(self.factory) as session:
                return import_rows(session, payload, source)
        except RowError as exc:
            raise BundleError(f"{source} is malformed: {exc}; nothing written") from None
        except IntegrityError:
            found = self.pushed(bundle_id)  # a push of the same bundle won the race
            if found is None:
                raise BundleError(f"{source} does not fit this database (a row breaks a "
                                  "constraint); nothing written") from None  # fmt: skip
            return found
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
            raise BundleError(f"{source} could not be loaded ({reason}); nothing written") from None

    def check_schema(self) -> None:
        """The database is up, has Farm's schema, and this Farm's newest revision."""
        check_database(self.url)
        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        at = current(self.url)
        if at != head:
            raise FarmError(
                f"the database is at schema revision {at}, this Farm writes {head}: run "
                "`farm db upgrade` (or upgrade Farm, if the database is the newer one)"
            )

    def pushed(self, bundle_id: str) -> Pushed | None:
        with transaction(self.factory) as session:
            campaign = session.scalars(
                select(Campaign).where(Campaign.bundle_id == bundle_id)
            ).first()
            if campaign is None:
                return None
            jobs, results = counts(session, campaign.id)
            return Pushed(campaign.id, campaign.name, jobs, results, already=True)


def export_rows(session: Session, campaign_id: int) -> dict[str, Any]:
    campaign = session.execute(select(CAMPAIGN).where(CAMPAIGN.c.id == campaign_id)).one()
    jobs = session.execute(
        select(JOB).where(JOB.c.campaign_id == campaign_id).order_by(JOB.c.id)
    ).all()
    results = {
        row.job_id: row
        for row in session.execute(
            select(RESULT).join(JOB, RESULT.c.job_id == JOB.c.id)
            .where(JOB.c.campaign_id == campaign_id)
        )
    }  # fmt: skip
    names = {j.worker for j in jobs} | {r.worker for r in results.values()}
    workers = session.execute(
        select(WORKER).where(WORKER.c.name.in_(names - {None})).order_by(WORKER.c.name)
    ).all()
    return {
        "campaign": to_json(CAMPAIGN, campaign),
        "jobs": [
            {
                "row": to_json(JOB, job),
                "result": to_json(RESULT, results[job.id]) if job.id in results else None,
            }
            for job in jobs
        ],  # fmt: skip
        "workers": [to_json(WORKER, w) for w in workers],
    }


def import_rows(session: Session, payload: dict[str, Any], source: str) -> Pushed:
    """Campaign, jobs (new ids, in the bundle's order), their results, and the workers this
    database has no row of (a worker it knows keeps its own row)."""
    campaign = from_json(CAMPAIGN, payload["campaign"], source, "campaign")
    if not campaign.get("bundle_id"):
        raise RowError("its campaign has no bundle id")
    jobs = uniform(
        [from_json(JOB, j["row"], source, f"job {i}") for i, j in enumerate(payload["jobs"])],
        "job",
        source,
    )
    for i, job in enumerate(jobs):
        if job.get("state") not in TERMINAL_STATES:
            raise RowError(f"job {i} is {job.get('state')!r}; a bundle carries ended jobs only")
    campaign_id = session.execute(insert(CAMPAIGN).returning(CAMPAIGN.c.id), campaign).scalar_one()
    # A plain executemany (RETURNING many rows costs psycopg seconds to parse); a job's new
    # id is found by its cell key, unique in its campaign.
    session.execute(insert(JOB), [{**job, "campaign_id": campaign_id} for job in jobs])
    new_ids = select(JOB.c.cell_key, JOB.c.id).where(JOB.c.campaign_id == campaign_id)
    ids = {key: job_id for key, job_id in session.execute(new_ids)}
    results = uniform(
        [
            {**from_json(RESULT, j["result"], source, f"job {i}"), "job_id": ids[job["cell_key"]]}
            for i, (job, j) in enumerate(zip(jobs, payload["jobs"], strict=True))
            if j.get("result") is not None
        ],
        "result",
        source,
    )
    if results:
        session.execute(insert(RESULT), results)
    workers = {
        row["name"]: row
        for row in (
            from_json(WORKER, w, source, f"worker {i}") for i, w in enumerate(payload["workers"])
        )
    }
    known = set(session.scalars(select(Worker.name).where(Worker.name.in_(workers))))
    for name, worker in workers.items():
        if name not in known:
            session.execute(insert(WORKER), worker)
    return Pushed(campaign_id, str(campaign["name"]), len(jobs), len(results), already=False)


def counts(session: Session, campaign_id: int) -> tuple[int, int]:
    in_campaign = Job.campaign_id == campaign_id
    jobs = session.scalar(select(func.count()).select_from(Job).where(in_campaign))
    results = session.scalar(select(func.count()).select_from(Result).join(Job).where(in_campaign))
    return int(jobs or 0), int(results or 0)
