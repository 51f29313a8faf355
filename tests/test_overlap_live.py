"""Adaptive overlap on a real Label Studio, with the real service and its applier.

A service with ``overlap.enabled`` (lead 2, 2 to 4 annotators) watches a project of two
clips. Annotator accounts (signed up with the invite link, as people do) label through
Label Studio's API with their own tokens, and ask for their next task as the labeling
stream does (``GET /api/projects/{id}/next``):

- both clips start at 2 annotators; the first two agree on one clip and disagree on one
  turn of the other;
- the disagreed clip goes back to the queue (a third annotator is served it), the agreed
  one does not;
- a third who sides with one of them leaves it split by one vote (lead 2 not reached):
  a fourth is served it; with the fourth agreeing it is settled at the maximum and leaves
  the queue, and a fifth annotator is served nothing.

What the service says (``/projects/{id}/overlap``) is checked against Label Studio's own
task records (overlap, annotations, is_labeled) read with the admin token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import (
    Account,
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
)
from schemas.taxonomy import load_taxonomy
from tests.conftest import write_config
from tests.livekit import label as _label
from tests.livekit import wait_for as _wait_for
from tests.payloads import dialogue

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
PASSWORD = "a-long-overlap-password-1"
KEY = "overlap-key"


@pytest.fixture(scope="module")
def keeper_service(
    label_studio: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A service of its own with adaptive overlap on, against the session's Label Studio."""
    folder = tmp_path_factory.mktemp("overlap-live")
    ls = label_studio.label_studio
    config = write_config(
        folder,
        label_studio={
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": f"Adaptive overlap {uuid.uuid4().hex[:6]}",
        },
        service={"webhook_secret": "overlap-secret", "api_key": KEY, "reconcile_seconds": 0},
        overlap={"enabled": True, "min_annotators": 2, "max_annotators": 4, "lead": 2},
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    try:
        yield settings
    finally:
        stack.stop(settings, stack.SERVICE)


def _next(url: str, project_id: int, who: Account) -> int | None:
    """The task Label Studio's stream serves ``who`` next (None: nothing left)."""
    answer = httpx.get(
        f"{url}/api/projects/{project_id}/next",
        headers={"Authorization": f"Token {who.token}"},
        timeout=30,
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def test_a_clip_goes_back_to_the_queue_only_where_annotators_disagree(
    keeper_service: Settings,
) -> None:
    settings = keeper_service
    url = settings.label_studio.url
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    assert project.maximum_annotations == 2  # the policy's minimum, not the config's 3
    ensure_webhook(client, project.id, settings.webhook_url, "overlap-secret")
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    data = [
        {
            "dialogue": dialogue(4, session_id="ov", clip=c),
            "session_id": "ov",
            "clip_id": f"ov-c{c}",
            "audio": "/data/local-files/?d=ov/x.wav",
            "audio_offset": 0.0,
            "title": "Overlap",
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
        httpx.get(
            f"{url}/api/tasks", params={"project": project.id}, headers=admin, timeout=30
        ).json()["tasks"],
        key=lambda t: t["id"],
    )
    split, agreed = tasks
    invite = invite_link(client, url)
    people = [
        ensure_account(
            url, f"overlap-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite
        )
        for k in range(5)
    ]
    same = ["joy", "anger", "neutral", "fear"]
    _label(url, people[0], split, same)
    _label(url, people[1], split, ["joy", "sadness", "neutral", "fear"])  # turn 1 differs
    _label(url, people[0], agreed, same)
    _label(url, people[1], agreed, same)

    with httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}) as svc:
        seen: list[Any] = []

        def decided(annotators: int, target: int) -> dict[str, Any] | None:
            got = svc.get(f"/projects/{project.id}/overlap").json()
            seen[:] = [got, [d["reason"] for d in svc.get("/dead-letters").json()["data"]]]
            rows = {t["task"]: t for t in got.get("tasks", [])}
            row = rows.get(split["id"])
            ok = row and row["annotators"] == annotators and row["target"] == target
            return got if ok and got["pending"] == 0 else None

        got = _wait_for(lambda: decided(2, 3), last=seen, what="2 annotators, target 3")
        rows = {t["task"]: t for t in got["tasks"]}
        assert rows[agreed["id"]]["target"] == 2 and not rows[agreed["id"]]["need_more"]
        assert rows[split["id"]]["need_more"] and rows[split["id"]]["unsettled_units"] == 1
        # Label Studio holds what the service decided
        for task, overlap, labeled in ((split, 3, False), (agreed, 2, True)):
            held = httpx.get(f"{url}/api/tasks/{task['id']}", headers=admin).json()
            assert (held["overlap"], held["is_labeled"]) == (overlap, labeled), (
                task["id"],
                held["overlap"],
                held["is_labeled"],
                held["total_annotations"],
            )
        # the third annotator is served the split clip, never the agreed one
        assert _next(url, project.id, people[2]) == split["id"]
        _label(url, people[2], split, same)  # sides with the first: 2-1, lead 1
        _wait_for(lambda: decided(3, 4), last=seen, what="3 annotators, target 4")
        assert _next(url, project.id, people[3]) == split["id"]
        _label(url, people[3], split, same)  # 3-1: lead 2, and the panel is full
        got = _wait_for(lambda: decided(4, 4), last=seen, what="4 annotators, settled")
        row = {t["task"]: t for t in got["tasks"]}[split["id"]]
        assert not row["need_more"] and row["reason"] in ("agreed", "exhausted")
        assert _next(url, project.id, people[4]) is None  # nothing left for a fifth
        held = httpx.get(f"{url}/api/tasks/{split['id']}", headers=admin).json()
        assert (held["overlap"], held["is_labeled"], held["total_annotations"]) == (4, True, 4)


def test_overlap_endpoint_is_off_unless_enabled(service: Settings) -> None:
    with httpx.Client(base_url=service.service.url) as svc:
        answer = svc.get("/projects/1/overlap", headers={"X-API-Key": service.service.api_key})
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["enabled"] is False and got["tasks"] == [] and "overlap.enabled" in got["reason"]
        assert svc.get("/projects/1/overlap").status_code == 401  # the API key is needed
