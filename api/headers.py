"""Security headers on every response of the service (a small ASGI middleware).

Pages and JSON alike get a strict Content-Security-Policy (scripts and styles only from
files the service serves, nothing inline but the styles plotly.js sets at run time),
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
``X-Frame-Options: DENY``. FastAPI's own documentation pages (``/docs``, ``/redoc``) load
their scripts from a CDN and run inline script, so they get the other headers and a CSP of
their own that allows just that.
"""

from __future__ import annotations

from typing import Any

# plotly.js sets inline styles while it draws (a <style> element of its own, style
# attributes on SVG nodes), so style-src allows 'unsafe-inline': styles cannot run script.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc: their scripts and styles come from cdn.jsdelivr.net
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; worker-src blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class SecurityHeaders:
    """ASGI middleware adding :data:`COMMON` and a CSP to every HTTP response it passes.

    A header the route set itself is kept (the route knows better).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._common = [(k.encode(), v.encode()) for k, v in COMMON.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else CSP
        extra = [*self._common, (b"content-security-policy", csp.encode())]

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
