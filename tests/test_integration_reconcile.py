"""Webhooks missed: a pull from the real Label Studio brings the store level with it."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio

from annotate.config import Settings
from annotate.labelstudio import (
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
