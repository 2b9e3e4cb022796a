"""How a job is measured: warm-up, timed calls, durations, the adaptive stop, named profiles.

MLPerf LoadGen asks for both a minimum count and a minimum duration; the adaptive mode
keeps measuring until the chosen percentile's confidence interval is tight enough, so a
stable cell stops early and a noisy one gets the samples it needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

Seconds = StrictInt | StrictFloat

PROFILES: dict[str, dict[str, Any]] = {
    # The blog's protocol: 100 warm-up calls, 1,000 timed calls.
    "seed": {"warmup": 100, "iterations": 1000},
    # Demos and smoke tests: numbers to look at, not to decide on.
    "quick": {"warmup": 5, "iterations": 40},
    # Until p99's 95 % interval is within ±2 %, between 662 and 20,000 calls, at most 5 min.
    "adaptive": {
        "warmup": 50,
        "iterations": 662,
        "target_ci": 0.02,
        "max_iterations": 20_000,
        "max_duration_s": 300,
    },
}


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup: StrictInt = Field(default=100, ge=0, le=100_000)
    warmup_s: Seconds = Field(default=0, ge=0, le=3600)
    iterations: StrictInt = Field(default=1000, ge=1, le=1_000_000)
    min_duration_s: Seconds = Field(default=0, ge=0, le=86_400)
    max_duration_s: Seconds | None = Field(default=None, gt=0, le=86_400)
    # Adaptive mode: stop once the percentile's 95 % CI half-width / value <= target_ci.
    target_ci: Seconds | None = Field(default=None, ge=0.001, le=0.5)
    target_percentile: Seconds = Field(default=99, ge=50, le=99.9)
    max_iterations: StrictInt | None = Field(default=None, ge=1, le=10_000_000)
    # Validity: a coefficient of variation above this marks the host as too noisy.
    max_cv: Seconds = Field(default=0.25, gt=0, le=10)
    # The whole job (setup included) ends `failed: timeout` past this; the worker goes on.
    timeout_s: Seconds | None = Field(default=None, gt=0, le=7 * 86_400)

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        if self.max_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be at least min_duration_s")
        if self.max_iterations is not None and self.max_iterations < self.iterations:
            raise ValueError("max_iterations must be at least iterations")
        return self

    @property
    def call_cap(self) -> int:
        """The most timed calls this protocol may make."""
        if self.max_iterations is not None:
            return self.max_iterations
        if self.target_ci is not None or self.min_duration_s:
            return max(self.iterations * 20, 10_000)
        return self.iterations


def resolve_profile(value: Any) -> Any:
    """'seed' or {profile: seed, iterations: 50} → the profile's fields plus the overrides."""
    if isinstance(value, str):
        value = {"profile": value}
    if isinstance(value, dict) and "profile" in value:
        name = value["profile"]
        if name not in PROFILES:
            raise ValueError(f"unknown protocol profile {name!r}; known: {', '.join(PROFILES)}")
        rest = {k: v for k, v in value.items() if k != "profile"}
        return {**PROFILES[name], **rest}
    return value
