"""Logging in to the QA dashboard: no key in any URL, a signed session cookie.

Against real services over HTTP (uvicorn, SQLite): the cookie's attributes, the key never
in a Location header or a page, old ``?key=`` links redirected once without the key, wrong
keys and cross-site posts refused, open redirects refused, forged and expired cookies
refused (the tokens are built here from the documented format, independently of the
service's code), a cookie refused once the API key changes, failed logins slowed and
limited; and in Chromium, a person logging in through the form.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from annotate.labelstudio import SECRET_HEADER
from schemas.taxonomy import load_taxonomy
from tests import dashkit
from tests.conftest import ROOT
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
KEY = "login-test-key-6f1c2e"
HOURS = 2.0  # service.login_hours of the module's service
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service with one project whose two annotators disagree."""
    folder = tmp_path_factory.mktemp("dashboard-login")
    settings, config = dashkit.configure(folder, KEY, login_hours=HOURS)
    with dashkit.running(settings, config) as base:
        _load(base)
        yield base


def _load(base: str) -> None:
    t = task(1, dialogue(4))
    with httpx.Client(base_url=base, headers={SECRET_HEADER: dashkit.SECRET}) as hooks:
        for annotator, label in ((1, "joy"), (2, "anger")):
            values = {i: {"emotion": label} for i in range(4)}
            event = annotation_event(TAX, annotator, t, annotator, values)
            assert hooks.post("/webhooks/label-studio", json=event).status_code == 200


