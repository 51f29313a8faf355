"""Pulling a project from Label Studio into the store: what webhooks missed, and deletions.

The service pulls each known project now and then (incrementally, from the last pull
minus a margin for clock skew) and on request (``POST /projects/{id}/reconcile``, in full);
:func:`reconcile` applies what a pull found through the store's own functions, so a
pulled annotation is stored exactly as a webhook's would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from api.models import Annotation, SyncState, Task
from api.store import apply_event, delete_annotations, delete_tasks
from schemas.taxonomy import Taxonomy

__all__ = ["PULL_MARGIN", "Reconciled", "pull_since", "reconcile"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Reconciled:
    """What a pull from Label Studio changed in the store."""

    tasks: int = 0
    annotations: int = 0
    stored: int = 0
    unchanged: int = 0
    deleted_annotations: int = 0
    deleted_tasks: int = 0
    restored_tasks: int = 0
    restored_annotations: int = 0
    # tasks missing from the pull's list that Label Studio still answers for (the pages
    # shifted under deletions while they were read): not taken for deleted
    unlisted_tasks: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# A pull asks for tasks updated since the last pull minus this margin (clock skew).
PULL_MARGIN = timedelta(minutes=2)


def pull_since(db: Session, project_id: int) -> datetime | None:
    """Where the next incremental pull of a project starts (None: never pulled)."""
    state = db.get(SyncState, project_id)
    if state is None or state.last_pull is None:
        return None
    return state.last_pull - PULL_MARGIN


def _drop_false_tombstones(db: Session, listed: list[int], began: datetime) -> int:
    """Drop the tombstones of annotations the store never saw (a deletion that came
    first) recorded before the pull began, among ``listed``, which Label Studio lists:
    not deleted, after all (a deletion forged in trusted mode, of ids to come). The
    pulled versions are then stored as new. Returns how many."""
    if not listed:
        return 0
    false = [
        a
        for a, received in db.exec(
            select(Annotation.id, Annotation.received_at).where(
                col(Annotation.id).in_(listed),
                col(Annotation.deleted).is_(True),
                col(Annotation.created_at).is_(None),
            )
        ).all()
        if _utc(received) < began
    ]
    if false:
        db.exec(delete(Annotation).where(col(Annotation.id).in_(false)))  # type: ignore[call-overload]
    return len(false)


def reconcile(
    db: Session,
    project_id: int,
    pulled: Iterable[tuple[int, list[dict[str, Any]]]],
    taxonomy: Taxonomy,
    *,
    full: bool,
    started: datetime | None = None,
    exists: Callable[[Sequence[int]], set[int]] | None = None,
) -> Reconciled:
    """Apply what a pull from Label Studio found: annotations webhooks missed, and deletions.

    ``pulled`` yields each task id with its annotations as webhook-shaped payloads. An
    annotation the store has for a pulled task but Label Studio no longer lists is recorded
    as deleted; with ``full``, so is every stored task the pull did not see and that
    ``exists`` (the ids Label Studio still has, in any project) does not find.
    """
    report = Reconciled()
    seen_tasks: set[int] = set()
    # an annotation stored after the pull began may be missing from Label Studio's answer
    # only because it was made after that answer: it is never taken for a deletion
    began = started or _now()
    for task_id, events in pulled:
        report.tasks += 1
        seen_tasks.add(task_id)
        report.restored_annotations += _drop_false_tombstones(
            db, [int(p["annotation"]["id"]) for p in events], began
        )
        live = set()
        for payload in events:
            live.add(int(payload["annotation"]["id"]))
            report.annotations += 1
            applied = apply_event(db, payload, taxonomy)
            report.stored += applied.stored
            report.unchanged += applied.ignored is not None
            for reason, n in applied.skipped.items():
                report.skipped[reason] = report.skipped.get(reason, 0) + n
        stored = {
            annotation_id
            for annotation_id, received in db.exec(
                select(Annotation.id, Annotation.received_at).where(
                    Annotation.task_id == task_id, col(Annotation.deleted).is_(False)
                )
            ).all()
            if _utc(received) < began
        }
        gone = sorted(stored - live)
        if gone:
            delete_annotations(db, project_id, gone)
            report.deleted_annotations += len(gone)
        # end the transaction before the pull fetches the next page from Label Studio: on
        # SQLite an open transaction holds the one write lock (imports and the applier wait)
        db.commit()
    # a task Label Studio lists that the store holds deleted since before the pull began:
    # a new task under a deleted one's id (Label Studio on SQLite reuses the last id)
    if seen_tasks:
        back = db.exec(
            select(Task.id).where(
                col(Task.id).in_(sorted(seen_tasks)),
                col(Task.deleted).is_(True),
                or_(col(Task.deleted_at).is_(None), col(Task.deleted_at) < began),
            )
        ).all()
        if back:
            db.exec(  # type: ignore[call-overload]
                update(Task)
                .where(col(Task.id).in_(list(back)))
                .values(deleted=False, deleted_at=None)
            )
            db.commit()
            report.restored_tasks = len(back)
    if full:
        # the project's hidden repeats are filed under -P (api.repeats) but are its tasks
        both = [project_id, -project_id]
        stored_tasks = set(
            db.exec(
                select(Task.id).where(col(Task.project_id).in_(both), col(Task.deleted).is_(False))
            ).all()
        )
        recent = set(
            db.exec(
                select(Annotation.task_id).where(
                    col(Annotation.project_id).in_(both), Annotation.received_at >= began
                )
            ).all()
        )
        missing = sorted(stored_tasks - seen_tasks - recent)
        if missing and exists is not None:
            # a task the list missed (tasks deleted while it was paged shift the pages) is
            # not deleted: kept as it was, with its pin and annotations
            db.commit()  # the store's read ended before asking Label Studio (SQLite)
            held = exists(missing)
            report.unlisted_tasks = len(held)
            missing = [t for t in missing if t not in held]
        if missing:
            delete_tasks(db, project_id, missing)
            report.deleted_tasks = len(missing)
    state = db.get(SyncState, project_id) or SyncState(project_id=project_id)
    state.last_pull = started or _now()
    if full:
        state.last_full_pull = state.last_pull
    db.add(state)
    db.commit()
    return report
