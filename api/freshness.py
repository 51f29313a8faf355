"""How fresh a read is: every read endpoint waits a bounded time for the events the
webhook acknowledged before it, then answers with what the store has and says how far
behind that is, in two headers and, for JSON objects, a ``freshness`` field:

- ``X-Improv-Pending``: acknowledged events not applied yet (0: fresh);
- ``X-Improv-Pending-Age``: seconds since the oldest of them was acknowledged;
- ``"freshness": {"pending": n, "oldest_age_s": s, "fresh": bool}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.inbox import Inbox, Lag

try:  # orjson parses and writes JSON several times faster; the standard library also works
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    from json import loads as _loads

PENDING, PENDING_AGE = "X-Improv-Pending", "X-Improv-Pending-Age"


def note_lag(request: Request, inbox: Inbox, wait: float) -> Lag:
    """Wait up to ``wait`` seconds for the events acknowledged before this call to be
    applied; keep how far behind the store still is for the answer (``request.state``)."""
    left = inbox.wait_applied(wait)
    lag = inbox.lag() if left else Lag()
    request.state.lag = lag
    return lag


def lag_headers(lag: Lag) -> dict[str, str]:
    """The freshness headers of an answer."""
    return {PENDING: str(lag.pending), PENDING_AGE: f"{lag.oldest_age_s:.3f}"}


def with_freshness(body: dict[str, Any], lag: Lag) -> dict[str, Any]:
    """``body`` with its ``freshness`` field."""
    return {**body, "freshness": lag.as_dict()}


class FreshRoute(APIRoute):
    """A route whose answers carry the freshness noted by :func:`note_lag` (headers on
    every answer; the ``freshness`` field in JSON objects)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped (see the class)."""
        handle = super().get_route_handler()

        async def fresh(request: Request) -> Response:
            response = await handle(request)
            lag: Lag | None = getattr(request.state, "lag", None)
            if lag is None:
                return response
            body = getattr(response, "body", b"")
            kind = response.headers.get("content-type", "")
            if kind.startswith("application/json") and body.startswith(b"{"):
                body = _loads(body)
                kept = {
                    k: v
                    for k, v in response.headers.items()
                    if k not in ("content-length", "content-type")
                }
                response = JSONResponse(
                    with_freshness(body, lag), response.status_code, headers=kept
                )
            response.headers.update(lag_headers(lag))
            return response

        return fresh
