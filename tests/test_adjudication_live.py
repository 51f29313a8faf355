"""Adjudication on a real Label Studio, with the real service (verified webhooks) and the
real command line.

Three annotators (accounts signed up with the invite link, labeling with their own
tokens) label two clips: they agree on one and split three ways on one turn of the other.
Then, as a QA lead would:

- ``improv-annotate adjudicate --dry-run --json`` lists the split clip only and sends
  nothing (Label Studio has no adjudication project afterwards);
- ``improv-annotate adjudicate --json`` creates the adjudication project and sends it one
  task: the panel's labels side by side, the split turn marked, the pre-annotation holding
  the unanimous values only; a second run sends nothing more;
- an annotator who is not an adjudicator annotates the task, a webhook forged in the
  adjudicator's name arrives, and the adjudicator decides: only the adjudicator's decision
  counts (``/projects/{id}/adjudicated`` and ``adjudicate --status``), the others are
  counted as ignored or dead letters;
- ``improv-annotate export`` writes ``adjudicated`` on the split clip's turns in JSONL and
  typed Parquet, equal to what the adjudicator gave, and null on the agreed clip.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import (
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    find_project,
    invite_link,
)
from schemas.codec import encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.builders import write_session
from tests.conftest import write_config
from tests.livekit import label as _label
from tests.livekit import run_cli as _cli
from tests.livekit import wait_for as _wait_for
from tests.payloads import dialogue

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
PASSWORD = "a-long-adjudication-password-1"
KEY = "adjudication-key"
SECRET = "adjudication-secret"
PANEL = [
    ["joy", "anger", "neutral", "fear"],
    ["joy", "sadness", "neutral", "fear"],
    ["joy", "fear", "neutral", "fear"],
]
AGREED = ["neutral", "joy", "joy", "sadness"]
DECIDED = ["joy", "sadness", "neutral", "fear"]


@pytest.fixture(scope="module")
def setup(label_studio: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A service of its own (verified webhooks) with an adjudicator named by e-mail."""
    folder = tmp_path_factory.mktemp("adjudication-live")
    judge = f"judge-{uuid.uuid4().hex[:6]}@example.org"
    ls = label_studio.label_studio
    config = write_config(
        folder,
        label_studio={
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": f"Adjudication {uuid.uuid4().hex[:6]}",
        },
        service={
            "webhook_secret": SECRET,
            "api_key": KEY,
            "reconcile_seconds": 0,
            "webhook_mode": "verified",
        },
        adjudication={"thresholds": {"emotion": 0.8}, "adjudicators": [judge]},
        clips={"max_seconds": 4.0},
        importer={"prosody": False},
        media_root=str(label_studio.media_path),  # the folder the test's Label Studio serves
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    try:
        yield settings, config, judge
    finally:
        stack.stop(settings, stack.SERVICE)


def _json(done: subprocess.CompletedProcess) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_split_clip_goes_to_the_adjudicator_and_only_their_decision_is_exported(
    setup: Any, tmp_path: Path
) -> None:
    settings, config, judge_email = setup
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, SECRET)
    data = [
        {
            "dialogue": dialogue(4, session_id="adj", clip=c),
            "session_id": "adj",
            "clip_id": f"adj-c{c}",
            "audio": "/data/local-files/?d=adj/x.wav",
            "audio_offset": 0.0,
            "title": f"Clip {c}",
            "prompt": "two friends, one secret",
            "context": "",
        }
        for c in range(2)
    ]
    answer = httpx.post(
        f"{url}/api/projects/{project.id}/import", json=[{"data": d} for d in data], headers=admin
    )
    assert answer.status_code == 201, answer.text
    tasks = sorted(
        httpx.get(f"{url}/api/tasks", params={"project": project.id}, headers=admin).json()[
            "tasks"
        ],
        key=lambda t: t["id"],
    )
    split, agreed = tasks
    invite = invite_link(client, url)
    people = [
        ensure_account(url, f"adj-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite)
        for k in range(3)
    ]
    judge = ensure_account(url, judge_email, PASSWORD, invite=invite)
    for who, emotions in zip(people, PANEL, strict=True):
        _label(url, who, split, emotions)
        _label(url, who, agreed, AGREED)

    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)
    _wait_for(
        lambda: (
            svc.get(f"/projects/{project.id}/judgements", params={"limit": 1}).json().get("count")
            == 24
        ),
        what="the panel's 24 judgements in the service",
    )
    title = f"{settings.label_studio.project_title} · adjudication"

    # a dry run lists the split clip and sends nothing
    dry = _json(_cli(config, "adjudicate", "--dry-run", "--json", "-p", str(project.id)))
    assert [c["clip"] for c in dry["due"]] == ["adj-c0"]
    assert dry["due"][0]["disagreeing_turns"] == [split["data"]["dialogue"][1]["turn_id"]]
    assert dry["sent"] == [] and find_project(client, title) is None

    sent = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert [s["clip"] for s in sent["sent"]] == ["adj-c0"]
    adj_project = find_project(client, title)
    assert adj_project is not None and sent["adjudication_project"] == adj_project.id
    assert adj_project.maximum_annotations == 1
    held = httpx.get(
        f"{url}/api/tasks", params={"project": adj_project.id, "fields": "all"}, headers=admin
    ).json()["tasks"]
    assert len(held) == 1
    adj_task = held[0]
    assert adj_task["id"] == sent["sent"][0]["adjudication_task"]
    panel = adj_task["data"]["panel"]
    for k, emotions in enumerate(PANEL, start=1):
        assert f"A{k} {emotions[1]}" in panel
    speakers = [line["speaker"] for line in adj_task["data"]["dialogue"]]
    assert [s.startswith("⚠") for s in speakers] == [False, True, False, False]
    predictions = httpx.get(
        f"{url}/api/predictions", params={"task": adj_task["id"]}, headers=admin
    ).json()
    chosen = {
        int(r["value"]["start"]): r["value"]["choices"][0]
        for p in predictions
        for r in p["result"]
        if r.get("from_name") == "emotion"
    }
    assert chosen == {0: "joy", 2: "neutral", 3: "fear"}  # the split turn is left open
    again = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert again["sent"] == [] and again["already_sent"] == 1
    assert (
        len(
            httpx.get(f"{url}/api/tasks", params={"project": adj_project.id}, headers=admin).json()[
                "tasks"
            ]
        )
        == 1
    )

    # someone who is not an adjudicator annotates it; a webhook is forged in the judge's name
    _label(url, people[0], adj_task, ["fear"] * 4)
    forged_values = {i: {"emotion": "anger"} for i in range(4)}
    forged = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": adj_project.id},
        "task": {"id": adj_task["id"], "data": adj_task["data"], "project": adj_project.id},
        "annotation": {
            "id": 10_000_000 + adj_task["id"],
            "task": adj_task["id"],
            "project": adj_project.id,
            "completed_by": judge.id,
            "result": encode_annotation(adj_task["data"]["dialogue"], forged_values, TAX),
            "was_cancelled": False,
            "created_at": "2026-12-04T10:00:00Z",
            "updated_at": "2026-12-04T10:00:00Z",
        },
    }
    hook = httpx.post(
        settings.webhook_url,
        json=forged,
        headers={"X-Improv-Annotate-Secret": SECRET},
        timeout=30,
    )
    assert hook.status_code == 200, hook.text
    decision = _label(url, judge, adj_task, DECIDED)

    def decided() -> dict[str, Any] | None:
        got = svc.get(f"/projects/{project.id}/adjudicated").json()
        return got if got["decided"] == 1 and got["ignored"] else None

    got = _wait_for(decided, what="the adjudicator's decision in the service")
    turns = [line["turn_id"] for line in split["data"]["dialogue"]]
    entry = got["data"][0]
    assert entry["adjudicator"] == str(judge.id)
    assert {t: v["emotion"] for t, v in entry["turns"].items()} == dict(
        zip(turns, DECIDED, strict=True)
    )
    assert got["ignored"] == {"annotation by someone not in adjudication.adjudicators": 1}
    assert got["adjudicators"] == [
        {"configured": judge_email, "user": str(judge.id), "ambiguous": False}
    ]
    letters = svc.get("/dead-letters").json()["data"]
    assert any(str(forged["annotation"]["id"]) in json.dumps(d) for d in letters), letters
    status = _cli(config, "adjudicate", "--status", "-p", str(project.id))
    assert status.returncode == 0 and "1 clips sent, 1 decided" in status.stdout, status.stdout

    # through Label Studio's own API a member posts a newer annotation in the judge's name
    # (Label Studio takes completed_by from the caller), then overwrites the judge's own
    member = {"Authorization": f"Token {people[1].token}"}
    lines = adj_task["data"]["dialogue"]
    angry = encode_annotation(lines, {i: {"emotion": "anger"} for i in range(4)}, TAX)
    posted = httpx.post(
        f"{url}/api/tasks/{adj_task['id']}/annotations",
        json={"result": angry, "completed_by": judge.id},
        headers=member,
    )
    assert posted.status_code == 201 and posted.json()["completed_by"] == judge.id, posted.text
    someone_else = (
        "annotation in an adjudicator's name last saved by someone else (Label Studio's updated_by)"
    )

    def ignored(reason: str, n: int, decided: int) -> dict[str, Any] | None:
        got = svc.get(f"/projects/{project.id}/adjudicated").json()
        return got if got["ignored"].get(reason) == n and got["decided"] == decided else None

    got = _wait_for(lambda: ignored(someone_else, 1, 1), what="the forged annotation refused")
    assert {t: v["emotion"] for t, v in got["data"][0]["turns"].items()} == dict(
        zip(turns, DECIDED, strict=True)
    )
    patched = httpx.patch(
        f"{url}/api/annotations/{decision}", json={"result": angry}, headers=member
    )
    assert patched.status_code == 200, patched.text
    got = _wait_for(lambda: ignored(someone_else, 2, 0), what="the overwritten decision refused")
    assert got["waiting"] == 1
    ours = encode_annotation(lines, {i: {"emotion": e} for i, e in enumerate(DECIDED)}, TAX)
    again = httpx.patch(
        f"{url}/api/annotations/{decision}",
        json={"result": ours},
        headers={"Authorization": f"Token {judge.token}"},
    )
    assert again.status_code == 200, again.text
    _wait_for(lambda: ignored(someone_else, 1, 1), what="the judge's own save taken again")

    # the export carries the decision beside the panel's labels
    out = tmp_path / "export"
    done = _cli(
        config, "export", "-p", str(project.id), "--out", str(out), "--format", "jsonl,parquet"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    by_turn = {r["turn_id"]: r for r in rows}
    for turn, emotion in zip(turns, DECIDED, strict=True):
        assert by_turn[turn]["adjudicated"]["emotion"] == emotion
    assert by_turn[turns[1]]["aggregates"]["emotion"]["majority"] is None
    assert all(r["adjudicated"] is None for r in rows if r["clip_id"] == "adj-c1")
    parquet = {
        r["turn_id"]: r["adjudicated"] for r in pq.read_table(out / "turns.parquet").to_pylist()
    }
    assert parquet[turns[1]]["emotion"] == "sadness"
    assert decision > 0

    # a member swaps two turn ids in the task's data: the judge's next save would put the
    # values on the wrong turns, so it is not taken
    swapped = [dict(line) for line in lines]
    swapped[0]["turn_id"], swapped[1]["turn_id"] = lines[1]["turn_id"], lines[0]["turn_id"]
    edit = httpx.patch(
        f"{url}/api/tasks/{adj_task['id']}",
        json={"data": {**adj_task["data"], "dialogue": swapped}},
        headers=member,
    )
    assert edit.status_code == 200, edit.text
    resaved = httpx.patch(
        f"{url}/api/annotations/{decision}",
        json={"result": ours, "lead_time": 3.0},
        headers={"Authorization": f"Token {judge.token}"},
    )
    assert resaved.status_code == 200, resaved.text
    changed = "adjudication task changed in Label Studio after it was sent"
    got = _wait_for(lambda: ignored(changed, 1, 0), what="the decision on edited data refused")
    assert got["data"][0]["turns"] == {}

    # the adjudication task is deleted in Label Studio: the next send sends the clip again
    gone = httpx.delete(f"{url}/api/tasks/{adj_task['id']}", headers=admin)
    assert gone.status_code == 204, gone.text
    resent = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert resent["resent"] == ["adj-c0"] and [s["clip"] for s in resent["sent"]] == ["adj-c0"]
    listed = httpx.get(
        f"{url}/api/tasks", params={"project": adj_project.id, "fields": "all"}, headers=admin
    ).json()["tasks"]
    # the new task (Label Studio on SQLite may give it the deleted one's id again)
    assert [t["id"] for t in listed] == [resent["sent"][0]["adjudication_task"]]
    assert listed[0]["total_annotations"] == 0
    again = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert again["resent"] == [] and again["sent"] == []
    # the old task's decision went with it, even where the new task has its id again
    after = svc.get(f"/projects/{project.id}/adjudicated").json()
    assert (after["decided"], after["waiting"]) == (0, 1)

    # a member adds a misleading line to the adjudication project's label config, and the
    # judge decides on that screen: the next send puts the config back, the decision does
    # not count, and the clip goes out again as a fresh task
    def current_task() -> dict[str, Any]:
        listed = httpx.get(
            f"{url}/api/tasks", params={"project": adj_project.id, "fields": "all"}, headers=admin
        ).json()["tasks"]
        assert len(listed) == 1, listed
        return listed[0]

    made = httpx.get(f"{url}/api/projects/{adj_project.id}", headers=admin).json()["label_config"]
    misleading = made.replace("<View>", '<View><Header value="Pick joy everywhere"/>', 1)
    assert misleading != made
    changed = httpx.patch(
        f"{url}/api/projects/{adj_project.id}", json={"label_config": misleading}, headers=member
    )
    assert changed.status_code == 200, changed.text
    misled = current_task()
    _label(url, judge, misled, ["joy"] * 4)
    _wait_for(
        lambda: svc.get(f"/projects/{project.id}/adjudicated").json()["decided"] == 1,
        what="the decision on the changed screen stored",
    )
    guarded = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert guarded["tampered"] == [f"project {adj_project.id}: label_config changed"]
    assert guarded["resent"] == ["adj-c0"]
    restored = httpx.get(f"{url}/api/projects/{adj_project.id}", headers=admin).json()
    assert restored["label_config"].strip() == made.strip()
    fresh = current_task()
    assert fresh["total_annotations"] == 0
    after = svc.get(f"/projects/{project.id}/adjudicated").json()
    assert (after["decided"], after["waiting"]) == (0, 1)

    # a member adds a prediction that fills the split turn: the task is sent again too
    planted = httpx.post(
        f"{url}/api/predictions",
        json={
            "task": fresh["id"],
            "model_version": "helpful",
            "result": encode_annotation(
                fresh["data"]["dialogue"], {i: {"emotion": "joy"} for i in range(4)}, TAX
            ),
        },
        headers=member,
    )
    assert planted.status_code == 201, planted.text
    guarded = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert guarded["tampered"] == [f"task {fresh['id']}: predictions changed"]
    assert guarded["resent"] == ["adj-c0"]
    # a member gives the project data credentials (Label Studio then rewrites the task
    # data's URLs through a proxy): put back at the next send, and the clip sent again; a
    # change to the whole project is not counted against the clip's re-sends (deleted,
    # prediction: 2 so far)
    creds = httpx.patch(
        f"{url}/api/projects/{adj_project.id}",
        json={"task_data_login": "someone", "task_data_password": "secret"},
        headers=member,
    )
    assert creds.status_code == 200, creds.text
    guarded = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert guarded["tampered"] == [
        f"project {adj_project.id}: task_data_login changed",
        f"project {adj_project.id}: task_data_password changed",
    ]
    restored = httpx.get(f"{url}/api/projects/{adj_project.id}", headers=admin).json()
    assert not restored["task_data_login"] and not restored["task_data_password"]
    assert guarded["resent"] == ["adj-c0"] and guarded["held"] == []
    assert [s["clip"] for s in guarded["sent"]] == ["adj-c0"]

    # the judge decides; a member saves the judge's annotation again, unchanged (Label
    # Studio records the member as its last saver, as starring it or pressing Update
    # does): the decision stands, and the next send finds nothing
    def decide() -> tuple[dict[str, Any], int]:
        task = current_task()
        _label(url, judge, task, DECIDED)
        _wait_for(
            lambda: svc.get(f"/projects/{project.id}/adjudicated").json()["decided"] == 1,
            what="the judge's decision",
        )
        return task, _annotation_of(url, admin, task["id"])

    final, mine = decide()
    held_result = httpx.get(f"{url}/api/annotations/{mine}", headers=admin).json()["result"]
    noop = httpx.patch(
        f"{url}/api/annotations/{mine}", json={"result": held_result}, headers=member
    )
    assert noop.status_code == 200, noop.text
    assert noop.json()["updated_by"] == people[1].id, noop.json()
    pulled = svc.post(f"/projects/{adj_project.id}/reconcile")  # the save surely stored
    assert pulled.status_code == 200, pulled.text
    assert svc.get(f"/projects/{project.id}/adjudicated").json()["decided"] == 1
    quiet = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert quiet["tampered"] == [] and quiet["resent"] == [], quiet

    # the member changes the values: the decision no longer counts, and the next send
    # finds the task saved over and sends the clip again (a third re-send)
    def overwritten(annotation: int, body: dict[str, Any]) -> dict[str, Any]:
        """The member's PATCH of the decision, the decision refused, then a send."""
        answer = httpx.patch(f"{url}/api/annotations/{annotation}", json=body, headers=member)
        assert answer.status_code == 200, answer.text
        for key, value in body.items():
            assert key == "result" or answer.json()[key] == value, answer.json()
        _wait_for(
            lambda: svc.get(f"/projects/{project.id}/adjudicated").json()["decided"] == 0,
            what=f"the decision refused after {sorted(body)}",
        )
        return _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))

    guarded = overwritten(mine, {"result": angry})
    assert guarded["tampered"] == [
        f"task {final['id']}: annotation {mine} in user {judge.id}'s name changed by "
        f"user {people[1].id}"
    ]
    assert guarded["resent"] == ["adj-c0"] and guarded["held"] == []

    # the judge decides again; the member gives the annotation to themselves (Label Studio
    # lets completed_by be changed): nobody's decision now; sent again a fourth time,
    # past adjudication.max_resends (3): held for a person instead
    final, mine = decide()
    guarded = overwritten(mine, {"completed_by": people[1].id})
    assert guarded["tampered"] == [
        f"task {final['id']}: annotation {mine} saved by user {judge.id}, since given to "
        f"user {people[1].id}"
    ]
    assert guarded["resent"] == ["adj-c0"] and guarded["sent"] == []
    assert guarded["held"] == [{"clip": "adj-c0", "resends": 4}]
    quiet = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert quiet["tampered"] == [] and quiet["resent"] == [] and quiet["sent"] == []
    assert quiet["held"] == [{"clip": "adj-c0", "resends": 4}]
    assert svc.get(f"/projects/{project.id}/adjudicated").json()["held"] == {"adj-c0": 4}
    shown = _cli(config, "adjudicate", "--status", "-p", str(project.id))
    assert shown.returncode == 0 and "held after too many re-sends: adj-c0" in shown.stdout
    released = _cli(config, "adjudicate", "--release", "adj-c0", "-p", str(project.id))
    assert released.returncode == 0 and "released: adj-c0" in released.stdout, released.stdout
    refused = _cli(config, "adjudicate", "--release", "adj-c0", "-p", str(project.id))
    assert refused.returncode != 0 and "not held" in refused.stdout + refused.stderr
    nothing = _cli(config, "adjudicate", "--release-all", "-p", str(project.id))
    assert nothing.returncode == 0 and "no clip was held" in nothing.stdout, nothing.stdout
    back = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert [s["clip"] for s in back["sent"]] == ["adj-c0"] and back["held"] == []

    # a member changes the label config and puts it back between two sends: the project
    # is as made, but Label Studio reported the change (PROJECT_UPDATED), and the send says
    # so; the clip, undecided since, is not sent again
    flipped = httpx.patch(
        f"{url}/api/projects/{adj_project.id}", json={"label_config": misleading}, headers=member
    )
    assert flipped.status_code == 200, flipped.text
    unflipped = httpx.patch(
        f"{url}/api/projects/{adj_project.id}", json={"label_config": made}, headers=member
    )
    assert unflipped.status_code == 200, unflipped.text
    guarded = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert guarded["tampered"] == [
        f"project {adj_project.id}: label_config changed and put back since the last send"
    ]
    assert guarded["resent"] == []
    quiet = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert quiet["tampered"] == [] and quiet["resent"] == []


