"""The service's store operations: apply Label Studio events, read judgements, agreement.

These are the public functions the routes (and the exporters) call; they raise domain
errors, never HTTP ones.

Applying events is idempotent and order-safe: an annotation is replaced only by a version
with a newer ``updated_at``; a deletion leaves a tombstone, so a create delivered after its
delete changes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from annotate.agreement import krippendorff_alpha, pivot
from api.models import Annotation, Judgement, ShiftEventRow, Task
from schemas.codec import decode_annotation
from schemas.errors import AnnotateError
from schemas.taxonomy import Taxonomy

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class PayloadError(AnnotateError, ValueError):
    """A webhook payload lacks a field or has one of the wrong type; names the field."""


class NotFound(AnnotateError, LookupError):
    """An unknown project or dimension; the message lists what exists."""


@dataclass(slots=True)
class Applied:
    """What applying one event did."""

    action: str
    stored: int = 0
    removed: int = 0
    ignored: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def _need(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = (kind,) if isinstance(kind, type) else kind
        expected = " or ".join(k.__name__ for k in kinds)
        raise PayloadError(f"{where}{key}: expected {expected}, got {type(value).__name__}")
    return value


def parse_time(value: Any, where: str) -> datetime | None:
    """Label Studio's ISO timestamps as aware UTC datetimes (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where}: expected an ISO 8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _project_id(payload: Mapping[str, Any]) -> int:
    project = payload.get("project")
    if isinstance(project, Mapping):
        return int(_need(project, "id", int, "project."))
    raise PayloadError("project: expected an object with an id")


def upsert_task(db: Session, project_id: int, task: Mapping[str, Any]) -> Task:
    """Store (or refresh) a task's data."""
    task_id = _need(task, "id", int, "task.")
    data = task.get("data") or {}
    if not isinstance(data, Mapping):
        raise PayloadError("task.data: expected an object")
    row = db.get(Task, task_id)
    if row is None:
        row = Task(id=task_id, project_id=project_id)
    row.data = dict(data)
    row.clip_id = data.get("clip_id")
    row.session_id = data.get("session_id")
    db.add(row)
    return row


def apply_annotation(
    db: Session,
    project_id: int,
    annotation: Mapping[str, Any],
    task: Mapping[str, Any],
    taxonomy: Taxonomy,
) -> Applied:
    """Store one annotation's judgements unless a newer or deleted version is stored."""
    applied = Applied("annotation")
    annotation_id = _need(annotation, "id", int, "annotation.")
    updated = parse_time(annotation.get("updated_at"), "annotation.updated_at")
    task_row = upsert_task(db, project_id, task)
    row = db.get(Annotation, annotation_id)
    if row is not None and row.deleted:
        applied.ignored = "deleted"
        return applied
    if row is not None and row.updated_at and updated and row.updated_at >= updated:
        applied.ignored = "not newer"
        return applied
    try:
        decoded = decode_annotation({**annotation, "task": task_row.id}, task_row.data, taxonomy)
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"annotation.result: cannot be decoded ({exc})") from None
    if row is None:
        row = Annotation(id=annotation_id, project_id=project_id, received_at=_now())
    row.task_id = task_row.id
    row.annotator = (
        str(decoded.judgements[0].annotator)
        if decoded.judgements
        else (str(annotation.get("completed_by")))
    )
    row.was_cancelled = bool(annotation.get("was_cancelled"))
    row.updated_at = updated
    row.lead_time = annotation.get("lead_time")
    row.received_at = _now()
    db.add(row)
    applied.removed = _remove_judgements(db, [annotation_id])
    if row.was_cancelled:
        applied.skipped = {"cancelled": len(decoded.judgements)}
        return applied
    for j in decoded.judgements:
        db.add(Judgement(project_id=project_id, **j.to_dict()))
    for s in decoded.shifts:
        db.add(ShiftEventRow(project_id=project_id, **s.to_dict()))
    applied.stored = len(decoded.judgements)
    applied.skipped = dict(decoded.skipped)
    return applied


def _remove_judgements(db: Session, annotation_ids: list[int]) -> int:
    removed = db.exec(  # type: ignore[call-overload]
        delete(Judgement).where(col(Judgement.annotation_id).in_(annotation_ids))
    ).rowcount
    db.exec(  # type: ignore[call-overload]
        delete(ShiftEventRow).where(col(ShiftEventRow.annotation_id).in_(annotation_ids))
    )
    return int(removed or 0)


def delete_annotations(db: Session, project_id: int, annotation_ids: list[int]) -> Applied:
    """Record deletions (tombstones for unknown ids) and drop their judgements."""
    applied = Applied("delete")
    for annotation_id in annotation_ids:
        row = db.get(Annotation, annotation_id) or Annotation(
            id=annotation_id, project_id=project_id, received_at=_now()
        )
        row.deleted = True
        db.add(row)
    applied.removed = _remove_judgements(db, annotation_ids)
    return applied


def delete_tasks(db: Session, project_id: int, task_ids: list[int]) -> Applied:
    """Record the deletion of tasks and of all their annotations."""
    ids = list(db.exec(select(Annotation.id).where(col(Annotation.task_id).in_(task_ids))).all())
    applied = delete_annotations(db, project_id, ids)
    applied.action = "delete tasks"
    for task_id in task_ids:
        row = db.get(Task, task_id)
        if row is not None:
            row.deleted = True
            db.add(row)
    return applied


