"""Headers on every response: a Content-Security-Policy and its companions.

A pure ASGI middleware (not BaseHTTPMiddleware), so streamed file responses pass untouched.
The pages load scripts and styles from /static only: no inline script, no inline style, no CDN.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; object-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A case's file shown in the browser (PDF, images): nothing in it may run or load anything.
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'"

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),  # pages hold personal data: not kept by the browser
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_file = "/files/" in scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {b"content-security-policy", b"cache-control"}
                ]
                csp = FILE_CSP if is_file else PAGE_CSP
                headers += [(b"content-security-policy", csp.encode()), *_COMMON]
                if scope.get("path", "").startswith("/static/"):
                    headers = [(k, v) for k, v in headers if k != b"cache-control"]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Sessions:
    """Starlette's signed session cookie, marked Secure when the request came over HTTPS
    (directly, or X-Forwarded-Proto from the reverse proxy uvicorn trusts) or when
    CONSOLE_BASE_URL is https (`always_secure`): a cookie sent over HTTPS never travels in clear."""

    def __init__(self, app: ASGIApp, /, *, always_secure: bool, **options: Any) -> None:
        self.secure = SessionMiddleware(app, https_only=True, **options)
        self.plain = self.secure if always_secure else SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        middleware = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await middleware(scope, receive, send)