def _post_login(
    base: str, key: str, next_path: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    form = {"key": key} if next_path is None else {"key": key, "next": next_path}
    return httpx.post(f"{base}/login", data=form, headers=headers or {}, timeout=30)


def _cookie(answer: httpx.Response) -> SimpleCookie:
    """The Set-Cookie headers of an answer, parsed."""
    jar: SimpleCookie = SimpleCookie()
    for value in answer.headers.get_list("set-cookie"):
        jar.load(value)
    return jar


def _token(key: str, expiry: int, nonce: str = "test-nonce") -> str:
    """A session token as documented in api/login.py: ``<expiry>.<nonce>.<mac>``, the MAC an
    HMAC-SHA256 of ``<expiry>.<nonce>`` under HMAC-SHA256(api key, purpose string)."""
    signing = hmac.new(key.encode(), b"improv-annotate dashboard session v1", "sha256").digest()
    body = f"{expiry}.{nonce}"
    return f"{body}.{hmac.new(signing, body.encode(), hashlib.sha256).hexdigest()}"


def _dashboard(base: str, token: str | None) -> httpx.Response:
    cookies = {dashkit.COOKIE: token} if token is not None else None
    return httpx.get(f"{base}/dashboard/1", cookies=cookies, timeout=60)


def test_login_sets_a_signed_httponly_strict_cookie(url: str) -> None:
    answer = _post_login(url, KEY, "/dashboard/1", {"Origin": url})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/1"
    raw = answer.headers["set-cookie"]
    morsel = _cookie(answer)[dashkit.COOKIE]
    assert morsel["httponly"] is True and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/" and morsel["max-age"] == str(int(HOURS * 3600))
    assert "secure" not in raw.lower()  # plain http on loopback
    token = morsel.value
    assert KEY not in token and token.count(".") == 2
    expiry = int(token.split(".")[0])
    assert abs(expiry - (time.time() + HOURS * 3600)) < 60
    page = _dashboard(url, token)
    assert page.status_code == 200 and "QA dashboard: project 1" in page.text
    # a proxy on loopback (which uvicorn trusts by default) says the request came over https
    https_origin = url.replace("http:", "https:")
    https = _post_login(url, KEY, None, {"Origin": https_origin, "X-Forwarded-Proto": "https"})
    assert https.status_code == 303, https.text
    assert "; secure" in https.headers["set-cookie"].lower()


def test_the_key_is_in_no_location_and_no_page(url: str) -> None:
    answers = [
        _post_login(url, KEY, "/dashboard/1"),
        _post_login(url, KEY),
        _post_login(url, KEY + "x", "/dashboard/1"),
        httpx.get(f"{url}/dashboard/1?key={KEY}&threshold=0.5"),
        httpx.get(f"{url}/dashboard/1?key={KEY}x"),
        httpx.get(f"{url}/dashboard/1"),
        httpx.get(f"{url}/login?next=/dashboard/1"),
        httpx.get(f"{url}/dashboard/1", headers={"X-API-Key": KEY}),
    ]
    cookie = _cookie(answers[0])[dashkit.COOKIE].value
    answers.append(_dashboard(url, cookie))
    for answer in answers:
        assert KEY not in answer.headers.get("location", ""), answer.request.url
        assert KEY not in answer.text, answer.request.url
        assert KEY not in answer.headers.get("set-cookie", "")
    assert [a.status_code for a in answers] == [303, 303, 401, 303, 401, 303, 200, 200, 200]


def test_an_old_link_logs_in_and_redirects_once_without_the_key(url: str) -> None:
    answer = httpx.get(f"{url}/dashboard/1?key={KEY}&threshold=0.5")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/1?threshold=0.5"
    token = _cookie(answer)[dashkit.COOKIE].value
    again = httpx.get(f"{url}/dashboard/1?threshold=0.5", cookies={dashkit.COOKIE: token})
    assert again.status_code == 200 and "below 0.50" in again.text
    # a wrong key: the login form, no redirect, no cookie
    wrong = httpx.get(f"{url}/dashboard/1?key=nope&threshold=0.5")
    assert wrong.status_code == 401 and "location" not in wrong.headers
    assert "set-cookie" not in wrong.headers
    assert '<form method="post" action="/login">' in wrong.text
    assert 'name="next" value="/dashboard/1?threshold=0.5"' in wrong.text


def test_a_wrong_key_gets_401_and_the_form_after_a_delay(url: str) -> None:
    started = time.monotonic()
    answer = _post_login(url, "wrong", "/dashboard/1", {"Origin": url})
    took = time.monotonic() - started
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    assert "wrong key" in answer.text and 'value="/dashboard/1"' in answer.text
    assert took >= 0.9  # slowed (1 s); no upper bound asserted
    empty = _post_login(url, "")
    assert empty.status_code == 401


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        " /dashboard/1",
        "/dashboard/1\r\nSet-Cookie: x=1",
        "evil.example",
        "/dashboard/1//evil.example",
    ],
)
def test_an_open_redirect_is_refused(url: str, next_path: str) -> None:
    answer = _post_login(url, KEY, next_path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"  # next ignored
    form = httpx.get(f"{url}/login", params={"next": next_path})
    assert form.status_code == 200 and 'name="next"' not in form.text
    unauthenticated = httpx.get(f"{url}/dashboard/1")
    assert unauthenticated.headers["location"] == "/login?next=/dashboard/1"


def test_a_cross_site_login_is_refused(url: str) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # and no Sec-Fetch-Site to vouch for it
        {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
        {"Sec-Fetch-Site": "same-site", "Origin": url},
    ):
        answer = _post_login(url, KEY, "/dashboard/1", headers)
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers
    # what Chromium sends from the login form under Referrer-Policy: no-referrer
    ours = _post_login(
        url, KEY, "/dashboard/1", {"Sec-Fetch-Site": "same-origin", "Origin": "null"}
    )
    assert ours.status_code == 303


def test_forged_and_expired_cookies_are_refused(url: str) -> None:
    now = int(time.time())
    later = now + 3600
    good = _token(KEY, later)
    assert _dashboard(url, good).status_code == 200  # the format is the documented one
    refused = {
        "the key itself": KEY,
        "random": "1234.abcd.ef01",
        "another key": _token("another-key", later),
        "expired": _token(KEY, now - 5),
        "expiry changed": f"{later + 86400}.{good.split('.', 1)[1]}",
        "past max-age": _token(KEY, now + int(HOURS * 3600) + 3600),
        "mac cut": good[:-1],
        "no mac": f"{later}.test-nonce",
        "empty": "",
    }
    for what, token in refused.items():
        answer = _dashboard(url, token)
        assert answer.status_code == 303, what
        assert answer.headers["location"] == "/login?next=/dashboard/1", what


def test_logout_removes_the_cookie(url: str) -> None:
    answer = httpx.post(f"{url}/logout", headers={"Origin": url})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    morsel = _cookie(answer)[dashkit.COOKIE]
    assert morsel.value == "" and morsel["max-age"] == "0"
    assert (
        httpx.post(f"{url}/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    )


def test_a_cookie_is_refused_after_the_api_key_changes(tmp_path: Path) -> None:
    settings, config = dashkit.configure(tmp_path, "first-key")
    with dashkit.running(settings, config) as base:
        _load(base)
        token = _cookie(_post_login(base, "first-key"))[dashkit.COOKIE].value
        assert _dashboard(base, token).status_code == 200
    settings, config = dashkit.configure(tmp_path, "second-key")
    with dashkit.running(settings, config) as base:
        assert _dashboard(base, token).status_code == 303
        fresh = _cookie(_post_login(base, "second-key"))[dashkit.COOKIE].value
        assert _dashboard(base, fresh).status_code == 200


def test_a_cookie_works_on_another_service_with_the_same_key(tmp_path: Path) -> None:
    """Nothing of a session lives in a process: a second service (another port, another
    store, as another machine or worker would be) with the same API key accepts it."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = dashkit.configure(one, "shared-key")
    second = dashkit.configure(two, "shared-key")
    with dashkit.running(*first) as a, dashkit.running(*second) as b:
        _load(b)
        token = _cookie(_post_login(a, "shared-key"))[dashkit.COOKIE].value
        assert _dashboard(b, token).status_code == 200


def test_failed_logins_are_limited_per_address(tmp_path: Path) -> None:
    settings, config = dashkit.configure(tmp_path, KEY)
    with dashkit.running(settings, config) as base:
        statuses = [_post_login(base, f"guess-{i}").status_code for i in range(10)]
        assert statuses == [401] * 10
        blocked = _post_login(base, KEY)  # even the right key, once the limit is reached
        assert blocked.status_code == 429 and "set-cookie" not in blocked.headers
        assert 500 <= int(blocked.headers["retry-after"]) <= 601
        old_link = httpx.get(f"{base}/dashboard/1?key={KEY}")
        assert old_link.status_code == 429
        # an API client with the key is not a login: unaffected
        assert httpx.get(f"{base}/projects", headers={"X-API-Key": KEY}).status_code == 200


def test_a_person_logs_in_through_the_form_in_chromium(url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with dashkit.chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1300})
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # the CSP lets plotly.js draw: no violation reported while the plots render
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        page.goto(f"{url}/dashboard/1")
        assert page.url == f"{url}/login?next=/dashboard/1"
        page.fill("input[name=key]", KEY)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/dashboard/1")
        for name in ("dimensions", "pairwise", "breakdowns", "shifts", "drift", "confusion"):
            page.wait_for_selector(f"#plot-{name} svg.main-svg")
        assert KEY not in page.url
        page.screenshot(path=str(ARTIFACTS / "dashboard-after-login.png"), full_page=True)
        assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies[dashkit.COOKIE]["httpOnly"] is True
        assert cookies[dashkit.COOKIE]["sameSite"] == "Strict"
        # logging out leads back to the form, and the dashboard wants a login again
        page.click("form.logout button")
        page.wait_for_url(f"{url}/login")
        page.goto(f"{url}/dashboard/1")
        assert page.url == f"{url}/login?next=/dashboard/1"
        context.close()
    assert errors == []