def apply_event(db: Session, payload: Mapping[str, Any], taxonomy: Taxonomy) -> Applied:
    """Apply one Label Studio webhook payload and commit; nothing is half-applied."""
    if not isinstance(payload, Mapping):
        raise PayloadError("body: expected a JSON object")
    action = _need(payload, "action", str, "")
    project_id = _project_id(payload)
    try:
        if action in ANNOTATION_ACTIONS:
            annotation = _need(payload, "annotation", Mapping, "")
            task = _need(payload, "task", Mapping, "")
            applied = apply_annotation(db, project_id, annotation, task, taxonomy)
        elif action == "ANNOTATIONS_DELETED":
            items = _need(payload, "annotations", list, "")
            ids = [_need(a, "id", int, f"annotations[{i}].") for i, a in enumerate(items)]
            applied = delete_annotations(db, project_id, ids)
        elif action == "TASKS_DELETED":
            items = _need(payload, "tasks", list, "")
            ids = [_need(t, "id", int, f"tasks[{i}].") for i, t in enumerate(items)]
            applied = delete_tasks(db, project_id, ids)
        else:
            applied = Applied(action, ignored="action not tracked")
        db.commit()
    except Exception:
        db.rollback()
        raise
    return applied


def live_judgements(project_id: int, dimension: str | None = None) -> Any:
    """A select of the project's judgements (of one dimension), deleted ones excluded."""
    query = select(Judgement).where(Judgement.project_id == project_id)
    if dimension is not None:
        query = query.where(Judgement.dimension == dimension)
    return query.order_by(col(Judgement.id))


def count_judgements(db: Session, project_id: int) -> int:
    """How many judgements the project has."""
    return int(
        db.exec(
            select(func.count()).select_from(Judgement).where(Judgement.project_id == project_id)
        ).one()
    )


def iter_judgements(db: Session, project_id: int) -> Iterator[Judgement]:
    """Every judgement of the project, in arrival order, streamed."""
    yield from db.exec(live_judgements(project_id)).yield_per(5000)


def iter_tasks(db: Session, project_id: int) -> Iterator[Task]:
    """The project's live tasks, ordered by id."""
    query = select(Task).where(Task.project_id == project_id, col(Task.deleted).is_(False))
    yield from db.exec(query.order_by(col(Task.id)))


def projects(db: Session) -> list[int]:
    """Ids of the projects the store has judgements or tasks for."""
    ids = set(db.exec(select(Task.project_id).distinct()).all())
    ids |= set(db.exec(select(Judgement.project_id).distinct()).all())
    return sorted(ids)


def agreement(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> dict[str, Any]:
    """Krippendorff's alpha for one dimension: overall and per annotator.

    Per annotator: its judgement count, alpha with the annotator left out, and the mean of
    its pairwise alphas with each other annotator.
    """
    if project_id not in projects(db):
        raise NotFound(f"unknown project {project_id}; the store has {projects(db)}")
    if dimension not in {d.name for d in taxonomy.dimensions}:
        raise NotFound(
            f"unknown dimension {dimension!r}; expected one of "
            f"{[d.name for d in taxonomy.dimensions]}"
        )
    dim = taxonomy.dimension(dimension)
    rows = db.exec(
        select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
            Judgement.project_id == project_id, Judgement.dimension == dimension
        )
    ).all()
    result: dict[str, Any] = {
        "project": project_id,
        "dimension": dimension,
        "level": dim.level,
        "taxonomy": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "judgements": len(rows),
        "alpha": None,
        "units": 0,
        "annotators": [],
    }
    if not rows:
        return result
    units, annotators, values = zip(*rows, strict=True)
    codes = [dim.code(v) for v in values]
    matrix, names, unit_ids = pivot(units, annotators, codes)
    result["units"] = len(unit_ids)
    result["alpha"] = _alpha(matrix, dim.level)
    counts = Counter(annotators)
    per = []
    for i, name in enumerate(names):
        others = [k for k in range(len(names)) if k != i]
        pairwise = [_alpha(matrix[[i, k]], dim.level) for k in others]
        pairwise = [a for a in pairwise if a is not None]
        per.append(
            {
                "annotator": str(name),
                "judgements": counts[name],
                "alpha_without": _alpha(matrix[others], dim.level) if len(others) > 1 else None,
                "alpha_pairwise_mean": float(np.mean(pairwise)) if pairwise else None,
            }
        )
    result["annotators"] = per
    return result


def _alpha(matrix: np.ndarray, level: str) -> float | None:
    try:
        return float(krippendorff_alpha(matrix, level=level))
    except ValueError:
        return None


def turn_labels(db: Session, project_id: int) -> dict[str, dict[str, dict[str, str]]]:
    """``{turn_id: {annotator: {dimension: value}}}`` for the project's live judgements."""
    table: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for j in iter_judgements(db, project_id):
        table[j.turn_id][j.annotator][j.dimension] = j.value
    return {turn: dict(by) for turn, by in table.items()}
