"""The labeling UI in a real browser, driven as an annotator drives it.

Headless Chromium (Debian's, through Playwright; never ``playwright install``) logs in to
the test Label Studio, opens tasks of the example session and checks that the waveform, the
dialogue and one pre-annotated region per turn are there; labels a turn (emotion by its
hotkey, intensity by its digit) and a shift span drawn on the waveform (from, to,
trigger, onset by their keys); checks that the UI's own result JSON decodes to exactly those
picks; submits; and
waits for the agreement service to hold them. It also counts the clicks and keystrokes a
turn takes, by mouse and by keyboard alone, and times login, page and submit.

Artifacts go to ``test-artifacts/`` (git-ignored): screenshots, the UI's result JSON and
``browser-report.json`` (timings, counts). With ``IMPROV_UPDATE_DOCS_IMG=1`` the labeling
screenshot is also copied to ``docs/img/labeling-screen.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from playwright.sync_api import Browser, Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from annotate.config import Settings
from annotate.labelstudio import (
    connect,
    ensure_project,
    ensure_webhook,
    iter_tasks,
    service_keeper,
    session_pusher,
)
from annotate.service import ServiceClient
from importers import import_sessions
from schemas.codec import decode_annotation
from schemas.label_config import TURN, shift_control
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT
from tests.dashkit import chromium, label_studio_tab

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
CHROMIUM = Path(os.environ.get("IMPROV_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGE = ROOT / "docs" / "img" / "labeling-screen.png"
VIEWPORT = {"width": 1280, "height": 800}
# Analytics and error tracking the page calls home with; they change nothing offline.
REPORT: dict[str, Any] = {"timings_s": {}, "per_turn": {}}

# What the annotator picks in the main test.
TURN_INDEX = 1
EMOTION = "anger"
INTENSITY = 4
SHIFT = {"from": "joy", "to": "anger", "trigger": "partner-induced", "onset": "abrupt"}


# --- fixtures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    client: LabelStudio
    id: int
    label_config: str
    tasks: list[Any]


@pytest.fixture(scope="module")
def project(label_studio: Settings, service: Settings) -> Project:
    """The example session in a project of its own, so other modules' counts stay put."""
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Browser test"}
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
    tasks = sorted(iter_tasks(client, proj.id), key=lambda t: t.id)
    assert len(tasks) >= 4, "the example session should give at least four clips"
    fresh = client.projects.get(id=proj.id)
    return Project(client, proj.id, fresh.label_config, tasks)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (the machine has two cores)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as launched:
        yield launched
    (ARTIFACTS / "browser-report.json").write_text(json.dumps(REPORT, indent=2) + "\n")


@pytest.fixture(scope="module")
def page(browser: Browser, label_studio: Settings) -> Iterator[Page]:
    """A page logged in to Label Studio as the admin user (the login form, as a person)."""
    ls = label_studio.label_studio
    started = time.monotonic()
    with label_studio_tab(
        browser, ls.url, ls.username, ls.password or "", viewport=VIEWPORT
    ) as tab:
        REPORT["timings_s"]["login"] = round(time.monotonic() - started, 2)
        yield tab


# --- helpers --------------------------------------------------------------------------------


class Hands:
    """The annotator's hands: every click, key press and drag goes through here and counts.

    ``scrolls`` counts the clicks whose target was outside the viewport: Playwright scrolls
    to it by itself, a person has to scroll first.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.clicks = self.keys = self.drags = self.scrolls = 0

    def counts(self) -> dict[str, int]:
        return {
            "clicks": self.clicks,
            "keys": self.keys,
            "drags": self.drags,
            "scrolls": self.scrolls,
        }

    def reset(self) -> None:
        self.clicks = self.keys = self.drags = self.scrolls = 0

    def click(self, target: Locator) -> None:
        if not _in_view(target):
            self.scrolls += 1
        target.click()
        self.clicks += 1

    def press(self, key: str) -> None:
        self.page.keyboard.press(_playwright_key(key))
        self.keys += 1

    def drag(self, x0: float, x1: float, y: float) -> None:
        mouse = self.page.mouse
        mouse.move(x0, y)
        mouse.down()
        mouse.move((x0 + x1) / 2, y, steps=5)
        mouse.move(x1, y, steps=5)
        mouse.up()
        self.drags += 1

    def click_at(self, x: float, y: float) -> None:
        self.page.mouse.move(x, y)
        self.page.wait_for_timeout(300)
        self.page.mouse.down()
        self.page.mouse.up()
        self.clicks += 1


def _in_view(target: Locator) -> bool:
    return bool(
        target.evaluate(
            "e => { const r = e.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight"
            " && r.left >= 0 && r.right <= innerWidth }"
        )
    )


def _result(page: Page) -> list[dict[str, Any]]:
    """The UI's own serialization of the annotation being edited."""
    return page.evaluate("() => window.Htx.annotationStore.selected.serializeAnnotation()")


def _playwright_key(key: str) -> str:
    """A Label Studio hotkey ("shift+j", "alt+a", "4") in Playwright's spelling."""
    *mods, last = key.split("+")
    names = {"shift": "Shift", "alt": "Alt", "ctrl": "Control", "meta": "Meta"}
    return "+".join([*(names.get(m.lower(), m) for m in mods), last])


def _selected(page: Page) -> list[str]:
    return page.evaluate(
        "() => window.Htx.annotationStore.selected.selectedRegions.map(r => r.cleanId ?? r.id)"
    )


def _control(page: Page, name: str) -> dict[str, Any]:
    """A control's hotkey and its choices' hotkeys, as the UI assigned them."""
    return page.evaluate(
        """name => { const c = window.Htx.annotationStore.selected.names.get(name);
          const choices = (c.children || []).map(ch => [ch.value, ch.hotkey]);
          return {hotkey: c.hotkey ?? null, choices: Object.fromEntries(choices)} }""",
        name,
    )


def _headers(label_config: str) -> dict[str, str]:
    """Control name -> the Header shown just above it in the label config."""
    found: dict[str, str] = {}
    for parent in ET.fromstring(label_config).iter():
        header = None
        for child in parent:
            if child.tag == "Header":
                header = child.get("value")
            elif child.get("name") and header:
                found[child.get("name", "")] = header
                header = None
    return found


def _choice(page: Page, header: str, value: str) -> Locator:
    """The input of one choice of the Choices shown under ``header``."""
    return page.locator(f"h4:text-is('{header}') + .lsf-choices input[name='{value}']")


def _turn(page: Page, index: int) -> Locator:
    return page.locator(f"[data-testid='phrase:{index}'] span.htx-highlight").first


def _wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def open_task(page: Page, base_url: str, project_id: int, task: Any) -> float:
    """Open a task as an annotator does; seconds until it is labelable.

    Ready means: the dialogue rendered, one region per turn loaded from the pre-annotation,
    and the audio decoded (the timebox shows its duration). Quirk: the first time a project
    is opened in the data manager (it creates its default tab), the task loads twice and the
    second load drops the pre-annotation, leaving no regions; a reload brings them back. So
    wait for the network to settle before counting regions, and reload once if there are none.
    """
    n_turns = len(task.data["dialogue"])
    regions = "n => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) >= n"
    started = time.monotonic()
    page.goto(f"{base_url}/projects/{project_id}/data?task={task.id}")
    for attempt in range(2):
        page.wait_for_load_state("networkidle")
        try:
            page.wait_for_function(regions, arg=n_turns, timeout=5_000 if attempt == 0 else 20_000)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
            REPORT.setdefault("reloads", []).append(task.id)
            page.reload()
    page.wait_for_selector("[data-testid='phrase:0']")
    page.wait_for_function(
        "() => { const t = document.querySelector('[data-testid=timebox-end-time] input');"
        " return t && t.value && !/^[0:]+$/.test(t.value) }"
    )
    took = time.monotonic() - started
    REPORT["timings_s"].setdefault("task_open", []).append(round(took, 2))
    return took


