"""Pushing a session's clips into a Label Studio project as tasks, idempotently.

A task is known by its clip key (session id and clip times); :func:`push_tasks` imports
the clips a project lacks, replaces those whose content or data changed, leaves the rest
alone, and removes the copies two pushes at once made (:func:`remove_duplicates`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

__all__ = [
    "PUSH_BATCH",
    "ClipTask",
    "Duplicates",
    "Pushed",
    "data_fingerprint",
    "iter_clip_keys",
    "list_clip_tasks",
    "plan_duplicates",
    "push_tasks",
    "remove_duplicates",
]


# Tasks are imported this many per request (Label Studio parses and commits each batch).
PUSH_BATCH = 1000


class Pushed(NamedTuple):
    """What a push did to the project's tasks: counts, and the duplicates it found (clip
    keys held by more than one task: ``removed`` tasks were deleted, ``conflicts`` are
    keys whose copies all have annotations, kept for a person to merge)."""

    created: int
    existing: int
    updated: int
    removed: int = 0
    duplicate_keys: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    # (clip key, task id) of every task pushed, as the project holds it after the push
    ids: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ClipTask:
    """A task of the project as the importer sees it: its clip key, content hash, how
    many annotations it has (cancelled ones included) and the fingerprint of its whole
    data (:func:`data_fingerprint`)."""

    id: int
    key: str
    digest: str | None
    annotations: int
    fingerprint: str = ""


def data_fingerprint(data: Mapping[str, Any]) -> str:
    """sha256 of a task's whole data, as pushed and as Label Studio lists it back."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def list_clip_tasks(client: LabelStudio, project_id: int) -> list[ClipTask]:
    """The project's tasks that carry a clip key, by id (only the fields needed are
    fetched). A task without a ``clip_key`` (imported by an older version) is keyed by its
    ``clip_id``."""
    found: list[ClipTask] = []
    page = 1
    while True:
        try:
            answer = client.tasks.list(
                project=project_id,
                page=page,
                page_size=1000,
                include="id,data,total_annotations,cancelled_annotations",
                fields="task_only",
                # the data as stored: with data credentials or cloud storage Label Studio
                # rewrites its URLs on the way out, and every task would look changed
                resolve_uri=False,
            )
        except ApiError as exc:
            if exc.status_code == 404:  # Label Studio's answer for a page past the last
                break
            raise
        items = list(answer.items or [])
        for task in items:
            data = task.data or {}
            key = data.get("clip_key") or data.get("clip_id")
            if key:
                made = (task.total_annotations or 0) + (task.cancelled_annotations or 0)
                found.append(
                    ClipTask(
                        int(task.id),
                        str(key),
                        data.get("content_hash"),
                        made,
                        data_fingerprint(data),
                    )
                )
        if len(items) < 1000:
            break
        page += 1
    return sorted(found, key=lambda t: t.id)


def iter_clip_keys(client: LabelStudio, project_id: int) -> dict[int, tuple[str, str | None]]:
    """``{task id: (clip key, content hash)}`` of the project's tasks (see
    :func:`list_clip_tasks`)."""
    return {t.id: (t.key, t.digest) for t in list_clip_tasks(client, project_id)}


class Duplicates(NamedTuple):
    """Clip keys held by more than one task, and which of those tasks go."""

    removed: tuple[int, ...]
    keys: tuple[str, ...]
    conflicts: tuple[str, ...]


def plan_duplicates(tasks: Iterable[ClipTask], keys: Collection[str] | None = None) -> Duplicates:
    """Which copies of a clip to remove, decided the same way by every importer (so two
    that run at once agree): the copy with annotations is kept, else the lowest id; when
    two or more copies have annotations, all of those are kept and the key is a conflict.
    Only ``keys`` are looked at (all when None).

    Examples
    --------
    >>> plan_duplicates([ClipTask(5, "a", None, 0), ClipTask(9, "a", None, 1),
    ...                  ClipTask(6, "b", None, 0), ClipTask(7, "b", None, 0)])
    Duplicates(removed=(5, 7), keys=('a', 'b'), conflicts=())
    """
    by_key: dict[str, list[ClipTask]] = {}
    for task in tasks:
        if keys is None or task.key in keys:
            by_key.setdefault(task.key, []).append(task)
    removed: list[int] = []
    found: list[str] = []
    conflicts: list[str] = []
    for key, copies in sorted(by_key.items()):
        if len(copies) < 2:
            continue
        found.append(key)
        annotated = {t.id for t in copies if t.annotations}
        if len(annotated) > 1:
            conflicts.append(key)
            keep = annotated
        else:
            keep = {min(copies, key=lambda t: (t.annotations == 0, t.id)).id}
        removed += sorted(t.id for t in copies if t.id not in keep)
    return Duplicates(tuple(sorted(removed)), tuple(found), tuple(conflicts))


