"""Query and path parameters, checked: a bad one is a 4xx with one clear line, never a
traceback and never a query the database chokes on (an id past its integer range)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request

from farm.matrix import NAME_PATTERN
from farm.reports.cells import METRICS, ReportError
from farm.reports.selectors import Filters, parse_selector

MAX_ID = 2**31 - 1  # PostgreSQL's integer


def bad(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status, message)


def campaign_ref(text: str) -> str:
    """A campaign id or name as `farm report` takes it."""
    if text.isdigit() and 0 < len(text) <= 10 and int(text) <= MAX_ID:
        return text
    if not text.isdigit() and re.fullmatch(NAME_PATTERN, text):
        return text
    raise bad(f"unknown campaign {text[:100]!r}: an id or a name (`farm campaigns` lists them)",
              404)  # fmt: skip


def job_id(text: str) -> int:
    if text.isdigit() and 0 < len(text) <= 10 and 0 < int(text) <= MAX_ID:
        return int(text)
    raise bad(f"unknown job {text[:100]!r}: a job id is a positive whole number", 404)


def one(request: Request, name: str, default: str | None = None) -> str | None:
    value = request.query_params.get(name)
    return default if value is None or not value.strip() else value.strip()


def choice(request: Request, name: str, allowed: Sequence[str], default: str) -> str:
    value = one(request, name, default) or default
    if value not in allowed:
        raise bad(f"{name}={value[:50]!r} is not one of {', '.join(allowed)}")
    return value


def metrics(request: Request, default: Sequence[str]) -> tuple[str, ...]:
    found = [m.strip() for m in request.query_params.getlist("metric") if m.strip()]
    for metric in found:
        if metric not in METRICS:
            raise bad(f"metric={metric[:50]!r} is not one of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(found)) or tuple(default)


def number(request: Request, name: str, low: float, high: float) -> float | None:
    value = one(request, name)
    if value is None:
        return None
    try:
        found = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise bad(f"{name}={value[:50]!r} is not a number") from None
    if not low < found < high:
        raise bad(f"{name}={value[:50]!r} must lie between {low:g} and {high:g}")
    return found


def whole(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = one(request, name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value[:12]) <= high:
        raise bad(f"{name}={value[:50]!r} must be a whole number from {low} to {high}")
    return int(value)


def selector(request: Request, name: str) -> dict[str, str] | None:
    value = one(request, name)
    if value is None:
        return None
    try:
        return parse_selector(value, name)
    except ReportError as exc:
        raise bad(str(exc)) from None


def pair(request: Request, name: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    """pools=A,B → ({pool: A}, {pool: B}), as `farm compare --pools A,B`."""
    value = one(request, name)
    if value is None:
        return {}, {}
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise bad(f"{name}= takes two {key}s separated by a comma, e.g. {name}=a,b")
    return {key: parts[0]}, {key: parts[1]}


def filters(request: Request) -> Filters:
    """model/input/batch/backend/pool, each repeatable, as the report's filter options."""
    q = request.query_params
    batches = []
    for b in q.getlist("batch"):
        if not b.isdigit() or not 0 < int(b[:9]) < 1_000_000:
            raise bad(f"batch={b[:50]!r} is not a batch size")
        batches.append(int(b))
    return Filters(
        models=tuple(q.getlist("model")),
        inputs=tuple(q.getlist("input")),
        batches=tuple(batches),
        backends=tuple(q.getlist("backend")),
        pools=tuple(q.getlist("pool")),
        tasks=tuple(q.getlist("task")),
    )
