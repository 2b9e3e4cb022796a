"""Who may read the dashboard: anyone on a loopback bind; with a token, only its holders.

The token comes as `Authorization: Bearer TOKEN`, or once as `?token=TOKEN`, which sets an
HttpOnly cookie and redirects to the same page without it (so it leaves the address bar
and the history). Every other request gets 401, whatever the client's address.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "farm_token"
def same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class TokenGate:
    """ASGI middleware: 401 to every HTTP request that does not carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if (scheme.lower() == "bearer" and same(bearer.strip(), self.token)) or same(
            request.cookies.get(COOKIE), self.token
        ):
            await self.app(scope, receive, send)
            return
        response: Response
        if same(request.query_params.get("token"), self.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = URL(scope=scope).replace(query=urlencode(rest))
            response = RedirectResponse(f"{target.path}?{target.query}".rstrip("?"), 303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        else:
            response = HTMLResponse(
                "<!DOCTYPE html><title>401</title><h1>401: a token is needed</h1><p>This "
                "dashboard listens beyond loopback: send <code>Authorization: Bearer "
                "TOKEN</code>, or open it once with <code>?token=TOKEN</code>.</p>",
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)


HEADERS = [
    # Only Farm's own assets (inline style attributes draw the progress bars), no framing.
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; frame-ancestors 'none'"),  # fmt: skip
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware: every response says where its page may load from (itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
