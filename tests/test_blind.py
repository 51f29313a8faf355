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
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
from tests.dashkit import chromium, label_studio_tab

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
ARTIFACTS = ROOT / "test-artifacts"
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


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """(path, item, is_key) of every key and leaf of a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}.{key}", key, True
            yield from _walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}[{i}]")
    else:
        yield path, value, False


def _leaks(served: Any, emotions: set[str]) -> list[str]:
    """Where a served JSON value could carry an intended emotion: any key containing
    "intended" (at any depth), and in a task's data any value containing "intended" or
    naming an emotion outside the turn text (the label config and annotation results name
    emotions by design; other answers, e.g. ``/api/version``, may use the word)."""
    found = []
    for path, item, is_key in _walk(served):
        if is_key:
            if "intended" in str(item).lower():
                found.append(path)
            continue
        if ".data." not in f"{path}." or not isinstance(item, str):
            continue
        if "intended" in item.lower():
            found.append(f"{path}: {item[:80]}")
        elif item.lower() in emotions and not path.endswith(
            (".text", ".title", ".prompt", ".context")
        ):
            found.append(f"{path}: {item}")
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
    served: list[tuple[str, Any]] = []

    def keep(response: Any) -> None:
        if "/api/" in response.url and "json" in response.headers.get("content-type", ""):
            with contextlib.suppress(Exception):  # a body gone with a navigation
                served.append((response.url, response.json()))

    def listen(tab: Page) -> None:
        tab.on("response", keep)
        tab.served = served  # type: ignore[attr-defined]

    with label_studio_tab(
        browser, url, email, PASSWORD, viewport={"width": 1280, "height": 800}, prepare=listen
    ) as tab:
        yield tab


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


def test_what_community_cannot_hide_any_member_reads_every_annotation(
    page: Page, blind: Blind, label_studio: Settings
) -> None:
    """Measured for the README: Label Studio Community has no roles, so any member reads a
    task's annotations, everyone's, through the API; what the data manager's task view
    shows is recorded in the report."""
    url = label_studio.label_studio.url
    task = blind.tasks[-1]
    firsts = [a["id"] for a in task.annotations or []]
    assert firsts
    answer = httpx.get(
        f"{url}/api/tasks/{task.id}", headers={"Authorization": f"Token {blind.second.token}"}
    ).json()
    read = [a["id"] for a in answer["annotations"]]
    REPORT["api_task_annotations_read_by_another_annotator"] = read
    assert set(firsts) <= set(read)  # the API hands them over
    listed = httpx.get(
        f"{url}/api/tasks",
        params={"project": blind.id, "fields": "all", "page_size": 100},
        headers={"Authorization": f"Token {blind.second.token}"},
    ).json()["tasks"]
    in_list = {a["id"] for t in listed for a in t.get("annotations") or []}
    REPORT["task_list_annotations_read_by_another_annotator"] = sorted(in_list)
    assert set(firsts) <= in_list
    page.goto(f"{url}/projects/{blind.id}/data?task={task.id}")
    _wait(page, "() => (window.Htx?.annotationStore?.annotations?.length ?? 0) > 0")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    held = _store(page)
    REPORT["data_manager_task_view"] = held
    REPORT["data_manager_shows_other_annotations"] = bool(
        {a["pk"] for a in held["annotations"]} & {*firsts, *map(str, firsts)}
    )
    page.screenshot(path=str(ARTIFACTS / "blind-data-manager-task.png"))
    assert not [u for u, body in page.served if _leaks(body, set(TAX.emotion.values))]  # type: ignore[attr-defined]
    REPORT["served_json_answers"] = len(page.served)  # type: ignore[attr-defined]


def test_both_cli_exports_carry_the_intended_emotions(
    blind: Blind, label_studio: Settings, stack_config: Path, tmp_path: Path
) -> None:
    """``improv-annotate export`` live and ``--from-label-studio`` (Label Studio's own JSON
    export, which has no intended emotions) both join them from the service's store. Runs
    before the keystroke test: with the first annotator's complete labels only."""
    exported = httpx.get(
        f"{label_studio.label_studio.url}/api/projects/{blind.id}/export",
        params={"exportType": "JSON"},
        headers={"Authorization": f"Token {label_studio.label_studio.token}"},
        timeout=120,
    )
    assert exported.status_code == 200
    assert "intended" not in exported.text
    source = tmp_path / "label-studio-export.json"
    source.write_bytes(exported.content)
    for name, args in (
        ("live", ("--project", str(blind.id))),
        ("offline", ("--from-label-studio", str(source))),
    ):
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, "-m", "annotate.cli", "--config", str(stack_config), "export",
             "--out", str(out), *args],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        rows = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
        assert {r["turn_id"]: r["intended_emotion"] for r in rows} == blind.arc, name


# What the annotator picks in the keystroke test (README's labeling flow).
TURN_PICK = {"emotion": "joy", "intensity": "4"}
STARS_PICK = ("valence", 4)  # a star rating by its key: one press per star
SHIFT_PICK = {"from": "joy", "to": "anger", "trigger": "partner-induced", "onset": "abrupt"}


def _shift_keys() -> dict[str, dict[str, str | None]]:
    shift = TAX.shift
    return {
        "from": dict(
            zip(TAX.emotion.values, shift.emotion_hotkeys(TAX.emotion, "from"), strict=True)
        ),
        "to": dict(zip(TAX.emotion.values, shift.emotion_hotkeys(TAX.emotion, "to"), strict=True)),
        "trigger": dict(zip(shift.trigger, shift.trigger_hotkeys, strict=True)),
        "onset": dict(zip(shift.onset, shift.onset_hotkeys, strict=True)),
    }


