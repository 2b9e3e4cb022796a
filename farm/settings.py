"""Settings from the environment, overridable by CLI options; credentials are never printed."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "sqlite:///farm.db"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    # Redis redelivers an unacked task after this many seconds (celery#5935): it must
    # outlast the longest job, or a running job is delivered twice.
    visibility_timeout_s: int = 6 * 3600
    # A worker that has not been seen for this long is reported as not live.
    worker_ttl_s: int = 120
    # How often a worker's supervising process records that it is alive and flushes its
    # spool; well under worker_ttl_s.
    worker_heartbeat_s: float = 15.0
    # A running job's lease is stale (its process presumed dead) after this long without
    # a heartbeat; `farm recover` then sends it again.
    lease_ttl_s: int = 60
    # A job whose runs keep dying (e.g. a backend that segfaults) ends failed after this many.
    max_attempts: int = 3
    # Writing a result retries for about this long before spooling it to a local file.
    result_retry_s: float = 30.0
    spool_dir: str = "~/.cache/farm/spool"
    # Model entries that are filesystem paths must lie under one of these (FARM_MODEL_ROOTS).
    model_roots: tuple[Path, ...] = field(default_factory=lambda: model_roots())
    # The GEMM peak (`farm calibrate --peak`, and `farm run` once per host): square matrix
    # sizes and timed products per size (FARM_PEAK_SIZES "512,1024,2048", FARM_PEAK_REPEATS).
    peak_sizes: tuple[int, ...] = (512, 1024, 2048)
    peak_repeats: int = 3

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: str | None) -> Settings:
        env = dict(os.environ) if env is None else env
        values: dict[str, object] = {
            "database_url": env.get("FARM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "broker_url": env.get("FARM_BROKER_URL") or DEFAULT_BROKER_URL,
        }
        for key, var, kind in _NUMERIC_ENV:
            if env.get(var):
                values[key] = kind(env[var])
        if env.get("FARM_SPOOL_DIR"):
            values["spool_dir"] = env["FARM_SPOOL_DIR"]
        values["model_roots"] = model_roots(env)
        if env.get("FARM_PEAK_SIZES"):
            values["peak_sizes"] = parse_sizes(env["FARM_PEAK_SIZES"])
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**values)  # type: ignore[arg-type]


_NUMERIC_ENV: tuple[tuple[str, str, type], ...] = (
    ("visibility_timeout_s", "FARM_VISIBILITY_TIMEOUT", int),
    ("worker_ttl_s", "FARM_WORKER_TTL", int),
    ("worker_heartbeat_s", "FARM_WORKER_HEARTBEAT", float),
    ("lease_ttl_s", "FARM_LEASE_TTL", int),
    ("max_attempts", "FARM_MAX_ATTEMPTS", int),
    ("result_retry_s", "FARM_RESULT_RETRY", float),
    ("peak_repeats", "FARM_PEAK_REPEATS", int),
)


def parse_sizes(text: str) -> tuple[int, ...]:
    """'1024,2048' → (1024, 2048): the GEMM sizes of a peak measurement."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(n < 8 or n > 16384 for n in sizes):
        raise ValueError(f"bad matrix sizes {text!r}: use e.g. 1024,2048 (each 8 to 16384)")
    return sizes


def hf_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where huggingface_hub keeps downloads (its lookup order, without importing it)."""
    env = os.environ if env is None else env
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(env[var]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path("~/.cache")
    return cache.expanduser() / "huggingface" / "hub"


def model_roots(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """FARM_MODEL_ROOTS (colon-separated), else the current directory and the HF cache.

    A matrix may only name model directories under these, so a submitted matrix cannot
    make a worker load (and report on) arbitrary files such as ~/.ssh or /etc.
    """
    env = os.environ if env is None else env
    listed = [r for r in env.get("FARM_MODEL_ROOTS", "").split(":") if r.strip()]
    roots = [Path(r).expanduser() for r in listed] or [Path.cwd(), hf_cache_dir(env)]
    return tuple(r if r.is_absolute() else Path.cwd() / r for r in roots)


# Query parameters that carry credentials (libpq's password=, redis-py's ?password=, ...).
_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#]*(?:pass|secret|token|pwd)[^=&;#]*=)[^&;#]*")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/*")


def mask_url(url: str) -> str:
    """Return the URL with its password replaced by ***, safe to print or log.

    Also masks credential query parameters, and credentials urlsplit cannot see because
    the URL is mistyped (`u:pw@host`, `scheme:/u:pw@host`, an unescaped `/`, `?` or `#`
    in the password): a typo must not print them.
    """
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            # Rebuild from the raw netloc so IPv6 brackets, case and port stay as written.
            userinfo, _, hostport = parts.netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            url = urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
        elif "@" in url and "@" not in parts.netloc:
            scheme = _SCHEME.match(url)
            url = f"{scheme.group(0) if scheme else ''}***@{url.rpartition('@')[2]}"
        return _SECRET_PARAM.sub(r"\1***", url)
    except ValueError:
        return "<unparseable URL>"


def parse_cpu_list(text: str) -> set[int]:
    """'0-3,6' → {0, 1, 2, 3, 6}, as taskset and /sys spell CPU lists."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or int(hi or lo) < int(lo):
            raise ValueError(f"bad CPU list {text!r}: use e.g. 0-3,6")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus
