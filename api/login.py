"""Logging in to the QA dashboard: a signed session cookie instead of a key in the URL.

A QA lead types the service's API key once into ``GET /login``; ``POST /login`` answers
with a cookie that carries no secret: ``<expiry>.<nonce>.<mac>``, where ``mac`` is an
HMAC-SHA256 of ``<expiry>.<nonce>`` under a key derived from the API key. Any worker process
on any machine that knows the API key can check it without shared memory, and rotating the
API key invalidates every session at once.

The cookie is HttpOnly, SameSite=Strict, Path=/, Secure when the request came over https
(as uvicorn sees it: ``X-Forwarded-Proto`` counts only from the proxies uvicorn trusts,
``--forwarded-allow-ips``, loopback by default), with a bounded ``Max-Age``.

Failed logins are slowed (each answers after :data:`FAIL_DELAY` seconds) and limited per
client address (:class:`FailureLimit`: after :data:`MAX_FAILURES` failures within
:data:`FAIL_WINDOW` seconds, every login attempt from that address gets 429 until the
window has passed). The limit lives in each worker process's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import secrets
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

COOKIE = "improv_dashboard"
# purpose string of the derived signing key: the API key itself never signs anything
_PURPOSE = b"improv-annotate dashboard session v1"
FAIL_DELAY = 1.0
MAX_FAILURES = 10
FAIL_WINDOW = 600.0
_MAX_CLIENTS = 10_000
MAX_FORM = 8192
NO_STORE = {"Cache-Control": "no-store"}


def _signing_key(api_key: str) -> bytes:
    return hmac.new(api_key.encode(), _PURPOSE, hashlib.sha256).digest()


def _mac(api_key: str, message: str) -> str:
    return hmac.new(_signing_key(api_key), message.encode(), hashlib.sha256).hexdigest()


def issue(api_key: str, max_age: float, now: float | None = None) -> str:
    """A session token valid for ``max_age`` seconds from ``now`` (Unix time).

    Examples
    --------
    >>> token = issue("k", 3600, now=1000.0)
    >>> token.split(".")[0]
    '4600'
    >>> valid("k", token, 3600, now=1001.0), valid("other key", token, 3600, now=1001.0)
    (True, False)
    """
    if not api_key:
        raise ValueError("service.api_key: expected a key to sign sessions with, got none")
    expiry = int((time.time() if now is None else now) + max_age)
    body = f"{expiry}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(api_key, body)}"


def valid(api_key: str, token: str | None, max_age: float, now: float | None = None) -> bool:
    """Whether ``token`` was issued under ``api_key`` and has not expired.

    An expiry further ahead than ``max_age`` (a token of a longer-lived configuration) is
    refused as well.
    """
    if not api_key or not token or len(token) > 200:
        return False
    body, _, mac = token.rpartition(".")
    expiry, _, nonce = body.partition(".")
    if not expiry.isdigit() or not nonce:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(api_key, body).encode()):
        return False
    current = time.time() if now is None else now
    return current < int(expiry) <= current + max_age + 60


def key_matches(api_key: str, given: str) -> bool:
    """The API key compared in constant time (never true when no key is configured)."""
    return bool(api_key) and hmac.compare_digest(given.encode(), api_key.encode())


def set_cookie_header(token: str, max_age: float, secure: bool) -> str:
    """The ``Set-Cookie`` value of a session."""
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={token}; Max-Age={int(max_age)}; Path=/; HttpOnly; SameSite=Strict{flags}"


def clear_cookie_header(secure: bool) -> str:
    """The ``Set-Cookie`` value that removes the session cookie."""
    flags = "; Secure" if secure else ""
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{flags}"


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this site (so a redirect to it cannot leave the site),
    else None: it must start with one ``/``, and hold no ``//``, backslash, control
    character or space.

    Examples
    --------
    >>> local_path("/dashboard/3"), local_path("//evil.example"), local_path("/\\\\evil")
    ('/dashboard/3', None, None)
    >>> local_path("https://evil.example/"), local_path("/a//b")
    (None, None)
    """
    if not value or not value.startswith("/") or "//" in value or "\\" in value:
        return None
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value) or len(value) > 2000:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def cross_site(fetch_site: str | None, origin: str | None, scheme: str, host: str | None) -> bool:
    """Whether a POST came from another site, judged from its ``Sec-Fetch-Site`` and
    ``Origin`` headers (browsers set both; a page's script cannot).

    ``Sec-Fetch-Site`` other than ``same-origin`` (or ``none``: typed by the user) is
    cross-site. An ``Origin`` other than this site's is cross-site; ``Origin: null`` (which
    browsers send under ``Referrer-Policy: no-referrer``) counts as this site only when
    ``Sec-Fetch-Site`` vouches for it. A request with neither header is not a browser's
    and carries no ambient credentials to abuse: accepted.

    Examples
    --------
    >>> cross_site("same-origin", "null", "http", "127.0.0.1:8400")
    False
    >>> cross_site("cross-site", None, "http", "127.0.0.1:8400")
    True
    >>> cross_site(None, "https://evil.example", "http", "127.0.0.1:8400")
    True
    >>> cross_site(None, "null", "http", "127.0.0.1:8400"), cross_site(None, None, "http", None)
    (True, False)
    """
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    if origin == "null":
        return fetch_site is None
    return not host or origin != f"{scheme}://{host}"


class FailureLimit:
    """Failed logins per client address within a sliding window (one worker's memory)."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAIL_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again (0 when it may now)."""
        current = time.monotonic() if now is None else now
        times = self._recent(client, current)
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window - current)

    def fail(self, client: str, now: float | None = None) -> None:
        """Count one failed attempt of ``client``."""
        current = time.monotonic() if now is None else now
        times = self._recent(client, current)
        times.append(current)
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > _MAX_CLIENTS:
            self._failures.popitem(last=False)


def login_page(*, next_path: str | None, message: str | None = None) -> str:
    """The login form (no inline script or style: it passes the strict CSP)."""
    hidden = (
        f'<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">'
        if next_path
        else ""
    )
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>QA dashboard: log in</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head><body class="login">
<h1>QA dashboard</h1>
{note}
<form method="post" action="/login">
<label for="key">API key of the service (<code>service.api_key</code>)</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
{hidden}
<button type="submit">Log in</button>
</form>
</body></html>"""


def login_location(next_path: str | None) -> str:
    """``/login``, with ``next`` when it is a local path."""
    path = local_path(next_path)
    return "/login" if path is None else f"/login?next={quote(path, safe='/')}"


# -- requests --------------------------------------------------------------------------------


def _state(request: Request) -> Any:
    return request.app.state


def _max_age(request: Request) -> float:
    return float(_state(request).settings.service.login_hours) * 3600


def signed_in(request: Request) -> bool:
    """Whether the request carries a valid session cookie, or the API key as an API client
    sends it (``X-API-Key`` or ``Authorization: Bearer``)."""
    api_key = _state(request).api_key
    if valid(api_key, request.cookies.get(COOKIE), _max_age(request)):
        return True
    given = (
        request.headers.get("x-api-key")
        or (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
    )
    return bool(given) and key_matches(api_key, given)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _page(
    status: int, next_path: str | None, message: str | None, headers: dict[str, str] | None = None
) -> HTMLResponse:
    body = login_page(next_path=local_path(next_path), message=message)
    return HTMLResponse(body, status, headers={**NO_STORE, **(headers or {})})


def _too_many(wait: float, next_path: str | None) -> HTMLResponse:
    retry = str(max(1, int(wait) + 1))
    message = f"too many failed logins from this address; try again in {retry} s"
    return _page(429, next_path, message, {"Retry-After": retry})


async def _refuse(request: Request, next_path: str | None) -> HTMLResponse:
    """A wrong key: counted, answered after :data:`FAIL_DELAY` seconds with the form."""
    _state(request).login_failures.fail(_client(request))
    await asyncio.sleep(FAIL_DELAY)
    return _page(401, next_path, "wrong key")


def _signed(response: Response, request: Request) -> Response:
    max_age = _max_age(request)
    token = issue(_state(request).api_key, max_age)
    secure = request.url.scheme == "https"
    response.headers.append("set-cookie", set_cookie_header(token, max_age, secure))
    response.headers.update(NO_STORE)
    return response


def _here(request: Request, drop: str = "key") -> str:
    """The request's path and query, without the ``drop`` parameter."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != drop]
    return request.url.path + (f"?{urlencode(query)}" if query else "")


