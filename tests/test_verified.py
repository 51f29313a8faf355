"""Verified mode against a real Label Studio: a webhook is only a doorbell, and what the
store holds is what Label Studio holds, whatever a forged webhook says.

Anyone in the Label Studio organisation can read the webhook's secret header; these tests
post webhooks with that secret, as such a member would, to a real service (uvicorn and its
applier process) that talks to a real Label Studio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio
from sqlmodel import Session, select

from annotate import stack
from annotate.config import Settings
from annotate.labelstudio import (
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
    iter_tasks,
    session_pusher,
)
from annotate.simulate import simulate_values
from api.db import make_engine
from api.models import DeadLetter
from importers import import_sessions, load_session
from schemas.codec import decode_annotation, encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE
from tests.faultkit import SECRET, Served, label_studio_rows, make_service, store_rows, wait_for

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
FUTURE = "2099-01-01T00:00:00.000000Z"  # newer than anything Label Studio holds
FORGED_ID = 987_654_321  # an annotation id Label Studio has not given out


def _result(task: Any, seed: int, intended: dict[int, str]) -> list[dict[str, Any]]:
    values, shifts = simulate_values(
        task.data["dialogue"], intended, TAX, np.random.default_rng([seed, task.id])
    )
    return encode_annotation(task.data["dialogue"], values, TAX, shifts)


def _forged(
    action: str, project_id: int, task: Any, annotation_id: int, result: list[dict[str, Any]]
) -> dict[str, Any]:
    """A webhook as a member who read the secret would post it: a real task, any result."""
    return {
        "action": action,
        "project": {"id": project_id},
        "task": {"id": task.id, "data": task.data, "project": project_id},
        "annotation": {
            "id": annotation_id,
            "task": task.id,
            "project": project_id,
            "completed_by": 1,
            "result": result,
            "was_cancelled": False,
            "created_at": "2026-12-01T00:00:00.000000Z",
            "updated_at": FUTURE,
        },
    }


def _rows_of(result: list[dict[str, Any]], task: Any, annotation_id: int) -> set[tuple]:
    decoded = decode_annotation(
        {"id": annotation_id, "task": task.id, "completed_by": 1, "result": result}, task.data, TAX
    )
    return {(j.annotation_id, j.turn_id, j.dimension, j.value) for j in decoded.judgements}


def _judgements(served: Served, project_id: int) -> set[tuple]:
    """The project's judgements as the service's read API gives them (after the applier
    has applied what was acknowledged: the read waits for that; checked with /health)."""
    rows: set[tuple] = set()
    with served.reads() as reads:
        skip = 0
        while True:
            page = reads.get(
                f"/projects/{project_id}/judgements", params={"skip": skip, "limit": 1000}
            )
            assert page.status_code == 200, page.text
            body = page.json()
            rows |= {
                (j["annotation_id"], j["turn_id"], j["dimension"], j["value"], j["annotator"])
                for j in body["data"]
            }
            skip += len(body["data"])
            if skip >= body["count"] or not body["data"]:
                break
        assert reads.get("/health").json()["inbox"]["pending"] == 0
    return rows


def _short(rows: set[tuple]) -> set[tuple]:
    return {row[:4] for row in rows}


def _post(served: Served, payload: dict[str, Any]) -> None:
    with served.hooks() as hooks:  # the secret header, as read from Label Studio
        answer = hooks.post("/webhooks/label-studio", json=payload)
    assert answer.status_code == 200, answer.text


def _letters(served: Served) -> list[str]:
    with served.reads() as reads:
        return [d["reason"] for d in reads.get("/dead-letters").json()["data"]]


class Project:
    """A Label Studio project with the example session, a verified service on its webhook,
    and one genuine annotation per task made by an annotator through Label Studio's API."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.client = connect(settings)
        self.project = ensure_project(self.client, settings, TAX)
        report = import_sessions(
            EXAMPLE,
            media_root=settings.media_path,
            taxonomy=TAX,
            max_seconds=settings.clips.max_seconds,
            push=session_pusher(
                self.client, self.project.id, settings.media_path, drop_intended=True
            ),
        )
        assert not report.failed
        self.id = int(self.project.id)
        self.served = make_service(
            folder,
            f"sqlite:///{folder / 'store.db'}",
            label_studio=settings,
            project_title=settings.label_studio.project_title,
            webhook_mode="verified",
        )
        self.intended = {i.turn: i.emotion for i in load_session(EXAMPLE).intended}
        self.tasks = list(iter_tasks(self.client, self.id))
        self.genuine: list[Any] = []  # the annotator's annotations (made once started)
        self.annotator = LabelStudio(
            base_url=settings.label_studio.url,
            api_key=ensure_account(
                settings.label_studio.url,
                "verified-1@example.org",
                "a-long-test-password-1",
                invite=invite_link(self.client, settings.label_studio.url),
            ).token,
        )