def _values(result: list[dict[str, Any]], index: int) -> dict[str, Any]:
    """{control: value} of the turn region ``index`` in a UI result."""
    out: dict[str, Any] = {}
    for item in result:
        value = item["value"]
        if item.get("to_name") == "dialogue" and value.get("start") == str(index):
            if "choices" in value:
                out[item["from_name"]] = value["choices"][0]
            elif "rating" in value:
                out[item["from_name"]] = value["rating"]
    return out


def _decode(result: list[dict[str, Any]], task: Any) -> Any:
    return decode_annotation({"id": 1, "completed_by": 1, "result": result}, task.data, TAX)


def _shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# --- tests ----------------------------------------------------------------------------------


def test_task_page_shows_audio_dialogue_and_one_region_per_turn(
    page: Page, project: Project, label_studio: Settings
) -> None:
    task = project.tasks[0]
    dialogue = task.data["dialogue"]
    REPORT["timings_s"]["task_page_ready"] = round(
        open_task(page, label_studio.label_studio.url, project.id, task), 2
    )
    # the clip's audio, decoded and drawn
    audio = page.locator("[data-testid=waveform-audio]")
    assert audio.count() == 1
    assert audio.get_attribute("src") == task.data["audio"]
    assert page.locator("canvas#waveform-layer-main").is_visible()
    # the dialogue: every line with its speaker's name, both speakers there
    speakers = {line["speaker"] for line in dialogue}
    assert len(speakers) == 2
    for i, line in enumerate(dialogue):
        text = page.locator(f"[data-testid='phrase:{i}']").inner_text()
        assert line["speaker"] in text
        assert " ".join(line["text"].split()) in " ".join(text.split())
    # one pre-annotated turn region per line, nothing else
    result = _result(page)
    assert [item["value"]["start"] for item in result if item["from_name"] == TURN] == [
        str(i) for i in range(len(dialogue))
    ]
    assert all(item["from_name"] == TURN for item in result)
    _shot(page, "task-page.png")


