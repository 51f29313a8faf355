"""Label Studio's webhook payloads, checked and decoded: what the store applies.

Everything that can be wrong with an event is found here (:func:`parse_event` names the
field), without touching the store, so that events applied together fail only for reasons
of the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.codec import JudgementRow, annotator_of, decode_rows
from schemas.errors import AnnotateError
from schemas.taxonomy import Taxonomy

__all__ = [
    "ANNOTATION_ACTIONS",
    "Event",
    "PayloadError",
    "Version",
    "data_hash",
    "decode_version",
    "parse_event",
    "parse_time",
    "task_of",
]

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class PayloadError(AnnotateError, ValueError):
    """A webhook payload lacks a field or has one of the wrong type; names the field."""


def _need(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = (kind,) if isinstance(kind, type) else kind
        expected = " or ".join(k.__name__ for k in kinds)
        raise PayloadError(f"{where}{key}: expected {expected}, got {type(value).__name__}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # ids are 64-bit columns
        raise PayloadError(f"{where}{key}: expected a 64-bit integer, got {value}")
    return value


def parse_time(value: Any, where: str) -> datetime | None:
    """Label Studio's ISO timestamps as aware UTC datetimes (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: out of range once in UTC
        raise PayloadError(f"{where}: expected an ISO 8601 time, got {value!r}") from None


def _project_id(payload: Mapping[str, Any]) -> int:
    project = payload.get("project")
    if isinstance(project, Mapping):
        return int(_need(project, "id", int, "project."))
    raise PayloadError("project: expected an object with an id")