@pytest.fixture(scope="module")
def project(label_studio: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The project, its verified service running, and the genuine annotations made."""
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Verified mode"}
            )
        }
    )
    made = Project(settings, tmp_path_factory.mktemp("verified"))
    made.served.start()
    try:
        ensure_webhook(made.client, made.id, made.served.settings.webhook_url, SECRET)
        made.genuine = [
            made.annotator.annotations.create(id=t.id, result=_result(t, 1, made.intended))
            for t in made.tasks
        ]
        yield made
    finally:
        made.served.stop()


def test_a_genuine_annotation_reaches_the_store_through_the_webhook(project: Project) -> None:
    in_label_studio = label_studio_rows(project.client, project.id, TAX)
    stored = _judgements(project.served, project.id)
    assert len(project.genuine) == len(project.tasks) > 0
    assert in_label_studio, "the annotations carry judgements"
    assert _short(stored) == in_label_studio
    assert not any(r.startswith("not in Label Studio") for r in _letters(project.served))
    print(
        f"\nRELIABILITY verified (a): {len(project.tasks)} annotations saved through Label "
        f"Studio's API; the store holds the same {len(stored)} judgements"
    )


def test_b_a_forged_create_of_an_annotation_label_studio_lacks_changes_nothing(
    project: Project,
) -> None:
    before = _judgements(project.served, project.id)
    task = project.tasks[0]
    forged = _forged("ANNOTATION_CREATED", project.id, task, FORGED_ID, _result(task, 7, {}))
    assert _rows_of(forged["annotation"]["result"], task, FORGED_ID)  # it would add rows
    _post(project.served, forged)
    after = _judgements(project.served, project.id)
    assert after == before
    assert not any(row[0] == FORGED_ID for row in after)
    letters = _letters(project.served)
    assert letters[0].startswith("not in Label Studio: ANNOTATION_CREATED of annotation ")
    print(f"RELIABILITY verified (b): forged create refused: {letters[0]!r}")


def test_c_a_forged_update_of_a_real_annotation_leaves_label_studios_version(
    project: Project,
) -> None:
    task = project.tasks[1]
    real = project.genuine[1]
    forged_result = _result(task, 8, {})
    forged_rows = _rows_of(forged_result, task, real.id)
    real_rows = {r for r in label_studio_rows(project.client, project.id, TAX) if r[0] == real.id}
    assert forged_rows != real_rows  # the forgery would change the figures
    _post(project.served, _forged("ANNOTATION_UPDATED", project.id, task, real.id, forged_result))
    stored = _short(_judgements(project.served, project.id))
    assert {r for r in stored if r[0] == real.id} == real_rows
    assert stored == label_studio_rows(project.client, project.id, TAX)


def test_d_a_forged_deletion_of_a_real_annotation_changes_nothing(project: Project) -> None:
    before = _judgements(project.served, project.id)
    real = project.genuine[2]
    assert any(row[0] == real.id for row in before)
    payload = {
        "action": "ANNOTATIONS_DELETED",
        "project": {"id": project.id},
        "annotations": [{"id": real.id}],
    }
    _post(project.served, payload)
    assert _judgements(project.served, project.id) == before
    assert _letters(project.served)[0].startswith("still in Label Studio: ANNOTATIONS_DELETED")


def test_d_a_forged_task_deletion_changes_nothing(project: Project) -> None:
    before = _judgements(project.served, project.id)
    task = project.tasks[2]
    assert any(row[0] == project.genuine[2].id for row in before)
    _post(
        project.served,
        {"action": "TASKS_DELETED", "project": {"id": project.id}, "tasks": [{"id": task.id}]},
    )
    assert _judgements(project.served, project.id) == before
    assert _letters(project.served)[0].startswith("still in Label Studio: TASKS_DELETED")


def test_d2_a_genuine_deletion_is_applied(project: Project) -> None:
    real = project.genuine[-1]
    project.annotator.annotations.delete(id=real.id)  # Label Studio posts ANNOTATIONS_DELETED
    stored = _short(_judgements(project.served, project.id))
    assert not any(row[0] == real.id for row in stored)
    assert stored == label_studio_rows(project.client, project.id, TAX)


def test_d_a_forged_deletion_of_ids_not_given_out_yet_blocks_no_later_annotation(
    project: Project,
) -> None:
    # Label Studio gives out annotation ids in sequence: a tombstone for the next ids would
    # make the store ignore those annotations once annotators make them
    first = max(a.id for a in project.genuine) + 1
    upcoming = list(range(first, first + 20))
    _post(
        project.served,
        {
            "action": "ANNOTATIONS_DELETED",
            "project": {"id": project.id},
            "annotations": [{"id": i} for i in upcoming],
        },
    )
    task = project.tasks[1]
    made = project.client.annotations.create(id=task.id, result=_result(task, 3, project.intended))
    assert made.id in upcoming
    stored = _short(_judgements(project.served, project.id))
    assert any(row[0] == made.id for row in stored)
    assert stored == label_studio_rows(project.client, project.id, TAX)
    assert any(
        r.startswith("not in the store: ANNOTATIONS_DELETED") for r in _letters(project.served)
    )


def test_e_in_trusted_mode_the_forged_create_does_change_the_store(
    project: Project, tmp_path: Path
) -> None:
    served = make_service(
        tmp_path,
        f"sqlite:///{tmp_path / 'store.db'}",
        label_studio=project.settings,
        webhook_mode="trusted",
    )
    served.start()
    try:
        task = project.tasks[0]
        result = _result(task, 7, {})
        _post(served, _forged("ANNOTATION_CREATED", project.id, task, FORGED_ID, result))
        stored = _short(_judgements(served, project.id))
    finally:
        served.stop()
    assert stored == _rows_of(result, task, FORGED_ID)  # the forgery is what the store holds


def _dead_letters(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            return len(db.exec(select(DeadLetter.id)).all())
    finally:
        engine.dispose()


def test_f_label_studio_down_events_wait_then_are_applied(project: Project, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    served = make_service(
        tmp_path, database_url, label_studio=project.settings, webhook_mode="verified"
    )
    task = project.tasks[0]
    real = project.genuine[0]
    ls = project.settings.label_studio
    # the genuine payload of a real annotation, as Label Studio would deliver it late
    raw = httpx.get(
        f"{ls.url}/api/tasks/{task.id}", headers={"Authorization": f"Token {ls.token}"}, timeout=30
    ).json()
    (annotation,) = [a for a in raw["annotations"] if a["id"] == real.id]
    payload = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project.id},
        "task": {"id": task.id, "data": raw["data"], "project": project.id},
        "annotation": annotation,
    }
    expected = {r for r in label_studio_rows(project.client, project.id, TAX) if r[0] == real.id}
    served.start()
    try:
        stack.stop(project.settings, stack.LABEL_STUDIO)
        try:
            started = time.monotonic()
            _post(served, payload)  # acknowledged although Label Studio is down
            acknowledged = time.monotonic() - started
            time.sleep(5)  # the applier tries, fails, backs off, tries again
            with served.hooks() as hooks:
                waiting = hooks.get("/health").json()["inbox"]["pending"]
            assert waiting == 1  # kept, not dropped
            assert store_rows(database_url, project.id) == set()  # not applied unverified
            assert _dead_letters(database_url) == 0
        finally:
            stack.start_label_studio(project.settings, timeout=240)
        back = time.monotonic()
        assert wait_for(lambda: store_rows(database_url, project.id) == expected, timeout=60)
        caught_up = time.monotonic() - back
    finally:
        served.stop()
    assert expected
    print(
        f"RELIABILITY verified (f): webhook acknowledged in {acknowledged * 1000:.0f} ms with "
        f"Label Studio down; 1 event waited 5 s in the inbox (0 applied, 0 dead letters); "
        f"applied {caught_up:.1f} s after Label Studio answered again"
    )
