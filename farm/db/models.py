"""SQLAlchemy models: the database is the system of record; Redis is only transport."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from farm.stacks import recorded_stack

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATES = ("succeeded", "failed", "cancelled")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    matrix: Mapped[dict[str, Any]]
    # The bundle it travelled in (farm.app.bundles): set when it is exported or pushed, so
    # a second push of the same campaign finds it instead of writing it again.
    bundle_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    # Every message of its jobs carries it (farm.broker.PRIORITIES), re-sends included.
    priority: Mapped[str] = mapped_column(String(8), server_default="normal")
    jobs: Mapped[list[Job]] = relationship(back_populates="campaign", order_by="Job.id")


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (UniqueConstraint("campaign_id", "cell_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    cell_key: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    spec: Mapped[dict[str, Any]]
    # Denormalised from spec so reports and queue routing filter without parsing JSON.
    pool: Mapped[str] = mapped_column(String(100))
    backend: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(300))
    input_name: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int]
    # Also from spec, set with it (`_spec_columns`): what reports group on and compare
    # matches on, read without parsing JSON (that parsing was half a report's SQL time).
    batching: Mapped[str] = mapped_column(String(16), server_default="sequential")
    allocator: Mapped[str] = mapped_column(String(16), server_default="default")
    options: Mapped[str] = mapped_column(Text, server_default="{}")  # canonical JSON
    mode: Mapped[str] = mapped_column(String(16), server_default="fixed")  # or adaptive
    # What a timed call covers (farm.jobs.MEASURES): the pipeline call or the model forward.
    measure: Mapped[str] = mapped_column(String(16), server_default="pipeline")
    input_hash: Mapped[str] = mapped_column(String(32), server_default="")  # md5 of the text
    # The software stack it was sent to run in (its result records the one it ran in).
    stack: Mapped[str] = mapped_column(String(50), server_default="main")
    # Throughput mode: copies measured at once and CPUs each (0: the worker's own pinning).
    instances: Mapped[int] = mapped_column(server_default="1")
    cores_per_instance: Mapped[int] = mapped_column(server_default="0")
    # The task (farm.jobs.TASKS) and, for text-generation, new tokens per call and the
    # synthetic prompt's length (0: not generation / the input is the prompt).
    task: Mapped[str] = mapped_column(String(32), server_default="text-classification")
    new_tokens: Mapped[int] = mapped_column(server_default="0")
    prompt_tokens: Mapped[int] = mapped_column(server_default="0")
    # The broker queue the job was sent to: who may run it (pool, allocator, ...).
    queue: Mapped[str] = mapped_column(String(200), server_default="")
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    # The lease of the process running the job ("host:pid") and its last heartbeat: a
    # second delivery of a job a live process holds is dropped; a stale lease is recovered.
    lease: Mapped[str | None] = mapped_column(String(300))
    heartbeat_at: Mapped[datetime | None]
    # The lease holds without heartbeats until then: set once before a timed phase (which
    # writes nothing), cleared by the next heartbeat.
    lease_until: Mapped[datetime | None]
    # Every ended attempt and refused late write: {"attempt", "worker", "lease", "error",
    # "at"}; reasons are never lost.
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    campaign: Mapped[Campaign] = relationship(back_populates="jobs")
    result: Mapped[Result | None] = relationship(back_populates="job", uselist=False)

    @validates("spec")
    def _spec_columns(self, _key: str, spec: dict[str, Any]) -> dict[str, Any]:
        for name, value in spec_columns(spec).items():
            setattr(self, name, value)
        for name, value in spec_task_columns(spec).items():
            setattr(self, name, value)
        self.stack = spec_stack(spec)
        return spec


def spec_columns(spec: dict[str, Any]) -> dict[str, Any]:
    """The job columns copied from its spec JSON (the same rules as migrations 0006, 0007)."""
    protocol = spec.get("protocol") or {}
    return {
        "batching": spec.get("batching") or "sequential",
        "allocator": spec.get("allocator") or "default",
        "options": canonical_json(spec.get("backend_options") or {}),
        "mode": "fixed" if protocol.get("target_ci") is None else "adaptive",
        "input_hash": _md5(input_of(spec)),
        "instances": spec.get("instances") or 1,
        "cores_per_instance": spec.get("cores_per_instance") or 0,
        "measure": spec.get("measure") or "pipeline",
    }


def input_of(spec: dict[str, Any]) -> str:
    """The text a job's input hash is taken of: the input, and a QA input's context."""
    text = str(spec.get("input_text", ""))
    context = spec.get("input_context")
    return text if context is None else json.dumps([text, context])


def spec_task_columns(spec: dict[str, Any]) -> dict[str, Any]:
    """The task columns copied from a spec (migration 0014's defaults for older jobs)."""
    return {
        "task": spec.get("task") or "text-classification",
        "new_tokens": spec.get("new_tokens") or 0,
        "prompt_tokens": spec.get("prompt_tokens") or 0,
    }


def spec_stack(spec: dict[str, Any]) -> str:
    """The job's stack column (migration 0007 fills old rows with the same rule)."""
    return str(spec.get("stack") or "main")


def canonical_json(value: Any) -> str:
    """One text per value: equal option sets written in another key order group together."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Worker(Base):
    """A registered `farm worker` process: its pool and the fingerprint of its host."""

    __tablename__ = "worker"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    pool: Mapped[str] = mapped_column(String(100), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    cpus: Mapped[str | None] = mapped_column(String(200))
    threads: Mapped[int | None]
    fingerprint: Mapped[dict[str, Any]]
    queues: Mapped[list[str] | None] = mapped_column(JSON)
    allocator: Mapped[str | None] = mapped_column(String(32))
    hardware_class: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    # The measured GEMM peak (farm.workers.peak): fp32_gflops, bf16_gflops and how it was
    # measured (host, cpus, threads, sizes); dropped when the worker re-registers otherwise.
    peak: Mapped[dict[str, Any] | None]
    # Set by `farm hosts drain`: the worker finishes its job in hand and exits (stopped_at:
    # when it did, or left on SIGTERM); both cleared when a worker registers under the name.
    drain_requested_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]


class Result(Base):
    """One per job (unique job_id): the summary, raw samples and everything it ran with."""

    __tablename__ = "result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    worker: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(255))
    tokens: Mapped[int]
    n: Mapped[int]
    mean_ms: Mapped[float] = mapped_column(Float)
    std_ms: Mapped[float] = mapped_column(Float)
    min_ms: Mapped[float] = mapped_column(Float)
    max_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    samples: Mapped[bytes] = mapped_column(LargeBinary)
    model_identity: Mapped[dict[str, Any]]
    environment: Mapped[dict[str, Any]]
    setup_s: Mapped[float] = mapped_column(Float)
    measure_s: Mapped[float] = mapped_column(Float)
    # Measurement you can trust: the full statistics with confidence intervals, the
    # validity verdict and its reasons, the warm-up kept apart from the timed calls.
    stats: Mapped[dict[str, Any] | None]
    verdict: Mapped[str | None] = mapped_column(String(16))
    reasons: Mapped[list[str] | None] = mapped_column(JSON)
    warmup_samples: Mapped[bytes | None] = mapped_column(LargeBinary)
    throughput: Mapped[float | None] = mapped_column(Float)
    first_call_ms: Mapped[float | None] = mapped_column(Float)
    peak_rss_mb: Mapped[float | None] = mapped_column(Float)
    # The measured backend's outputs against fp32 eager on the same inputs (untimed).
    output_check: Mapped[dict[str, Any] | None]
    # From model_identity, set with it: compare matches on the weights, reports flag random ones.
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    random_weights: Mapped[bool] = mapped_column(server_default=false())
    # From environment, set with it: the stack the result ran in, NAME@LOCK (farm.stacks);
    # NULL where the fingerprint lacks it (reports then read the job's stack).
    stack: Mapped[str | None] = mapped_column(String(100))
    # Efficiency (farm.flops): FLOPs per call, achieved GFLOP/s, the peak it is read against.
    flops: Mapped[float | None] = mapped_column(Float)
    gflops: Mapped[float | None] = mapped_column(Float)
    peak_gflops: Mapped[float | None] = mapped_column(Float)
    efficiency_pct: Mapped[float | None] = mapped_column(Float)
    # text-generation (NULL otherwise): time to first token per timed call (int64 ns, as
    # `samples`), and the summaries from the raw per-call samples (farm.generation).
    ttft_samples: Mapped[bytes | None] = mapped_column(LargeBinary)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    ttft_p99_ms: Mapped[float | None] = mapped_column(Float)
    tpot_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p99_ms: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)

    job: Mapped[Job] = relationship(back_populates="result")

    @validates("model_identity")
    def _identity_columns(self, _key: str, identity: dict[str, Any]) -> dict[str, Any]:
        self.weights_sha256 = identity.get("weights_sha256")
        self.random_weights = identity.get("weights") == "random"
        return identity

    @validates("environment")
    def _stack_column(self, _key: str, environment: dict[str, Any]) -> dict[str, Any]:
        self.stack = recorded_stack(environment)
        return environment


class Calibration(Base):
    """A host's noise floor: run-to-run difference of the same A/A cell (`farm calibrate`)."""

    __tablename__ = "calibration"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool: Mapped[str] = mapped_column(String(100), index=True)
    worker: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    mean_noise: Mapped[float] = mapped_column(Float)
    p99_noise: Mapped[float] = mapped_column(Float)
    jobs: Mapped[list[int]] = mapped_column(JSON)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
