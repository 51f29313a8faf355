"""Tasks pinned at import: the data the import pushed is what events are read against.

Label Studio lets every member of the organisation edit a task's ``data`` (the dialogue,
its turn ids, ``clip_id``), and each webhook carries the task as it is now. Read against
that, an edit moves judgements onto other turns or clips, and with them the agreement
figures, the adjudication queue, gold and the exports. So the import keeps each task it
pushes here, by Label Studio task id (:func:`record_pins`); an event on a pinned task whose
data differs is decoded again against the pinned data (:func:`pin_events`), and the
task's ``changed_at`` notes when that was first seen. Tasks the import did not push (made
in Label Studio by hand, or imported before pins existed) are read as they come.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import update
from sqlmodel import Session, col, select

from api.db import request_session
from api.events import Event, data_hash, decode_version
from api.models import PinnedTask
from schemas.taxonomy import Taxonomy

__all__ = ["changed_tasks", "copy_pins", "pin_events", "record_pins", "register"]


def record_pins(db: Session, project_id: int, pins: Mapping[int, Mapping[str, Any]]) -> int:
    """Pin ``{task id: data as pushed}`` in ``project_id`` (a task pushed again with other
    data is pinned anew, and its ``changed_at`` cleared). Returns how many rows changed.
    The caller commits."""
    if not pins:
        return 0
    held = {
        row.task_id: row
        for row in db.exec(select(PinnedTask).where(col(PinnedTask.task_id).in_(list(pins))))
    }
    now = datetime.now(UTC)
    changed = 0
    for task_id, data in sorted(pins.items()):
        digest = data_hash(data)
        row = held.get(task_id)
        if row is not None and row.project_id == project_id and row.data_hash == digest:
            continue
        row = row or PinnedTask(task_id=task_id, project_id=project_id, data_hash=digest)
        row.project_id, row.data, row.data_hash = project_id, dict(data), digest
        row.pinned_at, row.changed_at = now, None
        db.add(row)
        changed += 1
    db.flush()
    return changed


def copy_pins(source: Session, target: Session, project_id: int) -> dict[int, dict[str, Any]]:
    """Copy ``project_id``'s pins from the ``source`` store into ``target`` (the offline
    export's scratch store, so a Label Studio export file is read as imported too), with
    when each was seen changed; returns ``{task id: pinned data}``. The caller commits."""
    rows = source.exec(select(PinnedTask).where(PinnedTask.project_id == project_id)).all()
    for row in rows:
        target.merge(PinnedTask(**row.model_dump()))
    target.flush()
    return {row.task_id: dict(row.data) for row in rows}


def pin_events(db: Session, events: Sequence[Event], taxonomy: Taxonomy) -> list[Event]:
    """``events`` with every annotation on a pinned task read against the pinned data
    (decoded again when the event carried other data); notes the first time a task's data
    was seen changed. Events of other tasks pass as they are."""
    wanted = {e.annotation.task_id for e in events if e.annotation is not None}
    if not wanted:
        return list(events)
    pins = {
        row.task_id: row
        for row in db.exec(select(PinnedTask).where(col(PinnedTask.task_id).in_(sorted(wanted))))
    }
    if not pins:
        return list(events)
    out, changed = [], set()
    for event in events:
        version = event.annotation
        pin = pins.get(version.task_id) if version is not None else None
        if (
            version is None
            or pin is None
            or pin.project_id != event.project_id
            or data_hash(version.task_data) == pin.data_hash
        ):
            out.append(event)
            continue
        if pin.changed_at is None:
            changed.add(pin.task_id)
        again = decode_version(version.source, {"id": version.task_id, "data": pin.data}, taxonomy)
        out.append(dataclasses.replace(event, annotation=again))
    if changed:
        db.exec(  # type: ignore[call-overload]
            update(PinnedTask)
            .where(col(PinnedTask.task_id).in_(sorted(changed)))
            .values(changed_at=datetime.now(UTC))
        )
    return out


def changed_tasks(db: Session, project_id: int) -> list[dict[str, Any]]:
    """The project's pinned tasks whose data was seen changed in Label Studio."""
    rows = db.exec(
        select(PinnedTask)
        .where(PinnedTask.project_id == project_id, col(PinnedTask.changed_at).is_not(None))
        .order_by(col(PinnedTask.task_id))
    ).all()
    return [
        {"task": r.task_id, "clip": r.data.get("clip_id"), "changed_at": r.changed_at} for r in rows
    ]


def register(reads: APIRouter) -> None:
    """Add ``GET /projects/{id}/changed-tasks`` to ``reads`` (the API-key protected
    router)."""

    @reads.get("/projects/{project_id}/changed-tasks")
    def changed(
        project_id: int, db: Annotated[Session, Depends(request_session)]
    ) -> dict[str, Any]:
        """The imported tasks whose data someone changed in Label Studio (``data``: task,
        clip as imported, when first seen); their annotations are read as imported."""
        found = changed_tasks(db, project_id)
        return {"count": len(found), "data": found}
