"""The dashboard's ASGI application: routes, the token gate, and errors as pages.

Errors never show a traceback: a bad id or parameter is a 4xx page (JSON under /api/),
the database being down a 503 page, and the server keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from farm.cli.serve import api, pages
from farm.cli.serve.auth import SecurityHeaders, TokenGate
from farm.errors import FarmError, NotFound, ServiceUnavailable
from farm.settings import Settings, mask_url

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


def error(request: Request, status: int, title: str, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return api.as_json({"error": message}, status)
    return pages.page(request, "error.html", status, title=title, message=message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 405: "Not allowed"}
    return error(request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))


async def farm_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ServiceUnavailable):
        return await unavailable(request, exc)
    status = 404 if isinstance(exc, NotFound) else 400
    return error(request, status, "Not found" if status == 404 else "Bad request", str(exc))


async def unavailable(request: Request, exc: Exception) -> Response:
    url = mask_url(request.app.state.settings.database_url)
    if isinstance(exc, ServiceUnavailable):
        message = str(exc)
    else:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        message = f"database {url} failed ({reason})"
    log.warning("database unavailable: %s", message)
    return error(
        request,
        503,
        "Database unavailable",
        f"{message}. This page comes back by itself once the database is up.",
    )


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s", request.url.path, exc_info=exc)
    return error(request, 500, "Server error",
                 f"{type(exc).__name__}: the server's log has the details")  # fmt: skip


ROUTES = [
    Route("/", pages.campaigns),
    Route("/campaigns/{ref}", pages.campaign),
    Route("/campaigns/{ref}/chart.svg", api.chart),
    Route("/campaigns/{ref}/export/{name}", api.export),
    Route("/jobs/{job_id}", pages.job),
    Route("/jobs/{job_id}/{figure:str}", api.histogram),
    Route("/compare", pages.compare),
    Route("/hosts", pages.hosts),
    Route("/trends", pages.trends),
    Route("/trends/chart.svg", api.trend_chart),
    Route("/api/campaigns", api.campaigns),
    Route("/api/campaigns/{ref}", api.campaign),
    Route("/api/campaigns/{ref}/report", api.report),
    Route("/api/campaigns/{ref}/cells", api.cells),
    Route("/api/campaigns/{ref}/recommend", api.recommend),
    Route("/api/jobs/{job_id}", api.job),
    Route("/api/compare", api.compare),
    Route("/api/hosts", api.hosts),
    Route("/api/trends", api.trends),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def create_app(settings: Settings, token: str | None = None) -> Starlette:
    """The dashboard on `settings.database_url`; with a token, only its holders get in.

    Every route answers GET (and HEAD) only: no page writes anything."""
    middleware = [Middleware(SecurityHeaders)]
    middleware += [Middleware(TokenGate, token=token)] if token else []
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={
            HTTPException: http_error,
            FarmError: farm_error,
            OperationalError: unavailable,
            InterfaceError: unavailable,
            Exception: server_error,
        },
    )
    app.state.settings = settings
    return app