def task_of(task: Mapping[str, Any]) -> tuple[int, dict]:
    """A payload's task: its id and data, checked (the fields the store keeps in columns)."""
    task_id = _need(task, "id", int, "task.")
    data = task.get("data") or {}
    if not isinstance(data, Mapping):
        raise PayloadError("task.data: expected an object")
    if not isinstance(data.get("dialogue") or [], list):
        raise PayloadError("task.data.dialogue: expected a list of turns")
    for key in ("clip_id", "session_id"):  # stored in columns of their own
        value = data.get(key)
        if value is not None and not isinstance(value, str | int):
            raise PayloadError(f"task.data.{key}: expected a string, got {type(value).__name__}")
    return task_id, dict(data)


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an annotation as an event carries it: checked and decoded.

    ``rows`` holds its judgements as ``schemas.codec.JudgementRow`` tuples (the judgement
    table's columns after ``project_id``), ``turns`` the turn ids of the task's dialogue.
    """

    id: int
    task_id: int
    task_data: Mapping[str, Any]
    annotator: str
    was_cancelled: bool
    ground_truth: bool
    created_at: datetime | None
    updated_at: datetime | None
    lead_time: float | None
    rows: tuple[JudgementRow, ...]
    shifts: tuple[dict[str, Any], ...]
    skipped: Mapping[str, int]
    turns: tuple[str, ...]
    updated_by: str | None = None
    # the annotation as the event gave it, to decode it again against pinned task data
    source: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Event:
    """A Label Studio webhook payload, checked (see :func:`parse_event`): ready to apply.

    ``annotation`` for ANNOTATION_CREATED / ANNOTATION_UPDATED; ``ids`` the annotation ids
    of ANNOTATIONS_DELETED or the task ids of TASKS_DELETED.
    """

    action: str
    project_id: int
    annotation: Version | None = None
    ids: tuple[int, ...] = ()
    # PROJECT_UPDATED: the project's settings the adjudication sender makes and checks
    settings: Mapping[str, Any] | None = None


# the project settings a PROJECT_UPDATED event keeps (annotate.adjudicate makes the
# adjudication project with them); a data password is kept as set or not, never itself
PROJECT_FIELDS = (
    "label_config",
    "model_version",
    "show_collab_predictions",
    "reveal_preannotations_interactively",
    "show_annotation_history",
    "show_ground_truth_first",
    "maximum_annotations",
    "task_data_login",
    "task_data_password",
)


def parse_event(payload: Any, taxonomy: Taxonomy) -> Event:
    """Check a webhook payload and decode its annotation, without touching the store.

    Raises :class:`PayloadError` naming the field that is missing or wrong. Everything
    that can be wrong with an event is found here, so that events applied together
    (:func:`apply_events`) fail only for reasons of the store.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("body: expected a JSON object")
    action = _need(payload, "action", str, "")
    project_id = _project_id(payload)
    if action in ANNOTATION_ACTIONS:
        annotation = _need(payload, "annotation", Mapping, "")
        task = _need(payload, "task", Mapping, "")
        return Event(action, project_id, decode_version(annotation, task, taxonomy))
    if action == "ANNOTATIONS_DELETED":
        items = _need(payload, "annotations", list, "")
        ids = [
            _need(_item(a, f"annotations[{i}]"), "id", int, f"annotations[{i}].")
            for i, a in enumerate(items)
        ]
        return Event(action, project_id, ids=tuple(ids))
    if action == "TASKS_DELETED":
        items = _need(payload, "tasks", list, "")
        ids = [
            _need(_item(t, f"tasks[{i}]"), "id", int, f"tasks[{i}].") for i, t in enumerate(items)
        ]
        return Event(action, project_id, ids=tuple(ids))
    if action == "PROJECT_UPDATED":
        project = _need(payload, "project", Mapping, "")
        kept = {k: project[k] for k in PROJECT_FIELDS if k in project}
        if kept.get("task_data_password"):
            kept["task_data_password"] = "(set)"
        return Event(action, project_id, settings=kept)
    return Event(action, project_id)


def _item(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def decode_version(
    annotation: Mapping[str, Any], task: Mapping[str, Any], taxonomy: Taxonomy
) -> Version:
    """An annotation and its task as a :class:`Version` (raises :class:`PayloadError`)."""
    annotation_id = _need(annotation, "id", int, "annotation.")
    updated = parse_time(annotation.get("updated_at"), "annotation.updated_at")
    task_id, task_data = task_of(task)
    try:
        decoded = decode_rows({**annotation, "task": task_id}, task_data, taxonomy)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PayloadError(f"annotation.result: cannot be decoded ({exc})") from None
    created = parse_time(annotation.get("created_at"), "annotation.created_at")
    lead_time = annotation.get("lead_time")
    cancelled = bool(annotation.get("was_cancelled"))
    turns = tuple(str(line.get("turn_id")) for line in task_data.get("dialogue") or [])
    return Version(
        id=annotation_id,
        task_id=task_id,
        task_data=task_data,
        annotator=annotator_of(annotation),
        was_cancelled=cancelled,
        ground_truth=bool(annotation.get("ground_truth")),
        created_at=created,
        updated_at=updated,
        lead_time=float(lead_time) if isinstance(lead_time, int | float) else None,
        rows=decoded.judgements,
        shifts=tuple(s.to_dict() for s in decoded.shifts),
        skipped=({"cancelled": len(decoded.judgements)} if cancelled else dict(decoded.skipped)),
        turns=turns,
        updated_by=_user_of(annotation.get("updated_by")),
        source=annotation,
    )


def _user_of(value: Any) -> str | None:
    """A user id as Label Studio gives it (an int, or an object with ``id``), as text."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        return None
    return str(value)


def data_hash(data: Mapping[str, Any]) -> str:
    """sha256 of an adjudication task's data without its ``content_hash``, as sent and
    as Label Studio gives it back."""
    kept = {k: v for k, v in data.items() if k != "content_hash"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def result_hash(version: Version) -> str:
    """sha256 of what an annotation says: its result as Label Studio gives it, and whether
    it was skipped (``api.models.AnnotationBase.own_hash``)."""
    said = {"result": version.source.get("result"), "cancelled": version.was_cancelled}
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()
