"""Webhooks missed: a pull from the real Label Studio brings the store level with it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio

from annotate.config import Settings
from annotate.labelstudio import (
    SECRET_HEADER,
    connect,
    ensure_account,
    ensure_project,
    invite_link,
    iter_tasks,
    session_pusher,
)
from annotate.simulate import simulate_values
from importers import import_sessions, load_session
from schemas.codec import encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.integration
TAX = load_taxonomy()


def _member_project(
    label_studio: Settings,
    tmp_path: Path,
    name: str,
    *,
    reconcile_seconds: float = 0,
    webhook: bool = False,
    pins: bool = False,
) -> tuple[Settings, Path, LabelStudio, Any, Any]:
    """A project of its own (``name``, with a unique suffix) holding the example sessions,
    and an invited member: ``(settings, config, client, project, member)``. ``webhook``:
    the service's webhook registered first; ``pins``: the import pins its tasks in the
    store at ``tmp_path/store.db``."""
    import uuid

    from annotate.cli_import import pin_keeper
    from annotate.config import load_settings, with_local_secrets
    from annotate.labelstudio import ensure_webhook
    from tests.conftest import write_config

    secret = f"s-{name.lower().replace(' ', '-')}"
    config = write_config(
        tmp_path,
        label_studio={
            "url": label_studio.label_studio.url,
            "token": label_studio.label_studio.token,
            "password": label_studio.label_studio.password,
            "project_title": f"{name} {uuid.uuid4().hex[:6]}",
        },
        service={
            "reconcile_seconds": reconcile_seconds,
            "webhook_secret": secret,
            "api_key": "k",
        },
        media_root=str(label_studio.media_path),
    )
    own = with_local_secrets(load_settings(config))
    client = connect(own)
    project = ensure_project(client, own, TAX)
    if webhook:
        assert ensure_webhook(client, project.id, own.webhook_url, secret) == ["missing"]
        assert ensure_webhook(client, project.id, own.webhook_url, secret) == []
    keep = pin_keeper(f"sqlite:///{tmp_path / 'store.db'}") if pins else None
    push = session_pusher(client, project.id, own.media_path, drop_intended=True, keep_pins=keep)
    import_sessions(
        EXAMPLE, media_root=own.media_path, taxonomy=TAX, max_seconds=own.clips.max_seconds,
        push=push,
    )  # fmt: skip
    url = own.label_studio.url
    member = ensure_account(
        url, f"{secret}-{uuid.uuid4().hex[:4]}@example.org", f"a-long-{secret}-password-1",
        invite=invite_link(client, url),
    )  # fmt: skip
    return own, config, client, project, member


def test_pull_adds_what_webhooks_missed_and_records_deletions(
    label_studio: Settings, service: Settings
) -> None:
    # a project with NO webhook: the service hears nothing of its annotations
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Missed webhooks"}
            )
        }
    )
    client = connect(settings)
    project = ensure_project(client, settings, TAX)

    push = session_pusher(client, project.id, settings.media_path, drop_intended=True)

    import_sessions(
        EXAMPLE,
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=settings.clips.max_seconds,
        push=push,
    )
    intended = {i.turn: i.emotion for i in load_session(EXAMPLE).intended}
    tasks = list(iter_tasks(client, project.id))
    made = []
    for k in (1, 2):
        account = ensure_account(
            settings.label_studio.url,
            f"rc-{k}@example.org",
            "a-long-test-password-2",
            invite=invite_link(client, settings.label_studio.url),
        )
        as_user = LabelStudio(base_url=settings.label_studio.url, api_key=account.token)
        for t in tasks:
            values, shifts = simulate_values(
                t.data["dialogue"], intended, TAX, np.random.default_rng([k, t.id])
            )
            result = encode_annotation(t.data["dialogue"], values, TAX, shifts)
            made.append(as_user.annotations.create(id=t.id, result=result))
    n_turns = sum(len(t.data["dialogue"]) for t in tasks)
    svc = httpx.Client(
        base_url=service.service.url,
        timeout=120,
        headers={"X-API-Key": service.service.api_key or ""},
    )

    def emotion_count() -> int:
        answer = svc.get(
            f"/projects/{project.id}/judgements", params={"dimension": "emotion", "limit": 1}
        )
        return answer.json()["count"] if answer.status_code == 200 else 0

    assert emotion_count() == 0  # nothing arrived
    report = svc.post(f"/projects/{project.id}/reconcile").json()
    assert report["tasks"] == len(tasks)
    assert report["annotations"] == len(made)
    assert report["stored"] == 2 * n_turns * len(TAX.dimensions)
    assert emotion_count() == 2 * n_turns
    again = svc.post(f"/projects/{project.id}/reconcile", params={"full": "true"}).json()
    assert again["stored"] == 0 and again["unchanged"] == len(made)  # idempotent
    assert emotion_count() == 2 * n_turns

    # an annotation deleted in Label Studio is recorded as deleted by the next pull
    gone = made[0]
    client.annotations.delete(id=gone.id)
    deleted = svc.post(f"/projects/{project.id}/reconcile", params={"full": "true"}).json()
    assert deleted["deleted_annotations"] == 1
    gone_turns = len(next(t for t in tasks if t.id == gone.task).data["dialogue"])
    assert emotion_count() == 2 * n_turns - gone_turns
    live = svc.get(f"/projects/{project.id}/agreement").json()
    assert live["judgements"] == 2 * n_turns - gone_turns
    svc.close()


def test_periodic_pull_runs_without_being_asked(label_studio: Settings, tmp_path) -> None:
    """A service with service.reconcile_seconds set pulls on its own."""
    from annotate import stack
    from annotate.config import load_settings, with_local_secrets
    from tests.conftest import write_config

    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Missed webhooks"}
            )
        }
    )
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    expected = sum(len(a) for t in iter_tasks(client, project.id) for a in [t.annotations or []])
    assert expected > 0  # the annotations the test above made, no webhook registered
    config = write_config(
        tmp_path,
        label_studio={
            "url": settings.label_studio.url,
            "token": settings.label_studio.token,
            "password": settings.label_studio.password,
            "project_title": "Missed webhooks",
        },
        service={"reconcile_seconds": 1, "webhook_secret": "s", "api_key": "k"},
    )
    own = with_local_secrets(load_settings(config))
    stack.start_service(own, config)
    try:
        with httpx.Client(base_url=own.service.url, headers={"X-API-Key": "k"}) as svc:

            def stored() -> int:
                answer = svc.get(f"/projects/{project.id}/annotators")
                if answer.status_code != 200:
                    return 0
                return sum(a["annotations"] for a in answer.json()["data"])

            deadline = time.monotonic() + 60
            while stored() < expected and time.monotonic() < deadline:
                time.sleep(0.5)
            assert stored() == expected
    finally:
        stack.stop(own, stack.SERVICE)


def test_a_webhook_a_member_switched_off_or_deleted_is_put_back(
    label_studio: Settings, tmp_path
) -> None:
    """A member switches the service's webhook off and labels a task (Label Studio
    delivers nothing), then deletes the webhook and labels another: each time the
    periodic pull finds the webhook changed, puts it back, pulls the project in full (the
    annotation reaches the store) and ``/health`` says what was wrong."""
    from annotate import stack
    from tests.livekit import label, wait_for

    own, config, client, project, member = _member_project(
        label_studio, tmp_path, "Guarded webhook", reconcile_seconds=1, webhook=True
    )
    tasks = [{"id": t.id, "data": t.data} for t in iter_tasks(client, project.id)]
    url = own.label_studio.url
    as_member = {"Authorization": f"Token {member.token}"}

    def ours() -> list[dict]:
        listed = httpx.get(
            f"{url}/api/webhooks", params={"project": project.id}, headers=as_member
        ).json()
        return [h for h in listed if h["url"] == own.webhook_url]

    stack.start_service(own, config)
    try:
        with httpx.Client(base_url=own.service.url, headers={"X-API-Key": "k"}) as svc:

            def hook_state() -> dict:
                return svc.get("/health").json().get("webhooks", {}).get(str(project.id)) or {}

            def stored(annotator: int) -> int:
                answer = svc.get(f"/projects/{project.id}/annotators")
                rows = answer.json()["data"] if answer.status_code == 200 else []
                return sum(a["annotations"] for a in rows if a["annotator"] == str(annotator))

            wait_for(lambda: hook_state().get("checked_at"), what="a first check")
            assert hook_state()["problem"] is None

            (hook,) = ours()
            off = httpx.patch(
                f"{url}/api/webhooks/{hook['id']}", json={"is_active": False}, headers=as_member
            )
            assert off.status_code == 200, off.text
            label(url, member, tasks[0], ["joy"] * len(tasks[0]["data"]["dialogue"]))
            seen: list[dict] = []

            def repaired(problem: str) -> bool:
                seen.append(hook_state())
                return problem in (seen[-1].get("problem") or "")

            # measured on 1.23.2: a PATCH of is_active alone also empties the actions
            wait_for(lambda: repaired("switched off"), what="the repair", last=seen)
            assert [h["is_active"] for h in ours()] == [True]
            wait_for(lambda: stored(member.id) == 1, what="the missed annotation pulled")

            gone = httpx.delete(f"{url}/api/webhooks/{hook['id']}", headers=as_member)
            assert gone.status_code == 204, gone.text
            label(url, member, tasks[1], ["fear"] * len(tasks[1]["data"]["dialogue"]))
            wait_for(lambda: repaired("missing"), what="the webhook remade", last=seen)
            (again,) = ours()
            assert again["is_active"] and again["headers"].get(SECRET_HEADER) == "s-guarded-webhook"
            wait_for(lambda: stored(member.id) == 2, what="the second missed annotation")
    finally:
        stack.stop(own, stack.SERVICE)


def test_a_webhook_switched_off_and_on_between_rounds_brings_a_full_pull(
    label_studio: Settings, tmp_path
) -> None:
    """A member switches the service's webhook off, deletes an annotation (Label Studio
    delivers nothing), and switches the webhook back on exactly as it was, all between
    two rounds of the periodic pull. The next round finds the webhook as registered but
    changed since (Label Studio's ``updated_at`` moved) and says so, the deletion is in
    the store, and the round after is quiet."""
    from types import SimpleNamespace

    from sqlmodel import Session, select

    from api import sync
    from api.db import init_db, make_engine
    from api.models import Annotation, SyncState
    from tests.livekit import label

    own, _, client, project, member = _member_project(
        label_studio, tmp_path, "Flicked webhook", webhook=True
    )
    first = next(iter(iter_tasks(client, project.id)))
    url = own.label_studio.url
    as_member = {"Authorization": f"Token {member.token}"}
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    init_db(engine)
    state = SimpleNamespace(settings=own, engine=engine, writer=engine, taxonomy=TAX)

    def live() -> list[bool]:
        with Session(engine) as db:
            rows = db.exec(select(Annotation).where(Annotation.project_id == project.id)).all()
        return [not a.deleted for a in rows]

    try:
        label(
            url, member, {"id": first.id, "data": first.data}, ["joy"] * len(first.data["dialogue"])
        )
        sync.pull_all(state)
        assert live() == [True]
        with Session(engine) as db:  # a full pull an hour away: this round is incremental
            row = db.get(SyncState, project.id)
            assert row is not None and row.webhook_stamp is not None
            assert sync._full_pull_due(state) == set()
        (hook,) = [
            h
            for h in httpx.get(
                f"{url}/api/webhooks", params={"project": project.id}, headers=as_member
            ).json()
            if h["url"] == own.webhook_url
        ]
        off = httpx.patch(
            f"{url}/api/webhooks/{hook['id']}", json={"is_active": False}, headers=as_member
        )
        assert off.status_code == 200, off.text
        (annotation,) = httpx.get(
            f"{url}/api/tasks/{first.id}/annotations", headers=as_member
        ).json()
        gone = httpx.delete(f"{url}/api/annotations/{annotation['id']}", headers=as_member)
        assert gone.status_code == 204, gone.text
        back = httpx.patch(
            f"{url}/api/webhooks/{hook['id']}",
            json={k: hook[k] for k in ("is_active", "actions", "headers", "send_payload")},
            headers=as_member,
        )
        assert back.status_code == 200, back.text
        sync.pull_all(state)
        assert live() == [False]
        with Session(engine) as db:
            row = db.get(SyncState, project.id)
            assert row is not None
            assert row.webhook_problem == "changed and put back since the last check"
            repaired_at = row.webhook_repaired_at
        sync.pull_all(state)
        with Session(engine) as db:
            assert db.get(SyncState, project.id).webhook_repaired_at == repaired_at  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_task_a_full_pull_misses_is_deleted_only_on_label_studios_404(
    label_studio: Settings, tmp_path
) -> None:
    """A full pull lists the project's tasks page by page; tasks deleted meanwhile shift
    the pages, and a live task can be missed. Such a task is kept, with its annotation
    and pin (``unlisted_tasks``): Label Studio still answers for it. A task deleted in
    Label Studio (no webhook here to say so) is taken for deleted. Also measured: a
    member cannot move a task to another project on Label Studio 1.23.2 (``PATCH`` with
    another ``project`` answers 404 and changes nothing)."""
    from types import SimpleNamespace

    from sqlmodel import Session, select

    from annotate.labelstudio import pull_events
    from api import reconcile, sync
    from api.db import init_db, make_engine
    from api.models import Annotation, PinnedTask, Task
    from tests.livekit import label

    own, _, client, project, member = _member_project(
        label_studio, tmp_path, "Missed task", pins=True
    )
    elsewhere = client.projects.create(title=f"{project.title} elsewhere")
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    init_db(engine)
    first, second = list(iter_tasks(client, project.id))[:2]
    url = own.label_studio.url
    as_member = {"Authorization": f"Token {member.token}"}
    state = SimpleNamespace(settings=own, engine=engine, writer=engine, taxonomy=TAX)

    def stored(task_id: int) -> tuple[list[bool], bool, bool]:
        with Session(engine) as db:
            rows = db.exec(select(Annotation).where(Annotation.task_id == task_id)).all()
            task = db.get(Task, task_id)
            pinned = db.get(PinnedTask, task_id) is not None
        return sorted(not a.deleted for a in rows), bool(task and task.deleted), pinned

    try:
        for task in (first, second):
            n = len(task.data["dialogue"])
            label(url, member, {"id": task.id, "data": task.data}, ["joy"] * n)
        sync.reconcile_project(state, project.id, full=True)
        assert stored(first.id) == ([True], False, True)
        moved = httpx.patch(
            f"{url}/api/tasks/{first.id}", json={"project": elsewhere.id}, headers=as_member
        )
        assert moved.status_code == 404, moved.text
        assert first.id in [t.id for t in iter_tasks(client, project.id)]
        # a pull whose pages missed the first task, and Label Studio's own deletion of the
        # second (no webhook told the store)
        gone = httpx.delete(f"{url}/api/tasks/{second.id}", headers=as_member)
        assert gone.status_code == 204, gone.text
        with Session(engine) as db:
            report = reconcile.reconcile(
                db,
                project.id,
                (p for p in pull_events(client, project.id) if p[0] != first.id),
                TAX,
                full=True,
                exists=lambda ids: sync.still_held(client, project.id, ids),
            )
        assert (report.unlisted_tasks, report.deleted_tasks) == (1, 1)
        assert stored(first.id) == ([True], False, True)
        assert stored(second.id) == ([False], True, False)
        # a task of another project under a missed task's id is not this project's
        assert sync.still_held(client, elsewhere.id, [first.id]) == set()
        assert sync.still_held(client, project.id, [first.id, second.id]) == {first.id}
    finally:
        engine.dispose()
        client.projects.delete(id=elsewhere.id)
