"""Blind annotation against a real Label Studio, read as a non-admin annotator reads it.

Two annotator accounts sign up through Label Studio's own sign-up form (with the invite
link, as people do). The first labels every task through the API. Then, as the second:

- nothing Label Studio serves carries an intended emotion: the task list (as the data
  manager asks for it), each task, ``/next`` (the labeling stream), predictions, the JSON
  export any member may run, and every JSON answer the browser receives while the account
  opens the data manager and the labeling stream in Chromium;
- the labeling stream opens on a new annotation of their own, started from the turn
  regions of the pre-annotation, with no other annotator's annotation in it;
- what Label Studio Community cannot hide is measured too (the data manager's task view
  and the API give any member every annotation), for the README.

The service keeps the intended emotions (the import sent them), and the export joins them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio
from playwright.sync_api import Browser, Page

from annotate.config import Settings
from annotate.labelstudio import (
    Account,
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
    iter_tasks,
    service_keeper,
    session_pusher,
)
from annotate.service import ServiceClient
from annotate.simulate import simulate_values
from importers import import_sessions, load_session
from schemas.codec import encode_annotation
from schemas.label_config import TURN
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT
from tests.dashkit import chromium

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
ARTIFACTS = ROOT / "test-artifacts"
BLOCKED = ("googletagmanager", "labelstud.io/track", "sentry")
PASSWORD = "a-long-blind-password-1"
REPORT: dict[str, Any] = {}


@dataclass(frozen=True)
class Blind:
    """The project, its tasks, the session's intended arc and two annotator accounts."""

    client: LabelStudio
    id: int
    tasks: list[Any]
    arc: dict[str, str]  # turn id -> intended emotion
    first: Account
    second: Account


@pytest.fixture(scope="module")
def blind(label_studio: Settings, service: Settings) -> Blind:
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Blind test", "maximum_annotations": 3}
            )
        }
    )
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, settings.service.webhook_secret or "")
    keeper = service_keeper(ServiceClient(settings.service.url, settings.service.api_key))
    report = import_sessions(
        EXAMPLE,
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=settings.clips.max_seconds,
        push=session_pusher(client, project.id, settings.media_path, keep_intended=keeper),
    )
    assert report.failed == {}
    session = load_session(EXAMPLE)
    arc = {t.id: e for t in session.turns if (e := session.intended_for(t)) is not None}
    assert len(arc) == len(session.turns)
    url = settings.label_studio.url
    invite = invite_link(client, url)
    first, second = (
        ensure_account(url, f"blind-{k}@example.org", PASSWORD, invite=invite) for k in (1, 2)
    )
    tasks = sorted(iter_tasks(client, project.id), key=lambda t: t.id)
    # the first annotator labels every task (through the API, as their own account)
    as_first = LabelStudio(base_url=url, api_key=first.token)
    intended = {i.turn: i.emotion for i in session.intended}
    for task in tasks:
        rng = np.random.default_rng([1, task.id])
        values, shifts = simulate_values(task.data["dialogue"], intended, TAX, rng, noise=0.3)
        as_first.annotations.create(
            id=task.id, result=encode_annotation(task.data["dialogue"], values, TAX, shifts)
        )
    tasks = sorted(iter_tasks(client, project.id), key=lambda t: t.id)  # with the annotations
    return Blind(client, int(project.id), tasks, arc, first, second)


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every key and leaf of a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}.{key}", key
            yield from _walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}[{i}]")
    else:
        yield path, value


def _leaks(served: Any, emotions: set[str]) -> list[str]:
    """Where a served JSON value names an intended emotion: any key or value containing
    "intended", and any emotion name as a value in a task's data outside the turn text
    (the label config and annotation results name emotions by design)."""
    found = []
    for path, value in _walk(served):
        if isinstance(value, str) and "intended" in value.lower():
            found.append(f"{path}: {value[:80]}")
        if (
            ".data." in f"{path}."
            and isinstance(value, str)
            and value.lower() in emotions
            and not path.endswith((".text", ".title", ".prompt", ".context"))
        ):
            found.append(f"{path}: {value}")
    return found


def test_nothing_served_to_an_annotator_carries_an_intended_emotion(
    blind: Blind, label_studio: Settings
) -> None:
    url = label_studio.label_studio.url
    emotions = set(TAX.emotion.values)
    served: dict[str, Any] = {}
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Token {blind.second.token}"}, timeout=60
    ) as api:
        me = api.get("/api/current-user/whoami").json()
        assert me["id"] == blind.second.id
        assert not me.get("is_superuser") and not me.get("is_staff")
        served["tasks"] = api.get(
            "/api/tasks", params={"project": blind.id, "fields": "all", "page_size": 100}
        ).json()
        assert len(served["tasks"]["tasks"]) == len(blind.tasks)
        for task in blind.tasks:
            served[f"task {task.id}"] = api.get(f"/api/tasks/{task.id}").json()
            served[f"predictions {task.id}"] = api.get(
                "/api/predictions", params={"task": task.id}
            ).json()
        nxt = api.get(f"/api/projects/{blind.id}/next")
        assert nxt.status_code == 200, nxt.text
        served["next"] = nxt.json()
        exported = api.get(f"/api/projects/{blind.id}/export", params={"exportType": "JSON"})
        served["export"] = exported.json() if exported.status_code == 200 else exported.text
        REPORT["annotator_can_export"] = exported.status_code == 200
        # and cannot put or change intended emotions at the service with their token
        denied = httpx.put(
            f"{label_studio.service.url}/projects/{blind.id}/intended/x",
            json={"turns": []},
            headers={"Authorization": f"Bearer {blind.second.token}"},
        )
        assert denied.status_code == 401
    assert served["next"]["data"]["dialogue"], "the stream serves a task with its dialogue"
    leaks = {name: _leaks(value, emotions) for name, value in served.items()}
    assert {name: found for name, found in leaks.items() if found} == {}
    # the service keeps them instead, and the export joins them
    from sqlmodel import Session

    from api.db import make_engine
    from api.intended import intended_map

    engine = make_engine(label_studio.database_url)
    try:
        with Session(engine) as db:
            assert intended_map(db, blind.id) == blind.arc
    finally:
        engine.dispose()


