"""Partial cells of a matrix: what `exclude:` leaves out and `protocol_overrides:` retune."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from farm.jobs import JobSpec, Measure


class CellMatch(BaseModel):
    """A partial cell: it matches every job whose given fields all agree."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | None = None
    batch_size: int | None = None
    backend: str | None = None
    pool: str | None = None
    allocator: str | None = None
    instances: int | None = None
    cores_per_instance: int | None = None
    measure: Measure | None = None
    new_tokens: int | None = None

    def _wanted(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, include=set(CellMatch.model_fields))

    def matches(self, job: JobSpec) -> bool:
        pairs = {
            "model": job.model.name,
            "input": job.input_name,
            "batch_size": job.batch_size,
            "backend": job.backend,
            "pool": job.pool,
            "allocator": job.allocator,
            "instances": job.instances,
            "cores_per_instance": job.cores_per_instance,
            "measure": job.measure,
            "new_tokens": job.new_tokens,
        }
        return all(pairs[k] == v for k, v in self._wanted().items())

    @model_validator(mode="after")
    def _not_empty(self) -> CellMatch:
        if not self._wanted():
            raise ValueError(
                f"{type(self).__name__.lower()} needs at least one of "
                f"{', '.join(CellMatch.model_fields)}"
            )
        return self


class Exclude(CellMatch):
    """Every job matching this partial cell is left out."""


class ProtocolOverride(CellMatch):
    """Jobs matching this partial cell are measured with these protocol fields instead."""

    protocol: dict[str, Any]
