"""The adjudication task on Label Studio's real labeling screen, in headless Chromium, as
the adjudicator works it.

Three invited accounts label a clip and split three ways on one turn; ``improv-annotate
adjudicate`` sends it to the adjudication project. The adjudicator (the admin account,
named by user id in ``adjudication.adjudicators``) logs in with the form, opens the task
and finds: the panel with every annotator's values side by side, the split turn marked
``⚠`` in the dialogue, and the values the panel agreed on already filled in while the
split turn is empty. They pick the split turn's emotion by its hotkey and submit, and the
service holds the decision for the clip. With ``IMPROV_UPDATE_DOCS_IMG=1`` the screenshot
is copied to ``docs/img/adjudication-task.png``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from annotate import stack
from annotate.adjudicate import MARK
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import (
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    find_project,
    invite_link,
    iter_tasks,
)
from schemas.taxonomy import load_taxonomy
from tests.conftest import ROOT, write_config
from tests.dashkit import chromium, label_studio_tab
from tests.livekit import label, run_cli, wait_for
from tests.payloads import dialogue
from tests.realkit import write_silence
from tests.test_browser import (
    ARTIFACTS,
    VIEWPORT,
    _result,
    _selected,
    _turn,
    _values,
    open_task,
)

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
KEY = "adjudication-browser-key"
SECRET = "adjudication-browser-secret"
PASSWORD = "a-long-adjudication-password-2"
PANEL = [
    ["joy", "anger", "neutral", "fear"],
    ["joy", "sadness", "neutral", "fear"],
    ["joy", "fear", "neutral", "fear"],
]
SPLIT = 1
DECIDED = "sadness"
DOC_IMAGE = ROOT / "docs" / "img" / "adjudication-task.png"


@pytest.fixture(scope="module")
def setup(label_studio: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A service of its own (verified webhooks) whose adjudicator is the admin account."""
    ls = label_studio.label_studio
    me = httpx.get(
        f"{ls.url}/api/current-user/whoami", headers={"Authorization": f"Token {ls.token}"}
    )
    assert me.status_code == 200, me.text
    admin_id = int(me.json()["id"])
    config = write_config(
        tmp_path_factory.mktemp("adjudication-browser"),
        label_studio={
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": f"Adjudication screen {uuid.uuid4().hex[:6]}",
        },
        service={
            "webhook_secret": SECRET,
            "api_key": KEY,
            "reconcile_seconds": 0,
            "webhook_mode": "verified",
        },
        adjudication={"thresholds": {"emotion": 0.8}, "adjudicators": [str(admin_id)]},
        media_root=str(label_studio.media_path),
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    try:
        yield settings, config, admin_id
    finally:
        stack.stop(settings, stack.SERVICE)


@pytest.fixture(scope="module")
def page(setup: Any) -> Iterator[Page]:
    """The adjudicator, logged in with Label Studio's form."""
    settings = setup[0]
    ARTIFACTS.mkdir(exist_ok=True)
    ls = settings.label_studio
    # taller than the labeling tests' screen: the panel, the waveform and the dialogue
    tall = {**VIEWPORT, "height": 1150}
    with (
        chromium() as browser,
        label_studio_tab(browser, ls.url, ls.username, ls.password or "", viewport=tall) as tab,
    ):
        yield tab


def _send_split_clip(settings: Settings, config: Path) -> tuple[Any, Any]:
    """The panel labels one clip (split on turn SPLIT) and it is sent; (main task,
    adjudication task) as the SDK lists them."""
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, SECRET)
    session = f"adjb-{uuid.uuid4().hex[:6]}"
    folder = settings.media_path / session
    folder.mkdir(parents=True, exist_ok=True)
    write_silence(folder / "clip.wav", 8.0)
    data = {
        "dialogue": dialogue(4, session_id=session, clip=0),
        "session_id": session,
        "clip_id": f"{session}-c000",
        "audio": f"/data/local-files/?d={session}/clip.wav",
        "audio_offset": 0.0,
        "title": "The secret: clip 1 of 1 (0:00.0-0:08.0)",
        "prompt": "two friends, one secret",
        "context": "",
    }
    answer = httpx.post(
        f"{url}/api/projects/{project.id}/import", json=[{"data": data}], headers=admin
    )
    assert answer.status_code == 201, answer.text
    (task,) = [t for t in iter_tasks(client, project.id) if t.data["session_id"] == session]
    invite = invite_link(client, url)
    for k, emotions in enumerate(PANEL):
        who = ensure_account(
            url, f"adjb-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite
        )
        label(url, who, {"id": task.id, "data": task.data}, emotions, TAX)
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)
    wait_for(
        lambda: (
            svc.get(f"/projects/{project.id}/judgements", params={"limit": 1}).json().get("count")
            == 12
        ),
        what="the panel's 12 judgements in the service",
    )
    done = run_cli(config, "adjudicate", "--json", "-p", str(project.id))
    assert done.returncode == 0, done.stdout + done.stderr
    adj = find_project(client, f"{settings.label_studio.project_title} · adjudication")
    assert adj is not None
    (adj_task,) = list(iter_tasks(client, adj.id))
    return (project, task), (adj, adj_task)