def test_annotator_labels_a_turn_and_a_shift_and_the_service_stores_them(
    page: Page, project: Project, label_studio: Settings, service: Settings
) -> None:
    task = project.tasks[1]
    dialogue = task.data["dialogue"]
    headers = _headers(project.label_config)
    hands = Hands(page)
    open_task(page, label_studio.label_studio.url, project.id, task)

    # a turn: select its region, emotion by its hotkey, intensity by its digit
    hotkey = {label.value: label.hotkey for label in TAX.emotion.labels}[EMOTION]
    assert hotkey, f"the taxonomy gives {EMOTION} no hotkey"
    intensity_keys = dict(
        zip(
            map(str, TAX.dimension("intensity").scale),
            TAX.dimension("intensity").hotkeys,
            strict=True,
        )
    )
    hands.click(_turn(page, TURN_INDEX))
    assert _selected(page) == [f"turn{TURN_INDEX}"]
    hands.press(hotkey)
    assert _choice(page, headers["emotion"], EMOTION).is_checked()
    hands.press(intensity_keys[str(INTENSITY)])
    assert _choice(page, headers["intensity"], str(INTENSITY)).is_checked()
    assert _values(_result(page), TURN_INDEX) == {"emotion": EMOTION, "intensity": str(INTENSITY)}
    REPORT["per_turn"]["mouse_and_hotkey"] = hands.counts()
    assert (hands.clicks, hands.keys) == (1, 2)  # one click on the turn, two keys
    _shot(page, "turn-labeled.png")

    # a shift span: unselect the turn, pick the shift label, drag on the waveform, select
    # the new span, then its from / to / trigger / onset
    hands.reset()
    hands.press("Escape")
    assert _selected(page) == []
    canvas = page.locator("canvas#waveform-layer-main")
    if not _in_view(canvas):  # back up from the stars to the waveform
        hands.scrolls += 1
        canvas.scroll_into_view_if_needed()
    if TAX.shift.hotkey:
        hands.press(TAX.shift.hotkey)
    else:
        hands.click(page.get_by_text(TAX.shift.title, exact=True).first)
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    x0, x1 = box["x"] + box["width"] * 0.30, box["x"] + box["width"] * 0.45
    hands.drag(x0, x1, y)
    spans = _wait_for(
        lambda: [i for i in _result(page) if i["from_name"] == TAX.shift.name], timeout=10
    )
    assert len(spans) == 1, spans
    (span,) = spans
    assert span["value"]["labels"] == [TAX.shift.title]
    assert span["value"]["end"] - span["value"]["start"] > 1.0
    for _ in range(3):  # a click right after the drag may only move the play head
        hands.click_at((x0 + x1) / 2, y)
        if _selected(page) == [span["id"]]:
            break
    assert _selected(page) == [span["id"]]
    keys = {
        "from": dict(
            zip(TAX.emotion.values, TAX.shift.emotion_hotkeys(TAX.emotion, "from"), strict=True)
        ),
        "to": dict(
            zip(TAX.emotion.values, TAX.shift.emotion_hotkeys(TAX.emotion, "to"), strict=True)
        ),
        "trigger": dict(zip(TAX.shift.trigger, TAX.shift.trigger_hotkeys, strict=True)),
        "onset": dict(zip(TAX.shift.onset, TAX.shift.onset_hotkeys, strict=True)),
    }
    for part, value in SHIFT.items():
        key = keys[part][value]
        assert key, f"the taxonomy gives shift {part} {value} no hotkey"
        hands.press(key)
        assert _choice(page, headers[shift_control(TAX, part)], value).is_checked(), part
    REPORT["per_shift"] = hands.counts()
    _shot(page, "shift-labeled.png")

    # the labeling screen as a person sees it: the turn selected again, its values in the
    # side panel, the shift span on the waveform
    hands.press("Escape")
    page.locator("[data-testid='phrase:0']").scroll_into_view_if_needed()
    canvas.scroll_into_view_if_needed()
    _turn(page, TURN_INDEX).click()
    page.wait_for_timeout(300)
    labeling = _shot(page, "labeling-screen.png")
    if os.environ.get("IMPROV_UPDATE_DOCS_IMG"):
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(labeling, DOC_IMAGE)

    # the UI's own result decodes to exactly the picks
    result = _result(page)
    (ARTIFACTS / "ui-result.json").write_text(json.dumps(result, indent=1) + "\n")
    decoded = _decode(result, task)
    turn_id = dialogue[TURN_INDEX]["turn_id"]
    picks = {(turn_id, "emotion"): EMOTION, (turn_id, "intensity"): str(INTENSITY)}
    assert decoded.skipped == {}
    assert {(j.turn_id, j.dimension): j.value for j in decoded.judgements} == picks
    (shift,) = decoded.shifts
    offset = float(task.data.get("audio_offset") or 0.0)
    assert shift.start == pytest.approx(span["value"]["start"] + offset, abs=1e-3)
    assert shift.end == pytest.approx(span["value"]["end"] + offset, abs=1e-3)
    assert (shift.from_emotion, shift.to_emotion, shift.trigger, shift.onset) == tuple(
        SHIFT.values()
    )

    # submit, then the service holds those judgements and that shift event
    started = time.monotonic()
    with page.expect_response(
        lambda r: r.request.method == "POST" and f"/api/tasks/{task.id}/annotations" in r.url
    ) as answer:
        page.click("[data-testid=bottombar-submit-button]")
    REPORT["timings_s"]["submit_round_trip"] = round(time.monotonic() - started, 2)
    assert answer.value.status == 201
    made = answer.value.json()
    with httpx.Client(
        base_url=service.service.url, headers={"X-API-Key": service.service.api_key or ""}
    ) as svc:

        def stored() -> dict[tuple[str, str], str]:
            page_ = svc.get(f"/projects/{project.id}/judgements", params={"limit": 1000}).json()
            return {
                (j["turn_id"], j["dimension"]): j["value"]
                for j in page_["data"]
                if j["annotation_id"] == made["id"]
            }

        assert _wait_for(lambda: stored() == picks), stored()
    REPORT["timings_s"]["submit_to_service"] = round(time.monotonic() - started, 2)

    from sqlmodel import Session, select

    from api.db import make_engine
    from api.models import ShiftEventRow

    engine = make_engine(service.database_url)
    try:
        with Session(engine) as db:
            rows = db.exec(
                select(ShiftEventRow).where(ShiftEventRow.annotation_id == made["id"])
            ).all()
    finally:
        engine.dispose()
    assert [(r.from_emotion, r.to_emotion, r.trigger, r.onset) for r in rows] == [
        tuple(SHIFT.values())
    ]
    assert rows[0].annotator == str(made["completed_by"])
    assert rows[0].session_id == task.data["session_id"]


