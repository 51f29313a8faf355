"""Trigger links on the real labeling screen, in headless Chromium, as an annotator makes them.

The annotator draws a shift span (``z`` and a drag on the waveform), selects it, presses
``alt+r`` (Label Studio's "link to the next region clicked") and clicks the turn that
caused the shift. The test checks the UI's own result JSON holds that relation and decodes
to the turn, submits, and waits for the agreement service to hold the shift event with the
turn as its ``trigger_turn``. A second annotator's matching span, linked to the same turn,
makes one matched pair whose links the service's shift report compares. With
``IMPROV_UPDATE_DOCS_IMG=1`` the screenshot of the link is copied to
``docs/img/trigger-link.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from playwright.sync_api import Page
from sqlmodel import Session, select

from annotate.config import Settings
from annotate.labelstudio import (
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
from api.db import make_engine
from api.models import ShiftEventRow
from importers import import_sessions
from schemas.codec import decode_annotation, encode_annotation
from schemas.label_config import TRIGGER_RELATION
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT
from tests.dashkit import chromium, label_studio_tab
from tests.test_browser import (
    ARTIFACTS,
    VIEWPORT,
    Hands,
    _in_view,
    _result,
    _selected,
    _turn,
    _wait_for,
    open_task,
)

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
CAUSE = 1  # the dialogue index of the turn the annotator links as the cause
LINK_KEY = "alt+r"
DOC_IMAGE = ROOT / "docs" / "img" / "trigger-link.png"


@dataclass(frozen=True)
class Project:
    client: LabelStudio
    id: int
    tasks: list[Any]


@pytest.fixture(scope="module")
def project(label_studio: Settings, service: Settings) -> Project:
    """The example session in a project of its own; the server validates the label config
    (with its Relations) when the project is made."""
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Trigger links"}
            )
        }
    )
    client = connect(settings)
    proj = ensure_project(client, settings, TAX)
    ensure_webhook(client, proj.id, settings.webhook_url, settings.service.webhook_secret or "")
    keeper = service_keeper(ServiceClient(settings.service.url, settings.service.api_key))
    push = session_pusher(client, proj.id, settings.media_path, keep_intended=keeper)
    report = import_sessions(
        EXAMPLE,
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=settings.clips.max_seconds,
        push=push,
    )
    assert report.failed == {}
    stored = client.projects.get(id=proj.id).label_config
    assert f'<Relation value="{TRIGGER_RELATION}"/>' in stored
    tasks = sorted(iter_tasks(client, proj.id), key=lambda t: t.id)
    return Project(client, proj.id, tasks)


@pytest.fixture(scope="module")
def page(label_studio: Settings) -> Iterator[Page]:
    """A page logged in to Label Studio as the admin user (the login form, as a person)."""
    ARTIFACTS.mkdir(exist_ok=True)
    ls = label_studio.label_studio
    with (
        chromium() as browser,
        label_studio_tab(browser, ls.url, ls.username, ls.password or "", viewport=VIEWPORT) as tab,
    ):
        yield tab


def _stored_rows(database_url: str, annotation_id: int) -> list[ShiftEventRow]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            return list(
                db.exec(
                    select(ShiftEventRow).where(ShiftEventRow.annotation_id == annotation_id)
                ).all()
            )
    finally:
        engine.dispose()


def test_annotator_links_a_shift_to_its_turn_and_the_service_keeps_it(
    page: Page, project: Project, label_studio: Settings, service: Settings
) -> None:
    task = project.tasks[2]
    dialogue = task.data["dialogue"]
    assert len(dialogue) > CAUSE
    open_task(page, label_studio.label_studio.url, project.id, task)
    hands = Hands(page)

    # the shift span: its key, a drag on the waveform, a click to select it
    hands.press("Escape")
    canvas = page.locator("canvas#waveform-layer-main")
    if not _in_view(canvas):
        canvas.scroll_into_view_if_needed()
    assert TAX.shift.hotkey
    hands.press(TAX.shift.hotkey)
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    x0, x1 = box["x"] + box["width"] * 0.55, box["x"] + box["width"] * 0.70
    hands.drag(x0, x1, y)
    spans = _wait_for(
        lambda: [i for i in _result(page) if i["from_name"] == TAX.shift.name], timeout=10
    )
    assert len(spans) == 1, spans
    span_id = spans[0]["id"]
    for _ in range(3):  # a click right after the drag may only move the play head
        hands.click_at((x0 + x1) / 2, y)
        if _selected(page) == [span_id]:
            break
    assert _selected(page) == [span_id]

    # the link: one key, one click on the turn that caused the shift
    hands.reset()
    hands.press(LINK_KEY)
    assert _wait_for(
        lambda: page.evaluate("() => window.Htx.annotationStore.selected.isLinkingMode"), 5
    ), f"{LINK_KEY} did not start a link"
    hands.click(_turn(page, CAUSE))
    relations = _wait_for(
        lambda: [i for i in _result(page) if i.get("type") == "relation"], timeout=10
    )
    assert [(r["from_id"], r["to_id"]) for r in relations] == [(span_id, f"turn{CAUSE}")]
    counts = hands.counts()
    assert (counts["keys"], counts["clicks"]) == (1, 1)
    canvas.scroll_into_view_if_needed()  # the waveform, the span, the arrow, the turn
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "trigger-link.png"))
    if os.environ.get("IMPROV_UPDATE_DOCS_IMG"):
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "trigger-link.png", DOC_IMAGE)
    (ARTIFACTS / "trigger-report.json").write_text(
        json.dumps({"per_link": counts, "relation": relations}, indent=2) + "\n"
    )

    # the UI's own result decodes to the span with that turn as its cause
    result = _result(page)
    decoded = decode_annotation({"id": 1, "completed_by": 1, "result": result}, task.data, TAX)
    assert decoded.skipped == {}
    assert [s.trigger_turn for s in decoded.shifts] == [dialogue[CAUSE]["turn_id"]]

    # submit; the service keeps the shift event with its cause
    with page.expect_response(
        lambda r: r.request.method == "POST" and f"/api/tasks/{task.id}/annotations" in r.url
    ) as answer:
        page.click("[data-testid=bottombar-submit-button]")
    assert answer.value.status == 201
    made = answer.value.json()
    rows = _wait_for(lambda: _stored_rows(service.database_url, made["id"]), timeout=30)
    assert [(r.annotator, r.trigger_turn) for r in rows] == [
        (str(made["completed_by"]), dialogue[CAUSE]["turn_id"])
    ]

    # a second annotator (own account, through the API) marks the same shift and links the
    # same turn: the service's report now compares one matched pair of links
    account = ensure_account(
        label_studio.label_studio.url,
        "trigger-annotator@example.org",
        "a-long-test-password-2",
        invite=invite_link(project.client, label_studio.label_studio.url),
    )
    span = spans[0]["value"]
    second = encode_annotation(
        dialogue,
        {},
        TAX,
        [{"start": span["start"] + 0.2, "end": span["end"] + 0.2, "cause": CAUSE}],
    )
    as_user = LabelStudio(base_url=label_studio.label_studio.url, api_key=account.token)
    as_user.annotations.create(id=task.id, result=second)
    with httpx.Client(
        base_url=service.service.url,
        timeout=30,
        headers={"X-API-Key": service.service.api_key or ""},
    ) as svc:

        def both_arrived() -> dict[str, Any] | None:
            found = svc.get(f"/projects/{project.id}/agreement/shifts").json()
            return found if found["events"] == 2 else None

        figures = _wait_for(both_arrived, timeout=30)
    assert figures, "the second annotation did not reach the service"
    assert figures["matched_pairs"] == 1
    assert figures["trigger_links"] == {
        "n": 1,
        "same_turn": 1,
        "share": 1.0,
        "kappa": None,  # one turn on both sides: chance agreement is 1
        "one_linked": 0,
        "none_linked": 0,
    }
