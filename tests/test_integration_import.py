"""Re-importing against a real Label Studio: nothing twice, changed clips updated in place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annotate.config import Settings
from annotate.labelstudio import connect, ensure_project, iter_clip_keys, iter_tasks, push_tasks
from importers import ImportOptions, import_sessions
from importers.clips import build_task, make_clips
from schemas.codec import PREDICTION_VERSION, encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.builders import make_session, write_session

pytestmark = pytest.mark.integration
TAX = load_taxonomy()


def _project(settings: Settings, title: str) -> tuple[Any, int]:
    client = connect(settings)
    named = settings.model_copy(
        update={"label_studio": settings.label_studio.model_copy(update={"project_title": title})}
    )
    return client, ensure_project(client, named, TAX).id


def _tasks(session_id: str = "reimport") -> list[dict[str, Any]]:
    session = make_session([(2.0 * i, 2.0 * i + 1.5) for i in range(12)], session_id=session_id)
    clips = make_clips(session, 6.0)
    return [
        build_task(session, c, f"/data/local-files/?d=x/{c.id}.wav", TAX, len(clips)) for c in clips
    ]


def test_push_is_idempotent_and_updates_changed_clips(label_studio: Settings) -> None:
    client, project = _project(label_studio, "Re-import")
    tasks = _tasks()
    assert push_tasks(client, project, tasks)[:3] == (len(tasks), 0, 0)
    assert push_tasks(client, project, tasks)[:3] == (0, len(tasks), 0)

    # someone annotates the clip that is about to change
    by_key = {key: task_id for task_id, (key, _) in iter_clip_keys(client, project).items()}
    target = tasks[1]
    task_id = by_key[target["data"]["clip_key"]]
    values = {i: {"emotion": "joy"} for i in range(len(target["data"]["dialogue"]))}
    client.annotations.create(
        id=task_id, result=encode_annotation(target["data"]["dialogue"], values, TAX)
    )

    changed = _tasks()
    changed[1]["data"]["dialogue"][0]["text"] = "a corrected line"
    changed[1] = build_task_again(changed[1])
    assert push_tasks(client, project, changed)[:3] == (0, len(tasks) - 1, 1)

    tasks_now = {t.id: t for t in iter_tasks(client, project)}
    assert len(tasks_now) == len(tasks)
    assert Counter(k for k, _ in iter_clip_keys(client, project).values()).most_common(1)[0][1] == 1
    updated = tasks_now[task_id]
    assert updated.data["dialogue"][0]["text"] == "a corrected line"
    assert updated.data["content_hash"] == changed[1]["data"]["content_hash"]
    assert len(updated.annotations) == 1  # the annotation made before is kept
    predictions = list(client.predictions.list(task=task_id))
    assert [p.model_version for p in predictions] == [PREDICTION_VERSION]
    assert predictions[0].result == changed[1]["predictions"][0]["result"]


def build_task_again(task: dict[str, Any]) -> dict[str, Any]:
    """The task with its content hash recomputed after an edit of its data."""
    from importers.clips import content_hash

    task["data"]["content_hash"] = content_hash(task)
    return task


def test_interrupted_push_resumes_without_duplicates(label_studio: Settings) -> None:
    client, project = _project(label_studio, "Resume")
    tasks = _tasks("resume")
    # an import that stopped after its first clips reached Label Studio
    client.projects.import_tasks(id=project, request=tasks[:2])
    created, existing, updated = push_tasks(client, project, tasks)[:3]
    assert (created, existing, updated) == (len(tasks) - 2, 2, 0)
    keys = Counter(key for key, _ in iter_clip_keys(client, project).values())
    assert sorted(keys) == sorted(t["data"]["clip_key"] for t in tasks)
    assert set(keys.values()) == {1}


def test_reimport_of_a_session_folder_reports_counts(
    label_studio: Settings, tmp_path: Path
) -> None:
    from annotate.labelstudio import session_pusher

    client, project = _project(label_studio, "Folder re-import")
    folder = write_session(tmp_path / "again", n_turns=10, rng=np.random.default_rng(4))
    options = ImportOptions(max_seconds=4.0, context_turns=1)
    push = session_pusher(client, project, label_studio.media_path, drop_intended=True)
    first = import_sessions(
        folder, media_root=label_studio.media_path, taxonomy=TAX, push=push, options=options
    )
    assert first.failed == {} and first.created == first.clips > 1
    again = import_sessions(
        folder, media_root=label_studio.media_path, taxonomy=TAX, push=push, options=options
    )
    assert (again.created, again.existing, again.updated) == (0, first.clips, 0)
    tasks = sorted(iter_tasks(client, project), key=lambda t: t.data["clip_index"])
    assert tasks[0].data["context"] == "(the scene starts here)"
    first_line = tasks[0].data["dialogue"][-1]
    assert tasks[1].data["context"].startswith("Before this clip: ")
    assert first_line["text"] in tasks[1].data["context"]