def test_the_readme_flow_keystroke_by_keystroke_saves_what_was_typed(
    page: Page, blind: Blind, label_studio: Settings
) -> None:
    """In the stream's new annotation: once, Settings > "Select region after creating it";
    then a turn by keyboard (``Alt+.``, emotion key, intensity digit, a star rating's key
    once per star) and a shift (``z``, a
    drag on the waveform, ``shift+``/``alt+`` emotion keys, trigger and onset digits), each
    key checked on the screen; submitted with ``Ctrl+Enter`` and read back through the API."""
    from tests.test_browser import (
        Hands,
        _choice,
        _headers,
        _result,
        _selected,
        _values,
        _wait_for,
    )

    url = label_studio.label_studio.url
    page.goto(f"{url}/projects/{blind.id}/data?labeling=1")
    _wait(page, "() => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) > 0")
    task_id = page.evaluate("() => window.Htx.task.id")
    task = next(t for t in blind.tasks if t.id == task_id)
    config = blind.client.projects.get(id=blind.id).label_config
    headers = _headers(config)
    hands = Hands(page)

    # once per browser: new spans are selected when drawn (Label Studio keeps the setting)
    if not page.evaluate("() => window.Htx.settings.selectAfterCreate"):
        hands.click(page.locator("button[aria-label=Settings]"))
        hands.click(page.get_by_text("Select region after creating it", exact=True))
        hands.click(page.locator(".ant-modal-close"))
        page.wait_for_function("() => !window.Htx.showingSettings")
        # Label Studio leaves the keyboard focus in the closed dialog, which swallows the
        # next Escape: a click on the clip's title gives the keys back to the task
        hands.click(page.get_by_text(str(task.data["title"]), exact=True))
    assert page.evaluate("() => window.Htx.settings.selectAfterCreate")
    REPORT["setting_once"] = hands.counts()

    # a turn: next region, emotion key, intensity digit
    hands.reset()
    hands.press("Alt+.")
    assert _selected(page) == ["turn0"]
    keys = {label.value: label.hotkey for label in TAX.emotion.labels}
    hands.press(keys[TURN_PICK["emotion"]] or "")
    assert _choice(page, headers["emotion"], TURN_PICK["emotion"]).is_checked()
    hands.press(TURN_PICK["intensity"])
    assert _choice(page, headers["intensity"], TURN_PICK["intensity"]).is_checked()
    assert _values(_result(page), 0) == TURN_PICK
    REPORT["turn_keystrokes"] = hands.counts()
    stars, n = STARS_PICK
    key = TAX.dimension(stars).hotkey
    assert key, f"the taxonomy gives {stars} no key"
    for _ in range(n):
        hands.press(key)
    assert _values(_result(page), 0) == {**TURN_PICK, stars: n}
    REPORT["turn_keystrokes_with_stars"] = hands.counts()

    # a shift: z, drag, then its four values by key, the span staying selected throughout
    hands.reset()
    hands.press("Escape")
    # the UI drops the selection on its next render, not always before the key returns
    assert _wait_for(lambda: _selected(page) == [], timeout=5), (
        _selected(page),
        page.evaluate("() => document.activeElement?.outerHTML?.slice(0, 200)"),
    )
    canvas = page.locator("canvas#waveform-layer-main")
    canvas.scroll_into_view_if_needed()
    hands.press(TAX.shift.hotkey or "")
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    hands.drag(box["x"] + box["width"] * 0.30, box["x"] + box["width"] * 0.45, y)
    page.wait_for_function(
        "n => window.Htx.annotationStore.selected.serializeAnnotation()"
        ".some(r => r.from_name === n)",
        arg=TAX.shift.name,
        timeout=5_000,
    )
    spans = [i for i in _result(page) if i["from_name"] == TAX.shift.name]
    assert len(spans) == 1, spans
    assert _selected(page) == [spans[0]["id"]]
    from schemas.label_config import shift_control

    for part, value in SHIFT_PICK.items():
        key = _shift_keys()[part][value]
        assert key, f"no hotkey for shift {part} {value}"
        hands.press(key)
        assert _choice(page, headers[shift_control(TAX, part)], value).is_checked(), part
        assert _selected(page) == [spans[0]["id"]], f"the span lost the selection at {part}"
    REPORT["shift_keystrokes"] = hands.counts()
    page.screenshot(path=str(ARTIFACTS / "blind-readme-flow.png"))

    # submit by key, then read what Label Studio saved
    with page.expect_response(
        lambda r: r.request.method == "POST" and f"/api/tasks/{task_id}/annotations" in r.url
    ) as answer:
        page.keyboard.press("Control+Enter")
    assert answer.value.status == 201
    saved = blind.client.annotations.get(id=answer.value.json()["id"])
    assert saved.completed_by == blind.second.id
    from schemas.codec import decode_annotation

    decoded = decode_annotation(
        {"id": saved.id, "completed_by": saved.completed_by, "result": saved.result},
        task.data,
        TAX,
    )
    turn_id = task.data["dialogue"][0]["turn_id"]
    assert decoded.skipped == {}
    assert {(j.turn_id, j.dimension): j.value for j in decoded.judgements} == {
        **{(turn_id, dim): value for dim, value in TURN_PICK.items()},
        (turn_id, stars): str(n),
    }
    (shift,) = decoded.shifts
    assert (shift.from_emotion, shift.to_emotion, shift.trigger, shift.onset) == tuple(
        SHIFT_PICK.values()
    )
    turns = [r for r in saved.result if r["from_name"] == TURN]
    assert len(turns) == len(task.data["dialogue"])  # started from every turn region