def remove_duplicates(
    client: LabelStudio,
    project_id: int,
    keys: Collection[str] | None = None,
    tasks: Iterable[ClipTask] | None = None,
) -> Duplicates:
    """Delete the copies :func:`plan_duplicates` picks among ``tasks`` (listed now when
    None). A copy that got an annotation since it was listed is kept (each is read again
    just before the deletion)."""
    listed = list(tasks) if tasks is not None else list_clip_tasks(client, project_id)
    plan = plan_duplicates(listed, keys)
    if not plan.removed:
        return plan
    gone = []
    for task_id in plan.removed:
        try:
            task = client.tasks.get(id=str(task_id))
        except ApiError as exc:
            if exc.status_code == 404:  # another importer removed it first
                continue
            raise
        if not (task.total_annotations or 0) + (task.cancelled_annotations or 0):
            gone.append(task_id)
    if gone:
        client.actions.create(
            id="delete_tasks", project=project_id, selected_items={"all": False, "included": gone}
        )
    return plan._replace(removed=tuple(gone))


def push_tasks(client: LabelStudio, project_id: int, tasks: Iterable[dict[str, Any]]) -> Pushed:
    """Make the project hold ``tasks``, idempotently.

    A task is identified by its ``data.clip_key`` (session id and clip times): a clip the
    project lacks is imported (in batches of :data:`PUSH_BATCH`), one whose
    ``data.content_hash`` changed (new text, speakers or features) has its data and
    pre-annotation replaced in place (annotations made on it are kept), one that is
    unchanged is left alone. An interrupted push resumes: the next one imports only what
    is missing. Every member can edit a task's data, and can make a task under a clip's
    key with its content hash and other data: a task whose whole data differs from what
    is pushed (:func:`data_fingerprint`), found before the push or right after it, has
    its data and pre-annotation put back too, so that what the import pins is what the
    task holds.

    Two pushes of the same clips at once (two terminals, two machines) can both import a
    clip; the push therefore lists the project's tasks again after importing and removes
    the extra copies (:func:`remove_duplicates`, a choice every importer makes alike), and
    a duplicate left by an earlier push is removed before pushing. Both are counted in
    the answer.
    """
    tasks = list(tasks)
    keys = {task["data"].get("clip_key") or task["data"]["clip_id"] for task in tasks}
    listed = list_clip_tasks(client, project_id)
    before = remove_duplicates(client, project_id, keys, listed)
    have: dict[str, ClipTask] = {}
    for task in listed:
        if task.id not in before.removed:
            have.setdefault(task.key, task)
    fresh, changed = [], []
    for task in tasks:
        key = task["data"].get("clip_key") or task["data"]["clip_id"]
        if key not in have:
            fresh.append(task)
        elif have[key].digest != task["data"].get("content_hash") or have[key].fingerprint != (
            data_fingerprint(task["data"])
        ):
            changed.append((have[key].id, task))
    for i in range(0, len(fresh), PUSH_BATCH):
        client.projects.import_tasks(id=project_id, request=fresh[i : i + PUSH_BATCH])
    _replace(client, project_id, changed)
    after = remove_duplicates(client, project_id, keys) if fresh else Duplicates((), (), ())
    if fresh:
        have = {}
        for held in list_clip_tasks(client, project_id):
            if held.key in keys and held.id not in after.removed:
                have.setdefault(held.key, held)
        # a fresh clip's task edited, or a planted one kept, between the import and now
        meant = {task["data"].get("clip_key") or task["data"]["clip_id"]: task for task in fresh}
        redone = [
            (have[key].id, task)
            for key, task in meant.items()
            if key in have and have[key].fingerprint != data_fingerprint(task["data"])
        ]
        _replace(client, project_id, redone)
    else:
        redone = []
    return Pushed(
        len(fresh),
        len(tasks) - len(fresh) - len(changed),  # a redone task is a fresh one
        len(changed) + len(redone),
        len(before.removed) + len(after.removed),
        tuple(sorted({*before.keys, *after.keys})),
        tuple(sorted({*before.conflicts, *after.conflicts})),
        tuple(sorted((key, have[key].id) for key in keys if key in have)),
    )


def _replace(
    client: LabelStudio, project_id: int, changed: list[tuple[int, dict[str, Any]]]
) -> None:
    """Put each ``(task id, task)``'s data and pre-annotation in place of what it holds."""
    for task_id, task in changed:
        client.tasks.update(id=str(task_id), data=task["data"])
    if changed:
        # our pre-annotations are the tasks' only predictions: replace them in two requests
        ids = [task_id for task_id, _ in changed]
        client.actions.create(
            id="delete_tasks_predictions",
            project=project_id,
            selected_items={"all": False, "included": ids},
        )
        predictions = [
            {"task": task_id, **prediction}
            for task_id, task in changed
            for prediction in task.get("predictions", [])
        ]
        if predictions:
            client.projects.import_predictions(id=project_id, request=predictions)