def test_a_turn_by_keyboard_alone(page: Page, project: Project, label_studio: Settings) -> None:
    """Next region, emotion hotkey, intensity digit: three keys a turn, no mouse."""
    task = project.tasks[2]
    open_task(page, label_studio.label_studio.url, project.id, task)
    hands = Hands(page)
    assigned = _control(page, "intensity")["choices"]
    assert assigned == {str(v): str(v) for v in range(1, 6)}, assigned
    REPORT["intensity_hotkeys"] = assigned
    keys = {label.value: label.hotkey or "" for label in TAX.emotion.labels}
    assert keys["sadness"] and keys["fear"], "the taxonomy gives sadness and fear hotkeys"

    hands.press("Alt+.")  # region:cycle, from nothing selected: the first turn
    assert _selected(page) == ["turn0"]
    hands.reset()
    hands.press("Alt+.")
    assert _selected(page) == ["turn1"]
    hands.press(keys["sadness"])
    hands.press("3")
    REPORT["per_turn"]["keyboard_only"] = hands.counts()
    assert (hands.clicks, hands.keys) == (0, 3)
    hands.press("Alt+.")
    hands.press(keys["fear"])
    hands.press("1")
    result = _result(page)
    assert _values(result, 1) == {"emotion": "sadness", "intensity": "3"}
    assert _values(result, 2) == {"emotion": "fear", "intensity": "1"}

    # A shift choice's key pressed while a turn is selected lands on the turn's region;
    # the codec must not read it as a shift event.
    stray_key = next(iter(_control(page, shift_control(TAX, "from"))["choices"].values()))
    if stray_key:
        page.keyboard.press(_playwright_key(stray_key))
        decoded = _decode(_result(page), task)
        assert decoded.shifts == ()
        assert decoded.skipped == {"shift control on a turn": 1}
        assert {(j.turn_id, j.value) for j in decoded.judgements} == {
            (task.data["dialogue"][1]["turn_id"], "sadness"),
            (task.data["dialogue"][1]["turn_id"], "3"),
            (task.data["dialogue"][2]["turn_id"], "fear"),
            (task.data["dialogue"][2]["turn_id"], "1"),
        }


def test_every_emotion_hotkey_sets_its_emotion(
    page: Page, project: Project, label_studio: Settings
) -> None:
    """Each on a turn of its own, so a key that does nothing leaves that turn unset."""
    task = project.tasks[0]  # the longest clip; the first test only looked at it
    n_turns = len(task.data["dialogue"])
    open_task(page, label_studio.label_studio.url, project.id, task)
    broken: dict[str, str] = {}
    for k, label in enumerate(TAX.emotion.labels):
        if not label.hotkey:
            continue
        index = k % n_turns
        page.keyboard.press("Escape")
        _turn(page, index).click()
        assert _selected(page) == [f"turn{index}"]
        page.keyboard.press(label.hotkey)
        got = _values(_result(page), index).get("emotion")
        if got != label.value:
            broken[label.hotkey] = (
                f"{label.value} (the turn's emotion is {got}, selected regions {_selected(page)})"
            )
    REPORT["emotion_hotkeys_not_working"] = broken
    assert broken == {}