@pytest.fixture(scope="module")
def auto_service(label_studio: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A service that sends clips to adjudication by itself (``adjudication.auto``)."""
    folder = tmp_path_factory.mktemp("adjudication-auto")
    ls = label_studio.label_studio
    config = write_config(
        folder,
        label_studio={
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": f"Auto adjudication {uuid.uuid4().hex[:6]}",
            "maximum_annotations": 3,
        },
        service={"webhook_secret": SECRET, "api_key": KEY, "reconcile_seconds": 0},
        adjudication={"thresholds": {"emotion": 0.8}, "auto": True, "every_seconds": 1},
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    try:
        yield settings
    finally:
        stack.stop(settings, stack.SERVICE)


def test_the_service_sends_a_split_clip_once_its_panel_is_complete(auto_service: Any) -> None:
    """``adjudication.auto``: with Label Studio's fixed overlap of 3, a clip two annotators
    split is queued but not sent; the third annotation completes the panel and the leading
    applier sends it, once."""
    settings = auto_service
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, SECRET)
    data = {
        "dialogue": dialogue(4, session_id="auto", clip=0),
        "session_id": "auto",
        "clip_id": "auto-c0",
        "audio": "/data/local-files/?d=auto/x.wav",
        "audio_offset": 0.0,
        "title": "Clip",
        "prompt": "a secret",
        "context": "",
    }
    answer = httpx.post(
        f"{url}/api/projects/{project.id}/import", json=[{"data": data}], headers=admin
    )
    assert answer.status_code == 201, answer.text
    task = httpx.get(f"{url}/api/tasks", params={"project": project.id}, headers=admin).json()[
        "tasks"
    ][0]
    invite = invite_link(client, url)
    people = [
        ensure_account(url, f"auto-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite)
        for k in range(3)
    ]
    title = f"{settings.label_studio.project_title} · adjudication"
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)
    _label(url, people[0], task, PANEL[0])
    _label(url, people[1], task, PANEL[1])
    _wait_for(
        lambda: (
            svc.get(f"/projects/{project.id}/judgements", params={"limit": 1}).json().get("count")
            == 8
        ),
        what="two annotations in the service",
    )
    # split and below the threshold, but the panel (3) is not complete: it waits
    queued = svc.post(f"/projects/{project.id}/adjudication/send", params={"dry_run": True})
    assert [c["clip"] for c in queued.json()["due"]] == ["auto-c0"]
    time.sleep(3)  # three rounds of the automatic sender
    assert find_project(client, title) is None
    _label(url, people[2], task, PANEL[2])  # the panel is complete, split three ways
    got = _wait_for(
        lambda: (svc.get(f"/projects/{project.id}/adjudicated").json() or {}).get("sent"),
        what="the automatic sending",
    )
    assert got == 1
    adj_project = find_project(client, title)
    assert adj_project is not None
    held = httpx.get(f"{url}/api/tasks", params={"project": adj_project.id}, headers=admin).json()[
        "tasks"
    ]
    assert [t["data"]["clip_id"] for t in held] == ["auto-c0"]
    time.sleep(3)  # later rounds send nothing more
    assert (
        len(
            httpx.get(f"{url}/api/tasks", params={"project": adj_project.id}, headers=admin).json()[
                "tasks"
            ]
        )
        == 1
    )


def test_gold_clips_go_to_the_expert_blind_and_annotators_are_scored_against_the_answer(
    setup: Any, tmp_path: Path
) -> None:
    """``import --gold-share 1`` marks every clip of a session gold; ``adjudicate`` sends a
    gold clip to the expert once its panel is complete (not before: members can open the
    adjudication project), without the panel's labels and without saying it is gold; the
    annotators' scorecard then scores each annotator against the expert's answer."""
    settings, config, judge_email = setup
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    folder = write_session(tmp_path / "scene-b", n_turns=8, rng=np.random.default_rng(5))
    imported = _json(_cli(config, "import", str(folder), "--gold-share", "1", "--json"))
    client = connect(settings)
    project = find_project(client, settings.label_studio.project_title)
    mine = [
        t
        for t in httpx.get(
            f"{url}/api/tasks", params={"project": project.id, "fields": "all"}, headers=admin
        ).json()["tasks"]
        if t["data"]["session_id"] != "adj"
    ]
    session_id = mine[0]["data"]["session_id"]
    assert len(mine) > 1 and imported["gold_clips"] == {session_id: len(mine)}
    # nothing in Label Studio says which clips are gold
    assert not any("gold" in json.dumps(t["data"]).lower() for t in mine)

    # nothing goes to the adjudication project, which every member can open, while the
    # panel is still labeling: no gold clip is due before anyone labeled it
    dry = _json(_cli(config, "adjudicate", "--dry-run", "--json", "-p", str(project.id)))
    assert [c["clip"] for c in dry["due"] if c["gold"]] == []

    # the panel of three labels the first gold clip; then it goes to the expert, blind
    target = min(mine, key=lambda t: t["id"])
    n = len(target["data"]["dialogue"])
    answer = [TAX.emotion.values[i % 3] for i in range(n)]
    off = [*answer[:-1], "fear" if answer[-1] != "fear" else "joy"]
    invite = invite_link(client, url)
    close, far, other = (
        ensure_account(url, f"gold-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite)
        for k in range(3)
    )
    _label(url, close, target, answer)
    _label(url, far, target, off)
    _label(url, other, target, answer)
    clip = target["data"]["clip_id"]

    def due() -> list[str] | None:
        got = _json(_cli(config, "adjudicate", "--dry-run", "--json", "-p", str(project.id)))
        gold = [c["clip"] for c in got["due"] if c["gold"]]
        return gold or None

    assert _wait_for(due, what="the gold clip due once its panel is complete") == [clip]
    sent = _json(_cli(config, "adjudicate", "--json", "-p", str(project.id)))
    assert clip in {s["clip"] for s in sent["sent"]}
    title = f"{settings.label_studio.project_title} · adjudication"
    adj_project = find_project(client, title)
    held = {
        t["data"]["clip_id"]: t
        for t in httpx.get(
            f"{url}/api/tasks", params={"project": adj_project.id, "fields": "all"}, headers=admin
        ).json()["tasks"]
    }
    assert "A1" not in held[clip]["data"]["panel"]
    assert "gold" not in json.dumps(held[clip]["data"]).lower()
    judge = ensure_account(url, judge_email, PASSWORD, invite=invite)
    _label(url, judge, held[clip], answer)
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)
    # the judge may have signed up after the last send: --status looks them up
    _wait_for(
        lambda: (
            _json(_cli(config, "adjudicate", "--status", "--json", "-p", str(project.id)))[
                "adjudicators"
            ][0]["user"]
            == str(judge.id)
        ),
        what="the adjudicator's account",
    )

    def scored() -> dict[str, Any] | None:
        card = svc.get(f"/projects/{project.id}/scorecards/annotators").json()
        rows = {r["annotator"]: r for r in card.get("annotators", [])}
        ready = card.get("gold", {}).get("expert", 0) >= n and {str(close.id), str(far.id)} <= set(
            rows
        )
        return rows if ready else None

    rows = _wait_for(scored, what="the expert's answer in the annotators' scorecard")
    assert rows[str(close.id)]["vs_gold"]["units"] == n
    assert rows[str(close.id)]["vs_gold"]["agreement"] == 1.0
    assert rows[str(far.id)]["vs_gold"]["agreement"] == pytest.approx((n - 1) / n)


def test_hidden_repeats_give_each_annotator_agreement_with_themselves(
    setup: Any, tmp_path: Path
) -> None:
    """``import --repeat-share 1`` pushes a copy of every clip after the session's clips,
    under ids of the ordinary form, with nothing in Label Studio saying which is which; an
    annotator who labels a clip and its copy gets their agreement with themselves, and the
    copy's judgements count in no figure of the project."""
    settings, config, _ = setup
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    folder = write_session(tmp_path / "scene-r", n_turns=8, rng=np.random.default_rng(9))
    imported = _json(_cli(config, "import", str(folder), "--repeat-share", "1", "--json"))
    client = connect(settings)
    project = find_project(client, settings.label_studio.project_title)
    mine = sorted(
        (
            t
            for t in httpx.get(
                f"{url}/api/tasks",
                params={"project": project.id, "fields": "all", "page_size": 1000},
                headers=admin,
            ).json()["tasks"]
            if t["data"]["session_id"] == "scene-r"
        ),
        key=lambda t: t["id"],
    )
    assert len(mine) % 2 == 0 and imported["repeat_clips"] == {"scene-r": len(mine) // 2}
    originals, copies = mine[: len(mine) // 2], mine[len(mine) // 2 :]  # the copies come later
    assert not any("repeat" in json.dumps(t["data"]).lower() for t in mine)
    ids = [t["data"]["clip_id"] for t in mine]
    assert ids == [f"scene-r-c{k:03d}" for k in range(len(mine))]  # one ordinary sequence
    # every clip is "clip K of N" with N counting the copies, and no two share a media URL
    titles = [t["data"]["title"] for t in mine]
    assert all(f"clip {k + 1} of {len(mine)}" in title for k, title in enumerate(titles)), titles
    assert len({t["data"]["audio"] for t in mine}) == len(mine)
    played = httpx.get(f"{url}{copies[0]['data']['audio']}", headers=admin)
    assert played.status_code == 200 and played.content[:4] == b"RIFF"
    # a re-import makes no more copies
    again = _json(_cli(config, "import", str(folder), "--repeat-share", "1", "--json"))
    assert again["repeat_clips"] == imported["repeat_clips"]
    count = httpx.get(
        f"{url}/api/tasks", params={"project": project.id, "page_size": 1000}, headers=admin
    ).json()["tasks"]
    assert sum(t["data"]["session_id"] == "scene-r" for t in count) == len(mine)

    original = originals[0]
    copy = next(
        c
        for c in copies
        if c["data"]["dialogue"][0]["text"] == original["data"]["dialogue"][0]["text"]
    )
    n = len(original["data"]["dialogue"])
    first = [TAX.emotion.values[i % 4] for i in range(n)]
    second = [*first[:-1], "fear" if first[-1] != "fear" else "joy"]
    invite = invite_link(client, url)
    who = ensure_account(url, f"rep-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite)
    _label(url, who, original, first)
    _label(url, who, copy, second)
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)

    def compared() -> dict[str, Any] | None:
        card = svc.get(f"/projects/{project.id}/scorecards/annotators").json()
        row = {r["annotator"]: r for r in card.get("annotators", [])}.get(str(who.id))
        return row if row and row["self"]["units"] else None

    row = _wait_for(compared, what="the annotator's second pass in the scorecard")
    assert row["self"]["units"] == n
    assert row["self"]["agreement"] == pytest.approx((n - 1) / n)
    # the second pass is not a judgement of the project
    judged = svc.get(f"/projects/{project.id}/judgements", params={"limit": 1000}).json()["data"]
    copy_turns = {line["turn_id"] for line in copy["data"]["dialogue"]}
    assert not copy_turns & {j["turn_id"] for j in judged}
    assert sum(j["annotator"] == str(who.id) for j in judged) == n

    # a member gives the copy the original's clip_id in Label Studio, and the annotator
    # saves their second pass again: it is still a second pass (known by its task)
    disguised = {**copy["data"], "clip_id": original["data"]["clip_id"]}
    edit = httpx.patch(f"{url}/api/tasks/{copy['id']}", json={"data": disguised}, headers=admin)
    assert edit.status_code == 200, edit.text
    again_second = [*second[:-2], "sadness" if second[-2] != "sadness" else "joy", second[-1]]
    redo = httpx.patch(
        f"{url}/api/annotations/{_annotation_of(url, admin, copy['id'])}",
        json={"result": encode_annotation(copy["data"]["dialogue"], _values(again_second), TAX)},
        headers={"Authorization": f"Token {who.token}"},
    )
    assert redo.status_code == 200, redo.text

    def recompared() -> dict[str, Any] | None:
        got = compared()
        return got if got and got["self"]["agreement"] == pytest.approx((n - 2) / n) else None

    _wait_for(recompared, what="the edited second pass compared again")
    judged = svc.get(f"/projects/{project.id}/judgements", params={"limit": 1000}).json()["data"]
    assert sum(j["annotator"] == str(who.id) for j in judged) == n
    assert not copy_turns & {j["turn_id"] for j in judged}


def test_an_imported_task_edited_in_label_studio_is_read_as_imported(
    setup: Any, tmp_path: Path
) -> None:
    """The import pins every task it pushes. A member swaps the first two turn ids of one
    task and renames its clip in Label Studio; an annotator labels the lines they read:
    the store files each value under the turn id the import gave that line, in the clip
    imported, and the service lists the task as changed. A task nobody edited is not."""
    settings, config, _ = setup
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    folder = write_session(tmp_path / "scene-p", n_turns=8, rng=np.random.default_rng(4))
    _json(_cli(config, "import", str(folder), "--json"))
    client = connect(settings)
    project = find_project(client, settings.label_studio.project_title)
    mine = sorted(
        (
            t
            for t in httpx.get(
                f"{url}/api/tasks",
                params={"project": project.id, "fields": "all", "page_size": 1000},
                headers=admin,
            ).json()["tasks"]
            if t["data"]["session_id"] == "scene-p"
        ),
        key=lambda t: t["id"],
    )
    edited = next(t for t in mine if len(t["data"]["dialogue"]) >= 2)
    plain = next(t for t in mine if t["id"] != edited["id"])
    lines = edited["data"]["dialogue"]
    swapped = [dict(line) for line in lines]
    swapped[0]["turn_id"], swapped[1]["turn_id"] = lines[1]["turn_id"], lines[0]["turn_id"]
    changed = {**edited["data"], "dialogue": swapped, "clip_id": plain["data"]["clip_id"]}
    patch = httpx.patch(f"{url}/api/tasks/{edited['id']}", json={"data": changed}, headers=admin)
    assert patch.status_code == 200, patch.text

    invite = invite_link(client, url)
    who = ensure_account(url, f"pin-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite)
    seen = {**edited, "data": changed}  # the task as the annotator gets it
    emotions = [TAX.emotion.values[i % 5] for i in range(len(lines))]
    _label(url, who, seen, emotions)
    _label(url, who, plain, ["neutral"] * len(plain["data"]["dialogue"]))
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)

    def judged() -> dict[str, str] | None:
        rows = svc.get(
            f"/projects/{project.id}/judgements", params={"dimension": "emotion", "limit": 1000}
        ).json()["data"]
        got = {j["turn_id"]: j["value"] for j in rows if j["annotator"] == str(who.id)}
        wanted = len(lines) + len(plain["data"]["dialogue"])
        return got if len(got) == wanted else None

    got = _wait_for(judged, what="the annotator's judgements on both tasks")
    # line i keeps its text: its value belongs to the turn id the import gave line i
    assert {line["turn_id"]: got[line["turn_id"]] for line in lines} == {
        line["turn_id"]: e for line, e in zip(lines, emotions, strict=True)
    }
    listed = svc.get(f"/projects/{project.id}/changed-tasks").json()
    ours = {t["id"] for t in mine}  # (the other tests here edit tasks of their own)
    assert [(c["task"], c["clip"]) for c in listed["data"] if c["task"] in ours] == [
        (edited["id"], edited["data"]["clip_id"])
    ]

    # the edit kept the content hash, so it looks like the clip as imported; importing the
    # session again finds the whole data differs, and puts it back with its pre-annotation
    predictions = httpx.get(
        f"{url}/api/predictions", params={"task": edited["id"]}, headers=admin
    ).json()
    again = _json(_cli(config, "import", str(folder), "--json"))
    assert again["sessions"][0]["tasks"] == {
        "created": 0,
        "existing": len(mine) - 1,
        "updated": 1,
    }, again
    back = httpx.get(f"{url}/api/tasks/{edited['id']}", headers=admin).json()
    assert back["data"] == edited["data"]
    renewed = httpx.get(
        f"{url}/api/predictions", params={"task": edited["id"]}, headers=admin
    ).json()
    assert [p["result"] for p in renewed] == [p["result"] for p in predictions]
    quiet = _json(_cli(config, "import", str(folder), "--json"))
    assert quiet["sessions"][0]["tasks"] == {"created": 0, "existing": len(mine), "updated": 0}


def _values(emotions: list[str]) -> dict[int, dict[str, str]]:
    return {i: {"emotion": e} for i, e in enumerate(emotions)}


def _annotation_of(url: str, headers: dict[str, str], task_id: int) -> int:
    listed = httpx.get(f"{url}/api/tasks/{task_id}/annotations", headers=headers).json()
    assert len(listed) == 1, listed
    return int(listed[0]["id"])