class Gate(Exception):
    """Raised by :func:`require_login` with the answer to send instead of the page."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def gate_answer(request: Request, exc: Exception) -> Response:
    """The exception handler of :class:`Gate`: its answer."""
    if not isinstance(exc, Gate):  # pragma: no cover - registered for Gate only
        raise exc
    return exc.response


async def require_login(request: Request) -> None:
    """Dependency of the dashboard pages: raises :class:`Gate` unless the request may see
    them (see :func:`gate`)."""
    answer = await gate(request)
    if answer is not None:
        raise Gate(answer)


async def gate(request: Request) -> Response | None:
    """None when the request may see a dashboard page; else the answer to send instead.

    - an old link with ``?key=``: the right key sets the session cookie and redirects
      (303) to the same page without the key; a wrong one gets the login form (401),
      after :data:`FAIL_DELAY` seconds, counted as a failed login;
    - a valid session cookie or API key header: None;
    - anything else: 303 to ``/login?next=<this page>``.
    """
    key = request.query_params.get("key")
    here = _here(request)
    if key is not None:
        wait = _state(request).login_failures.blocked(_client(request))
        if wait:
            return _too_many(wait, here)
        if not key_matches(_state(request).api_key, key):
            return await _refuse(request, here)
        return _signed(RedirectResponse(here, 303), request)
    if signed_in(request):
        return None
    return RedirectResponse(login_location(here), 303, headers=NO_STORE)


def show_form(request: Request) -> HTMLResponse:
    """``GET /login``: the form (``next`` kept when it is a local path)."""
    return _page(200, request.query_params.get("next"), None)


def _cross_site(request: Request) -> bool:
    headers = request.headers
    return cross_site(
        headers.get("sec-fetch-site"),
        headers.get("origin"),
        request.url.scheme,
        headers.get("host"),
    )


async def submit(request: Request) -> Response:
    """``POST /login`` (form-encoded ``key``, optional ``next``): the session cookie and a
    303 to ``next`` (a local path) or ``/dashboard``; a cross-site post gets 403, a wrong
    key 401 after :data:`FAIL_DELAY` seconds, too many wrong keys 429."""
    if _cross_site(request):
        return _page(403, None, "a login must come from this site's own form")
    wait = _state(request).login_failures.blocked(_client(request))
    if wait:
        return _too_many(wait, None)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return _page(413, None, f"form of more than {MAX_FORM} bytes")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _page(415, None, "expected a form (application/x-www-form-urlencoded)")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    next_path = local_path(form.get("next"))
    if not key_matches(_state(request).api_key, form.get("key", "")):
        return await _refuse(request, next_path)
    return _signed(RedirectResponse(next_path or "/dashboard", 303), request)


def logout(request: Request) -> Response:
    """``POST /logout``: the session cookie removed, then to ``/login``."""
    if _cross_site(request):
        return _page(403, None, "a logout must come from this site's own form")
    response = RedirectResponse("/login", 303, headers=NO_STORE)
    secure = request.url.scheme == "https"
    response.headers.append("set-cookie", clear_cookie_header(secure))
    return response
