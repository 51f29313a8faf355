"""Helpers of the dashboard tests: a service on loopback with a chosen API key, headless
Chromium (Debian's, through Playwright), and the login form driven as a person drives it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from tests.conftest import missing, write_config

CHROMIUM = Path(os.environ.get("IMPROV_CHROMIUM", "/usr/bin/chromium"))
SECRET = "dash-secret"
COOKIE = "improv_dashboard"


def chromium_or_skip() -> None:
    """Skip when Chromium is missing (fail under ``CI=true``: CI must run the browser)."""
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM} (scripts/system-deps.sh installs it)")


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium (a Playwright ``Browser``)."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


# trackers Label Studio's pages load from the internet (none is reachable here)
BLOCKED = ("googletagmanager", "labelstud.io/track", "sentry")


@contextmanager
def label_studio_tab(
    browser: Any,
    url: str,
    email: str,
    password: str,
    *,
    viewport: dict[str, int],
    prepare: Callable[[Any], None] | None = None,
) -> Iterator[Any]:
    """A tab logged in to Label Studio at ``url`` through its login form, as a person logs
    in (trackers blocked); ``prepare(tab)`` runs before the login page opens. The tab's
    context is closed afterwards."""
    context = browser.new_context(viewport=viewport)
    context.route(lambda u: any(b in u for b in BLOCKED), lambda route: route.abort())
    context.set_default_timeout(30_000)
    tab = context.new_page()
    if prepare is not None:
        prepare(tab)
    tab.goto(f"{url}/user/login/")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", password)
    tab.click("button:has-text('Log in')")
    tab.wait_for_url(lambda u: "/user/login" not in u)
    try:
        yield tab
    finally:
        context.close()


def configure(
    folder: Path, api_key: str, top: dict[str, Any] | None = None, **service: Any
) -> tuple[Settings, Path]:
    """Settings and config file of a service on SQLite in ``folder`` with ``api_key``
    (``service`` overrides more of the service section, ``top`` top-level keys)."""
    config = write_config(
        folder,
        service={
            "database_url": f"sqlite:///{folder / 'store.db'}",
            "webhook_secret": SECRET,
            "api_key": api_key,
            "reconcile_seconds": 0,
            **service,
        },
        **(top or {}),
    )
    return with_local_secrets(load_settings(config)), config


@contextmanager
def running(settings: Settings, config: Path) -> Iterator[str]:
    """The service started for the block; yields its base URL."""
    stack.start_service(settings, config)
    try:
        yield settings.service.url
    finally:
        stack.stop(settings, stack.SERVICE)


def log_in(page: Any, url: str, key: str, project_id: int) -> None:
    """Open ``/dashboard/<project_id>``, land on the login form, type the key, submit, and
    wait for the dashboard."""
    page.goto(f"{url}/dashboard/{project_id}")
    page.wait_for_selector("form[action='/login'] input[name=key]")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/{project_id}")