# --- in Chromium, as the second annotator ---------------------------------------------------


@pytest.fixture(scope="module")
def page(blind: Blind, label_studio: Settings) -> Iterator[Page]:
    """Chromium logged in as the second annotator through the login form; every JSON answer
    the page receives is kept in ``page.served``."""
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        yield from _annotator_page(browser, label_studio.label_studio.url, blind.second.email)
    (ARTIFACTS / "blind-report.json").write_text(json.dumps(REPORT, indent=2) + "\n")


def _annotator_page(browser: Browser, url: str, email: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(lambda u: any(b in u for b in BLOCKED), lambda route: route.abort())
    context.set_default_timeout(30_000)
    tab = context.new_page()
    served: list[tuple[str, Any]] = []

    def keep(response: Any) -> None:
        if "/api/" in response.url and "json" in response.headers.get("content-type", ""):
            with contextlib.suppress(Exception):  # a body gone with a navigation
                served.append((response.url, response.json()))

    tab.on("response", keep)
    tab.served = served  # type: ignore[attr-defined]
    tab.goto(f"{url}/user/login/")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button:has-text('Log in')")
    tab.wait_for_url(lambda u: "/user/login" not in u)
    try:
        yield tab
    finally:
        context.close()


def _store(page: Page) -> dict[str, Any]:
    """What the labeling screen holds: its annotations (id, author, regions) and which one
    is selected."""
    return page.evaluate(
        """() => { const s = window.Htx.annotationStore;
          return {annotations: s.annotations.map(a => ({pk: a.pk ?? null,
                     user: a.user?.id ?? null, regions: a.regions.length})),
                  predictions: s.predictions.length,
                  history: (s.history ?? []).length,
                  selected: {pk: s.selected?.pk ?? null, regions: s.selected?.regions.length,
                             turns: s.selected?.regions.filter(r => r.type === 'paragraphs'
                               || r.from_name?.name === 'turn').length}} }"""
    )


def _wait(page: Page, expression: str, timeout: float = 30_000) -> None:
    page.wait_for_function(expression, timeout=timeout)


def test_the_labeling_stream_shows_only_the_annotators_own_annotation_from_the_turns(
    page: Page, blind: Blind, label_studio: Settings
) -> None:
    url = label_studio.label_studio.url
    started = time.monotonic()
    page.goto(f"{url}/projects/{blind.id}/data?labeling=1")
    _wait(page, "() => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) > 0")
    REPORT["stream_open_s"] = round(time.monotonic() - started, 2)
    held = _store(page)
    REPORT["stream"] = held
    task_id = page.evaluate("() => window.Htx.task?.id ?? null")
    task = next(t for t in blind.tasks if t.id == task_id)
    n_turns = len(task.data["dialogue"])
    # one annotation: a new one of this annotator's, with one turn region per line
    assert len(held["annotations"]) == 1, held
    assert held["annotations"][0]["pk"] is None  # not saved yet: not the first annotator's
    regions = page.evaluate(
        "() => window.Htx.annotationStore.selected.serializeAnnotation()"
        ".filter(r => r.from_name === '" + TURN + "').length"
    )
    assert regions == n_turns
    firsts = {a["id"] for a in task.annotations or []}
    assert firsts, "the first annotator labeled this task"
    page.screenshot(path=str(ARTIFACTS / "blind-stream.png"))
    assert not [u for u, body in page.served if _leaks(body, set(TAX.emotion.values))]  # type: ignore[attr-defined]


def test_what_community_cannot_hide_the_data_manager_shows_every_annotation(
    page: Page, blind: Blind, label_studio: Settings
) -> None:
    """Measured for the README: any member opens a task in the data manager and sees the
    other annotators' annotations there (Label Studio Community has no roles)."""
    url = label_studio.label_studio.url
    task = blind.tasks[-1]
    page.goto(f"{url}/projects/{blind.id}/data?task={task.id}")
    _wait(page, "() => (window.Htx?.annotationStore?.annotations?.length ?? 0) > 0")
    held = _store(page)
    REPORT["data_manager_task_view"] = held
    pks = {a["pk"] for a in held["annotations"]}
    first = {str(a["id"]) for a in task.annotations or []} | {
        a["id"] for a in task.annotations or []
    }
    assert pks & first, held  # the first annotator's annotation is right there
    assert not [u for u, body in page.served if _leaks(body, set(TAX.emotion.values))]  # type: ignore[attr-defined]
    REPORT["served_json_answers"] = len(page.served)  # type: ignore[attr-defined]
