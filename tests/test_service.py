"""The agreement service over HTTP (real uvicorn) on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from annotate import stack
from annotate.config import load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER
from api.db import make_engine
from api.models import DeadLetter
from schemas.taxonomy import load_taxonomy
from tests.conftest import ROOT, missing, write_config
from tests.payloads import annotation_event, delete_event, dialogue, task

TAX = load_taxonomy()
EMOTIONS = ["neutral", "joy", "sadness", "anger", "fear"]


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client, str]]:
    """(webhook client, API client, database URL) of a service started for this test."""
    config = write_config(
        tmp_path,
        service={
            "database_url": database_url,
            "webhook_secret": "s3cret",
            "api_key": "k3y",
            "reconcile_seconds": 0,
        },
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    url = settings.service.url
    hooks = httpx.Client(base_url=url, headers={SECRET_HEADER: "s3cret"}, timeout=30)
    reads = httpx.Client(base_url=url, headers={"X-API-Key": "k3y"}, timeout=60)
    try:
        yield hooks, reads, database_url
    finally:
        hooks.close()
        reads.close()
        stack.stop(settings, stack.SERVICE)


def _u(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def _load(hooks: httpx.Client) -> None:
    """Three annotators on two clips of two sessions; annotator 3 disagrees on clip 1."""
    ids = 100
    for clip, session in ((0, "s1"), (1, "s2")):
        lines = dialogue(4, session_id=session, clip=clip)
        t = task(clip + 1, lines, session_id=session)
        for annotator in (1, 2, 3):
            values = {}
            for i in range(4):
                label = EMOTIONS[(i + clip) % 5]
                if annotator == 3 and clip == 1:
                    label = EMOTIONS[(i + 2) % 5]
                values[i] = {"emotion": label, "intensity": 1 + (i + annotator) % 5}
            ids += 1
            answer = hooks.post(
                "/webhooks/label-studio", json=annotation_event(TAX, ids, t, annotator, values)
            )
            assert answer.status_code == 200, answer.text


def test_webhook_needs_the_secret_and_changes_nothing_without_it(served) -> None:
    hooks, reads, _ = served
    payload = annotation_event(TAX, 1, task(1, dialogue(2)), 7, {0: {"emotion": "joy"}})
    for headers in ({}, {SECRET_HEADER: "wrong"}):
        answer = httpx.post(f"{_u(hooks)}/webhooks/label-studio", json=payload, headers=headers)
        assert answer.status_code == 401
        assert SECRET_HEADER in answer.json()["detail"]
    assert reads.get("/projects").json() == {
        "data": [],
        "count": 0,
        "freshness": {"pending": 0, "oldest_age_s": 0.0, "fresh": True},
    }


def test_malformed_payload_is_422_and_dead_lettered(served) -> None:
    hooks, reads, database_url = served
    answer = hooks.post(
        "/webhooks/label-studio", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "annotation: expected Mapping, got NoneType"
    answer = hooks.post("/webhooks/label-studio", content=b"{not json")
    assert answer.status_code == 422
    letters = reads.get("/dead-letters").json()  # the read waits for the applier
    assert [d["reason"] for d in letters["data"]] == [
        "body: not JSON",  # newest first
        "annotation: expected Mapping, got NoneType",
    ]
    assert letters["data"][0]["body"] == "{not json" and letters["count"] == 2
    engine = make_engine(database_url)
    with Session(engine) as db:
        reasons = [d.reason for d in db.exec(select(DeadLetter)).all()]
    engine.dispose()
    assert reasons == ["annotation: expected Mapping, got NoneType", "body: not JSON"]
    assert reads.get("/projects").json()["count"] == 0


def test_read_endpoints_need_the_api_key(served) -> None:
    hooks, reads, _ = served
    _load(hooks)
    answer = httpx.get(f"{_u(reads)}/projects/1/agreement")
    assert answer.status_code == 401
    assert reads.get("/projects/1/agreement").status_code == 200
    bearer = httpx.get(f"{_u(reads)}/projects/1/agreement", headers={"Authorization": "Bearer k3y"})
    assert bearer.status_code == 200


def test_reports(served) -> None:
    hooks, reads, _ = served
    _load(hooks)
    live = reads.get("/projects/1/agreement").json()
    assert (live["judgements"], live["units"], live["annotators"]) == (24, 8, 3)
    assert -1 <= live["alpha"] <= 1 and -1 <= live["ac1"] <= 1
    summary = reads.get("/projects/1/agreement/summary", params={"n_boot": 200}).json()
    assert summary["alpha"] == pytest.approx(live["alpha"], abs=1e-9)
    assert summary["ci_low"] <= summary["alpha"] <= summary["ci_high"]

    sessions = reads.get("/projects/1/agreement/by/session").json()
    assert [r["key"] for r in sessions["data"]] == ["s1", "s2"]
    s1, s2 = sessions["data"]
    assert s1["alpha"] == pytest.approx(1.0)  # everyone agrees on clip 0
    assert s2["alpha"] < s1["alpha"]
    clips = reads.get("/projects/1/agreement/by/clip").json()
    assert clips["count"] == 2
    speakers = reads.get("/projects/1/agreement/by/speaker").json()
    assert {r["key"] for r in speakers["data"]} == {"p01", "p02"}
    labels = reads.get("/projects/1/agreement/by/label").json()
    assert [r["key"] for r in labels["data"]] == list(TAX.emotion.values)
    people = reads.get("/projects/1/agreement/by/annotator", params={"limit": 2}).json()
    assert people["count"] == 3 and len(people["data"]) == 2
    pairs = reads.get("/projects/1/agreement/pairwise").json()
    assert pairs["annotators"] == ["1", "2", "3"]
    assert pairs["alpha"][0][1] == pytest.approx(1.0)
    assert pairs["alpha"][0][2] < 1.0
    confusion = reads.get("/projects/1/agreement/confusion").json()
    assert confusion["labels"] == list(TAX.emotion.values)
    total = sum(map(sum, confusion["matrix"]))
    assert total == pytest.approx(24.0)  # n.. = pairable values
    drift = reads.get("/projects/1/agreement/drift", params={"every": "count", "size": 12})
    assert [w["judgements"] for w in drift.json()["data"]] == [12, 12]
    todo = reads.get("/projects/1/adjudication", params={"threshold": 0.9}).json()
    assert [c["clip"] for c in todo["data"]] == ["s2-c002"]
    assert todo["data"][0]["url"].endswith("/projects/1/data?task=2")
    activity = reads.get("/projects/1/annotators").json()
    assert [(a["annotator"], a["annotations"], a["judgements"]) for a in activity["data"]] == [
        ("1", 2, 16),
        ("2", 2, 16),
        ("3", 2, 16),
    ]
    assert activity["data"][0]["median_seconds_per_task"] == 12.5

    # a deletion is reflected in the live figures at once
    hooks.post("/webhooks/label-studio", json=delete_event([106]))
    after = reads.get("/projects/1/agreement").json()
    assert after["judgements"] == 20
    assert after["alpha"] > live["alpha"]


def test_not_found_lists_what_exists(served) -> None:
    hooks, reads, _ = served
    _load(hooks)
    answer = reads.get("/projects/9/agreement")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "unknown project 9; the store has [1]"
    answer = reads.get("/projects/1/agreement", params={"dimension": "mood"})
    assert answer.status_code == 404
    assert "expected one of ['emotion', 'intensity'" in answer.json()["detail"]
    answer = reads.get("/projects/1/agreement/by/weather")
    assert answer.status_code == 404
    assert (
        "expected one of ['session', 'clip', 'speaker', 'label', 'annotator']"
        in (answer.json()["detail"])
    )


def test_openapi_documents_the_endpoints(served) -> None:
    _, reads, _ = served
    paths = reads.get("/openapi.json").json()["paths"]
    for path in (
        "/webhooks/label-studio",
        "/projects/{project_id}/agreement",
        "/projects/{project_id}/agreement/by/{breakdown}",
        "/projects/{project_id}/adjudication",
        "/projects/{project_id}/reconcile",
    ):
        assert path in paths


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dashboard_in_chromium(served) -> None:
    if not Path("/usr/bin/chromium").exists():
        missing("Chromium is not installed at /usr/bin/chromium (scripts/system-deps.sh)")
    from playwright import sync_api as playwright

    hooks, reads, _ = served
    _load(hooks)
    # no session cookie and no key: to the login form
    login = httpx.get(f"{_u(reads)}/dashboard/1")
    assert (login.status_code, login.headers["location"]) == (303, "/login?next=/dashboard/1")
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{_u(reads)}/dashboard/1?key=k3y")  # an old link: logs in, drops the key
        assert page.url == f"{_u(reads)}/dashboard/1"
        for name in ("dimensions", "pairwise", "breakdowns", "shifts", "drift", "confusion"):
            # (wait_for_function would evaluate a string, which the page's CSP forbids)
            page.wait_for_selector(f"#plot-{name} .main-svg")
            assert page.locator(f"#plot-{name} .main-svg").count() >= 1, name
        # one bar per dimension; values only for those with judgements (emotion, intensity)
        heights = page.evaluate("document.getElementById('plot-dimensions').data[0].y")
        assert len(heights) == len(TAX.dimensions)
        assert [h is not None for h in heights] == [True, True] + [False] * (len(heights) - 2)
        assert page.locator("#plot-dimensions .bars .point").count() >= 2
        assert page.locator("#plot-pairwise .heatmaplayer image, #plot-pairwise .hm").count() >= 1
        rows = page.locator("#adjudication tr").count()
        assert rows == 2  # header + clip 1 (alpha < 0.667)
        assert "emotion alpha (live)" in page.inner_text("body")
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        browser.close()
    assert errors == []


def test_shift_agreement(served) -> None:
    hooks, reads, _ = served
    lines = dialogue(4)
    t = task(1, lines)
    values = {i: {"emotion": "joy"} for i in range(4)}
    one = [
        {
            "start": 2.0,
            "end": 3.0,
            "from": "joy",
            "to": "anger",
            "trigger": "partner-induced",
            "onset": "abrupt",
        }
    ]
    two = [
        {
            "start": 2.4,
            "end": 3.2,
            "from": "joy",
            "to": "anger",
            "trigger": "self-initiated",
            "onset": "abrupt",
        },
        {"start": 6.0, "end": 7.0, "from": "anger", "to": "fear"},
    ]
    for annotation_id, annotator, spans in ((1, 1, one), (2, 2, two), (3, 3, [])):
        answer = hooks.post(
            "/webhooks/label-studio",
            json=annotation_event(TAX, annotation_id, t, annotator, values, shifts=spans),
        )
        assert answer.status_code == 200
    figures = reads.get("/projects/1/agreement/shifts", params={"tolerance": 1.0}).json()
    assert figures["events"] == 3
    # pairs (1,2): 1 matched of 1 + 2 events; (1,3): 0 of 1; (2,3): 0 of 2
    assert figures["matched_pairs"] == 1
    assert figures["f1"] == pytest.approx(2 * 1 / 6)
    assert figures["from_to_agreement"] == 1.0
    assert figures["trigger_agreement"] == 0.0
    (clip,) = figures["clips"]
    assert (clip["annotators"], clip["events"]) == (3, 3)
    assert -1.0 <= figures["unitizing_alpha"] < 1.0
    # a tighter tolerance matches nothing
    tight = reads.get("/projects/1/agreement/shifts", params={"tolerance": 0.1}).json()
    assert tight["matched_pairs"] == 0 and tight["f1"] == 0.0
    assert reads.get("/projects/7/agreement/shifts").status_code == 404


def test_continuous_dimensions_get_icc_and_ccc(served) -> None:
    hooks, reads, _ = served
    lines = dialogue(6)
    t = task(1, lines)
    for annotator in (1, 2, 3):
        values = {i: {"valence": 1 + (i + (annotator == 3)) % 5} for i in range(6)}
        hooks.post(
            "/webhooks/label-studio", json=annotation_event(TAX, annotator, t, annotator, values)
        )
    summary = reads.get(
        "/projects/1/agreement/summary",
        params={"dimension": "valence", "n_boot": 100, "min_overlap": 6},
    ).json()
    assert summary["complete_units"] == 6
    assert summary["icc2"] is not None and summary["icc2k"] is not None
    assert summary["lin_ccc_pairwise_mean"] is not None
    nominal = reads.get("/projects/1/agreement/summary", params={"dimension": "emotion"})
    assert "icc2" not in nominal.json()


def test_items_that_give_no_judgement_are_reported(served) -> None:
    hooks, reads, _ = served
    payload = annotation_event(TAX, 1, task(1, dialogue(2)), 7, {0: {"emotion": "joy"}})
    payload["annotation"]["result"] += [
        {
            "id": "x",
            "from_name": "mood",
            "to_name": "dialogue",
            "type": "choices",
            "value": {"start": "0", "end": "0", "choices": ["meh"]},
        },
        {
            "id": "turn1",
            "from_name": "emotion",
            "to_name": "dialogue",
            "type": "choices",
            "value": {"start": "1", "end": "1", "choices": ["glee"]},
        },
    ]
    answer = hooks.post("/webhooks/label-studio", json=payload)
    assert answer.json() == {"action": "ANNOTATION_CREATED", "accepted": True}
    assert reads.get("/projects/1/skipped").json() == {
        "data": {"unknown control": 1, "unknown label": 1},
        "count": 2,
        "freshness": {"pending": 0, "oldest_age_s": 0.0, "fresh": True},
    }
    cancelled = annotation_event(
        TAX, 2, task(1, dialogue(2)), 8, {0: {"emotion": "joy"}}, was_cancelled=True
    )
    hooks.post("/webhooks/label-studio", json=cancelled)
    assert reads.get("/projects/1/skipped").json()["data"]["cancelled"] == 1


def test_concurrent_events_on_the_same_clips_lose_nothing(served) -> None:
    """8 threads post events for the same 2 clips; every event lands, sums stay exact."""
    from concurrent.futures import ThreadPoolExecutor

    from api import store

    hooks, reads, database_url = served
    tasks = [task(k + 1, dialogue(6, clip=k)) for k in (0, 1)]
    payloads = [
        annotation_event(
            TAX,
            n + 1,
            tasks[n % 2],
            n % 8,
            {i: {"emotion": EMOTIONS[(i + n) % 5], "intensity": 1 + n % 5} for i in range(6)},
        )
        for n in range(64)
    ]
    url = f"{_u(hooks)}/webhooks/label-studio"

    def post(payload: dict) -> int:
        return httpx.post(
            url, json=payload, headers={SECRET_HEADER: "s3cret"}, timeout=60
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, payloads))
    assert codes == [200] * 64
    live = reads.get("/projects/1/agreement").json()
    assert live["judgements"] == 64 * 6
    engine = make_engine(database_url)
    with Session(engine) as db:
        batch = store.recompute_sums(db, 1)
        for dim in ("emotion", "intensity"):
            stored = store.stored_sums(db, 1, dim)
            keys = {
                k
                for k in stored.keys() | batch[dim].keys()
                if abs(stored.get(k, 0)) > 1e-9 or abs(batch[dim].get(k, 0)) > 1e-9
            }
            assert all(abs(stored.get(k, 0) - batch[dim].get(k, 0)) < 1e-6 for k in keys), dim
    engine.dispose()


def test_webhooks_go_through_the_group_commit_and_are_stored_once(served) -> None:
    """16 threads post 48 events, each twice (a repeated delivery): every answer is 200,
    each annotation is stored once, the writer counted every delivery it committed, and
    the inbox is empty once the applier is done."""
    from concurrent.futures import ThreadPoolExecutor

    hooks, reads, _ = served
    tasks = [task(k + 1, dialogue(4, clip=k)) for k in range(3)]
    payloads = [
        annotation_event(
            TAX,
            n + 1,
            tasks[n % 3],
            n % 6,
            {i: {"emotion": EMOTIONS[(i * n) % 5], "intensity": 1 + (n + i) % 5} for i in range(4)},
        )
        for n in range(48)
    ]
    url = f"{_u(hooks)}/webhooks/label-studio"

    def post(payload: dict) -> dict:
        answer = httpx.post(url, json=payload, headers={SECRET_HEADER: "s3cret"}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, payloads + payloads))
    assert answers == [{"action": "ANNOTATION_CREATED", "accepted": True}] * 96
    assert reads.get("/projects/1/agreement").json()["judgements"] == 48 * 4
    rows = reads.get("/projects/1/judgements", params={"limit": 1000}).json()
    assert rows["count"] == 48 * 8  # each annotation once, though delivered twice
    assert sorted({r["annotation_id"] for r in rows["data"]}) == list(range(1, 49))
    health = reads.get("/health").json()
    assert health["ingest"]["events"] == 96
    assert 1 <= health["ingest"]["transactions"] <= 96
    assert health["inbox"]["pending"] == 0  # everything applied