def test_the_adjudicator_sees_the_panel_and_decides_the_split_turn(setup: Any, page: Page) -> None:
    settings, config, admin_id = setup
    (project, task), (adj, adj_task) = _send_split_clip(settings, config)
    open_task(page, settings.label_studio.url, adj.id, adj_task)

    # the panel: every annotator's value of the split turn, side by side
    panel = page.get_by_text("Sent because", exact=False).first
    assert panel.is_visible()
    for k, emotions in enumerate(PANEL, start=1):
        assert page.get_by_text(f"A{k} {emotions[SPLIT]}", exact=False).count() >= 1
    # the split turn is marked in the dialogue, the others are not
    speakers = [
        page.locator(f"[data-testid='phrase:{i}']").inner_text() for i in range(len(PANEL[0]))
    ]
    assert [MARK in s for s in speakers] == [i == SPLIT for i in range(len(PANEL[0]))]
    # what the panel agreed on is filled in; the split turn is empty
    result = _result(page)
    for i in range(len(PANEL[0])):
        agreed = {e[i] for e in PANEL}
        expected = {"emotion": agreed.pop()} if i != SPLIT else {}
        assert _values(result, i) == expected, i

    # the adjudicator picks the split turn's emotion by its hotkey
    hotkey = {lab.value: lab.hotkey for lab in TAX.emotion.labels}[DECIDED]
    _turn(page, SPLIT).click()
    assert _selected(page) == [f"turn{SPLIT}"]
    page.keyboard.press(hotkey)
    assert _values(_result(page), SPLIT) == {"emotion": DECIDED}
    panel.scroll_into_view_if_needed()
    shot = ARTIFACTS / "adjudication-task.png"
    page.screenshot(path=str(shot))
    if os.environ.get("IMPROV_UPDATE_DOCS_IMG"):
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_IMAGE)

    with page.expect_response(
        lambda r: r.request.method == "POST" and f"/api/tasks/{adj_task.id}/annotations" in r.url
    ) as answer:
        page.click("[data-testid=bottombar-submit-button]")
    assert answer.value.status == 201

    # the service takes it as the clip's decision
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)

    def decided() -> dict[str, Any] | None:
        got = svc.get(f"/projects/{project.id}/adjudicated").json()
        return got if got["decided"] == 1 else None

    got = wait_for(decided, what="the adjudicator's decision in the service")
    (entry,) = got["data"]
    assert entry["adjudicator"] == str(admin_id)
    turns = [line["turn_id"] for line in task.data["dialogue"]]
    expected = [e[0] if i != SPLIT else DECIDED for i, e in enumerate(zip(*PANEL, strict=True))]
    assert [entry["turns"][t]["emotion"] for t in turns] == expected
