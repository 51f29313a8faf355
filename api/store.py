"""The service's store operations: apply Label Studio events, read judgements, agreement.

These are the public functions the routes (and the exporters) call; they raise domain
errors, never HTTP ones.

Applying events is idempotent and order-safe: an annotation is replaced only by a version
with a newer ``updated_at``; a deletion leaves a tombstone, so a create delivered after its
delete changes nothing.

Events are checked first (:func:`parse_event`: every malformed field is found before the
store is touched), then applied in order, one or many in a transaction
(:func:`apply_events`: the webhook's group commit applies every waiting event at once).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from annotate import incremental
from api import pins, repeats
from api.db import lock as lock
from api.events import ANNOTATION_ACTIONS as ANNOTATION_ACTIONS
from api.events import Event as Event
from api.events import PayloadError as PayloadError
from api.events import Version as Version
from api.events import data_hash, decode_version, result_hash
from api.events import parse_event as parse_event
from api.events import parse_time as parse_time
from api.events import task_of as _task_of
from api.models import (
    AdjudicationLink,
    AdjudicationProject,
    Annotation,
    Judgement,
    PinnedTask,
    ProjectReport,
    ShiftEventRow,
    Task,
)
from api.queries import NotFound as NotFound
from api.queries import agreement as agreement
from api.queries import check_dimension as check_dimension
from api.queries import codes_of as codes_of
from api.queries import count_judgements as count_judgements
from api.queries import iter_judgements as iter_judgements
from api.queries import iter_tasks as iter_tasks
from api.queries import judgement_matrix as judgement_matrix
from api.queries import live_judgements as live_judgements
from api.queries import projects as projects
from api.queries import recompute_sums as recompute_sums
from api.queries import skipped as skipped
from api.queries import stored_sums as stored_sums
from api.queries import turn_labels as turn_labels
from api.statements import (
    ANNOTATION_COLUMNS,
    ANNOTATION_CONFLICT,
    JUDGEMENT_COLUMNS,
    OWN_COLUMNS,
    SUM_COLUMNS,
    SUM_CONFLICT,
    TASK_COLUMNS,
    TASK_CONFLICT,
    annotation_statement,
    bulk,
    own_fields,
    row_tuples,
    state_statement,
    task_statement,
    tombstone_statement,
)
from schemas.taxonomy import Taxonomy


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


def _insert(db: Session) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


def upsert_task(db: Session, project_id: int, task: Mapping[str, Any]) -> tuple[int, dict]:
    """Store (or refresh) a task's data in one statement; (task id, data)."""
    task_id, data = _task_of(task)
    db.connection().execute(
        task_statement(db.get_bind().dialect.name), [_task_row(project_id, task_id, data)]
    )
    return task_id, data


def _task_row(project_id: int, task_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": task_id,
        "project_id": project_id,
        "data": data,
        "clip_id": _text(data.get("clip_id")),
        "session_id": _text(data.get("session_id")),
        "deleted": False,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# an annotation as stored: (deleted, updated_at, created_at)
_State = tuple[bool, datetime | None, datetime | None]


def _reused(state: _State, version: Version) -> bool:
    """Whether a version under a deleted annotation's id is another annotation: both
    creation times known and different."""
    stored, given = state[2], version.created_at
    if stored is None or given is None:
        return False
    return _utc(stored) != _utc(given)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_sums(db: Session, project_id: int, changes: Mapping[tuple[str, str], float]) -> None:
    """Add ``{(dimension, key): amount}`` to the stored agreement sums (upsert)."""
    _add_sums(db, {(project_id, dim, key): amount for (dim, key), amount in changes.items()})


def _add_sums(db: Session, changes: Mapping[tuple[int, str, str], float]) -> None:
    # sorted, so that concurrent writers take the rows' locks in one order (no deadlocks);
    # one fixed statement executed for many rows, so it is compiled once
    rows = [(*key, amount) for key, amount in sorted(changes.items()) if amount]
    if rows:
        dialect = db.get_bind().dialect.name
        bulk(db.connection(), dialect, "agreement_sum", SUM_COLUMNS, rows, SUM_CONFLICT)


# ---------------------------------------------------------------------------- events


# a unit: (project, turn, dimension)
_Unit = tuple[int, str, str]


class _Batch:
    """Applies events in order to an in-memory copy of the rows they touch, then writes the
    result in a few statements: the touched annotations and units are read once, the
    judgements inserted in one statement (PostgreSQL) or one executemany (SQLite), the
    change of the agreement sums summed over the batch and upserted once.

    The outcome equals applying the events one by one. On PostgreSQL the batch first takes
    a transaction-scoped advisory lock per project, so concurrent writers (threads, worker
    processes) apply one project's events one transaction after the other. TASKS_DELETED
    must come alone (see :func:`apply_events`).
    """

    def __init__(self, db: Session, events: Sequence[Event]) -> None:
        self.db = db
        self.connection = db.connection()
        self.dialect = db.get_bind().dialect.name
        # a project's hidden repeats (under -P) share its lock: a deletion names +P
        lock(db, {f"p{abs(e.project_id)}" for e in events})
        ids: set[int] = set()
        turns: dict[int, set[str]] = defaultdict(set)
        for e in events:
            if e.annotation is not None:
                ids.add(e.annotation.id)
                turns[e.project_id].update(e.annotation.turns)
            elif e.action == "ANNOTATIONS_DELETED":
                ids.update(e.ids)
            elif e.action == "TASKS_DELETED":
                ids.update(self._annotations_of_tasks(e.ids))
        # annotation id -> (deleted, updated_at, created_at) as stored
        self.stored: dict[int, _State] = self._annotations(ids)
        # the values of every touched unit, by annotation
        self.units: dict[_Unit, dict[int, str]] = defaultdict(dict)
        self.owned: dict[int, list[_Unit]] = defaultdict(list)
        self._load_units(turns, ids)
        self.before: dict[_Unit, list[str]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.rewritten: dict[int, dict[str, Any]] = {}  # annotation rows to upsert
        self.tombstones: dict[int, int] = {}  # annotation id -> project of a deletion
        self.cleared: set[int] = set()  # annotations whose stored rows are replaced
        self.inserts: dict[int, list[tuple[Any, ...]]] = {}
        self.shifts: dict[int, list[dict[str, Any]]] = {}
        self.deleted_tasks: list[int] = []
        self.reused: set[int] = set()  # deleted ids Label Studio gave a new annotation

    # -- reading

    def _annotations_of_tasks(self, task_ids: Iterable[int]) -> list[int]:
        return list(
            self.db.exec(
                select(Annotation.id).where(col(Annotation.task_id).in_(sorted(set(task_ids))))
            ).all()
        )

    def _annotations(self, ids: set[int]) -> dict[int, _State]:
        if not ids:
            return {}
        rows = self.connection.execute(state_statement(), {"ids": sorted(ids)})
        return {i: (bool(deleted), updated, created) for i, deleted, updated, created in rows}

    def _load_units(self, turns: Mapping[int, set[str]], ids: set[int]) -> None:
        """Read the touched units: the turns of the events' tasks, and wherever the
        events' annotations have judgements now."""
        loaded: set[tuple[int, str]] = set()
        rows: list[tuple[Any, ...]] = []
        projects = sorted(turns) or [None]
        for k, project_id in enumerate(projects):
            wanted = sorted(turns.get(project_id, ())) if project_id is not None else []
            rows += self._select_units(project_id, wanted, sorted(ids) if k == 0 else [])
            loaded.update((project_id, t) for t in wanted)
        missing: dict[int, set[str]] = defaultdict(set)
        for project_id, turn_id, *_ in rows:
            if (project_id, turn_id) not in loaded:
                missing[project_id].add(turn_id)
        for project_id, extra in sorted(missing.items()):
            rows += self._select_units(project_id, sorted(extra), [])
        seen: set[tuple[_Unit, int]] = set()
        for project_id, turn_id, dimension, annotation_id, value in rows:
            unit = (project_id, turn_id, dimension)
            if (unit, annotation_id) in seen:
                continue
            seen.add((unit, annotation_id))
            self.units[unit][annotation_id] = value
            self.owned[annotation_id].append(unit)

    def _select_units(
        self, project_id: int | None, turn_ids: list[str], annotation_ids: list[int]
    ) -> list[tuple[Any, ...]]:
        if not turn_ids and not annotation_ids:
            return []
        if self.dialect == "postgresql":
            # joins against the wanted keys, not "turn_id = ANY(..) OR annotation_id =
            # ANY(..)": with statistics behind a fast-growing table, PostgreSQL planned
            # that as a scan of the whole table (100 ms instead of 15 ms a batch)
            sql = (
                "SELECT j.project_id, j.turn_id, j.dimension, j.annotation_id, j.value "
                "FROM unnest(%s::text[]) AS w(turn_id) JOIN judgement j "
                "ON j.project_id = %s AND j.turn_id = w.turn_id "
                "UNION ALL "
                "SELECT j.project_id, j.turn_id, j.dimension, j.annotation_id, j.value "
                "FROM unnest(%s::int[]) AS a(id) JOIN judgement j ON j.annotation_id = a.id"
            )
            params: tuple[Any, ...] = (turn_ids, project_id or 0, annotation_ids)
        else:
            sql = (
                "SELECT project_id, turn_id, dimension, annotation_id, value FROM judgement "
                "WHERE (project_id = ? AND turn_id IN (SELECT value FROM json_each(?))) "
                "OR annotation_id IN (SELECT value FROM json_each(?))"
            )
            params = (project_id or 0, json.dumps(turn_ids), json.dumps(annotation_ids))
        cursor = self.connection.connection.cursor()  # the driver's own: plain tuples, fast
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()

    # -- applying, in memory

    def _touch(self, unit: _Unit) -> dict[int, str]:
        values = self.units[unit]
        if unit not in self.before:
            self.before[unit] = sorted(values.values())
        return values

    def _clear(self, annotation_id: int) -> int:
        """Drop an annotation's judgements and shifts; how many judgements it had."""
        units = self.owned.pop(annotation_id, [])
        for unit in units:
            self._touch(unit).pop(annotation_id, None)
        self.inserts.pop(annotation_id, None)
        self.shifts.pop(annotation_id, None)
        if annotation_id in self.stored or units:
            self.cleared.add(annotation_id)
        return len(units)

    def annotation(self, event: Event) -> Applied:
        version = event.annotation
        if version is None:  # parse_event gives every annotation event its version
            raise PayloadError(f"{event.action}: the event has no annotation")
        applied = Applied("annotation")
        self.tasks[version.task_id] = _task_row(
            event.project_id, version.task_id, version.task_data
        )
        state = self.stored.get(version.id)
        if state is not None and state[0] and _reused(state, version):
            # Label Studio on SQLite gives a new annotation the id of the last one deleted:
            # another creation time, so not the deleted one delivered late
            self.reused.add(version.id)
            self.rewritten.pop(version.id, None)  # the deleted one's, in this batch
            self.tombstones.pop(version.id, None)  # its deletion is not the new one's
            state = None
        if state is not None and state[0]:
            applied.ignored = "deleted"
            return applied
        if (
            state is not None
            and state[1] is not None
            and version.updated_at is not None
            and state[1] >= version.updated_at
        ):
            applied.ignored = "not newer"
            return applied
        applied.removed = self._clear(version.id)
        applied.skipped = dict(version.skipped)
        if not version.was_cancelled:
            project_id = event.project_id
            self.inserts[version.id] = [(project_id, *row) for row in version.rows]
            self.shifts[version.id] = [{"project_id": project_id, **s} for s in version.shifts]
            owned = self.owned[version.id]
            for row in version.rows:
                unit = (project_id, row[3], row[4])
                self._touch(unit)[version.id] = row[5]
                owned.append(unit)
            applied.stored = len(version.rows)
        previous = self.rewritten.get(version.id)
        digest = result_hash(version)
        now = _now()
        mine = own_fields(version, digest, now, previous)
        self.rewritten[version.id] = {
            "id": version.id,
            "project_id": previous["project_id"] if previous else event.project_id,
            "task_id": version.task_id,
            "annotator": version.annotator,
            "was_cancelled": version.was_cancelled,
            "ground_truth": version.ground_truth,
            "created_at": version.created_at,
            "updated_at": version.updated_at,
            "deleted": False,
            "lead_time": version.lead_time,
            "updated_by": version.updated_by,
            **mine,
            "result_hash": digest,
            "received_at": now,
            "skipped": dict(applied.skipped),
        }
        self.stored[version.id] = (False, version.updated_at, version.created_at)
        return applied

    def delete(self, project_id: int, annotation_ids: Iterable[int], action: str) -> Applied:
        applied = Applied(action)
        for annotation_id in annotation_ids:
            applied.removed += self._clear(annotation_id)
            state = self.stored.get(annotation_id)
            self.stored[annotation_id] = (True, *(state[1:] if state else (None, None)))
            self.reused.discard(annotation_id)
            self.tombstones.setdefault(annotation_id, project_id)
        return applied

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> Applied:
        applied = self.delete(project_id, self._annotations_of_tasks(task_ids), "delete tasks")
        self.deleted_tasks.extend(task_ids)
        return applied

    # -- writing

    def write(self) -> None:
        """Write what the events changed: a few statements whatever the batch size."""
        conn, postgres = self.connection, self.dialect == "postgresql"
        if self.tasks:
            tasks = [self.tasks[t] for t in sorted(self.tasks)]
            if postgres:
                bulk(
                    conn,
                    self.dialect,
                    "task",
                    TASK_COLUMNS,
                    row_tuples(tasks, TASK_COLUMNS),
                    TASK_CONFLICT,
                )
            else:
                conn.execute(task_statement(self.dialect), tasks)
            self._note_tampering()
        if self.cleared:
            cleared = sorted(self.cleared)
            conn.execute(delete(Judgement).where(col(Judgement.annotation_id).in_(cleared)))
            conn.execute(delete(ShiftEventRow).where(col(ShiftEventRow.annotation_id).in_(cleared)))
        rows = [
            row for annotation_id in sorted(self.inserts) for row in self.inserts[annotation_id]
        ]
        if rows:
            bulk(conn, self.dialect, "judgement", JUDGEMENT_COLUMNS, rows)
        shifts = [s for annotation_id in sorted(self.shifts) for s in self.shifts[annotation_id]]
        if shifts:
            conn.execute(ShiftEventRow.__table__.insert(), shifts)  # type: ignore[attr-defined]
        if self.rewritten:
            annotations = [self.rewritten[a] for a in sorted(self.rewritten)]
            if postgres:
                bulk(
                    conn,
                    self.dialect,
                    "annotation",
                    ANNOTATION_COLUMNS,
                    row_tuples(annotations, ANNOTATION_COLUMNS),
                    ANNOTATION_CONFLICT,
                )
            else:
                conn.execute(annotation_statement(self.dialect), annotations)
        for annotation_id in sorted(self.reused):  # the upsert keeps these: another one's
            row = self.rewritten[annotation_id]
            self.db.exec(  # type: ignore[call-overload]
                update(Annotation)
                .where(col(Annotation.id) == annotation_id)
                .values(
                    deleted=False,
                    project_id=row["project_id"],
                    **{c: row[c] for c in OWN_COLUMNS},
                )
            )
        if self.tombstones:
            now = _now()
            conn.execute(
                tombstone_statement(self.dialect),
                [
                    {"id": a, "project_id": p, "received_at": now, "deleted": True, "skipped": {}}
                    for a, p in sorted(self.tombstones.items())
                ],
            )
        if self.deleted_tasks:
            gone = sorted(set(self.deleted_tasks))
            self.db.exec(  # type: ignore[call-overload]
                update(Task).where(col(Task.id).in_(gone)).values(deleted=True, deleted_at=_now())
            )
            # Label Studio on SQLite gives a new task a deleted one's id: the new task must
            # not be read against the deleted one's pinned data (the import pins it anew)
            conn.execute(delete(PinnedTask).where(col(PinnedTask.task_id).in_(gone)))
        changes = self._changes()
        if changes:
            bulk(conn, self.dialect, "agreement_sum", SUM_COLUMNS, changes, SUM_CONFLICT)

    def _note_tampering(self) -> None:
        """Mark, for good, the adjudication links whose task now holds other data than was
        sent (:func:`api.events.data_hash`): the adjudicator may have decided on what a
        member put there, even if the member puts the data back before the next event."""
        links = self.db.exec(
            select(
                AdjudicationLink.id,
                AdjudicationLink.adjudication_task_id,
                AdjudicationLink.sent_hash,
            ).where(
                col(AdjudicationLink.adjudication_task_id).in_(sorted(self.tasks)),
                col(AdjudicationLink.tampered_at).is_(None),
                col(AdjudicationLink.sent_hash).is_not(None),
            )
        ).all()
        changed = [
            link_id
            for link_id, task_id, sent in links
            if data_hash(self.tasks[task_id]["data"] or {}) != sent
        ]
        if changed:
            self.db.exec(  # type: ignore[call-overload]
                update(AdjudicationLink)
                .where(col(AdjudicationLink.id).in_(changed))
                .values(tampered_at=_now())
            )

    def _changes(self) -> list[tuple[int, str, str, float]]:
        """The change of the agreement sums over the batch, as rows sorted by key."""
        changes: dict[tuple[int, str, str], float] = defaultdict(float)
        for unit, before in self.before.items():
            after = tuple(sorted(self.units[unit].values()))
            if after == tuple(before):
                continue
            project_id, _, dimension = unit
            for key, value in _delta(tuple(before), after):
                changes[(project_id, dimension, key)] += value
        return [(*key, value) for key, value in sorted(changes.items()) if value]


@functools.lru_cache(maxsize=1 << 16)
def _delta(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """``incremental.delta``, remembered: units take few distinct value combinations."""
    return tuple(incremental.delta(before, after).items())


def apply_events(
    db: Session, events: Sequence[Event], taxonomy: Taxonomy | None = None
) -> list[Applied]:
    """Apply checked events in order inside the session's transaction (no commit).

    The result equals applying them one by one, in far fewer statements: the webhook's
    group commit applies every event waiting at once in one transaction. A TASKS_DELETED
    event is applied on its own (the events before it are written first). The events of
    hidden repeats go under the negated project id (:func:`api.repeats.divert`). With
    ``taxonomy``, annotations on tasks the import pinned are read against the pinned data
    (:func:`api.pins.pin_events`); every service path passes it.
    """
    if taxonomy is not None:
        events = pins.pin_events(db, events, taxonomy)
    events = repeats.divert(db, events)
    results: list[Applied] = []
    start = 0
    while start < len(events):
        end = start
        if events[start].action == "TASKS_DELETED":
            end = start + 1
        else:
            while end < len(events) and events[end].action != "TASKS_DELETED":
                end += 1
        results += _apply_segment(db, events[start:end])
        start = end
    return results


def _apply_segment(db: Session, events: Sequence[Event]) -> list[Applied]:
    batch = _Batch(db, events)
    results = []
    for event in events:
        if event.action in ANNOTATION_ACTIONS:
            results.append(batch.annotation(event))
        elif event.action == "ANNOTATIONS_DELETED":
            results.append(batch.delete(event.project_id, event.ids, "delete"))
        elif event.action == "TASKS_DELETED":
            results.append(batch.delete_tasks(event.project_id, event.ids))
        elif event.action == "PROJECT_UPDATED" and event.settings is not None:
            results.append(_report_project(db, event))
        else:
            results.append(Applied(event.action, ignored="action not tracked"))
    batch.write()
    return results


def apply_annotation(
    db: Session,
    project_id: int,
    annotation: Mapping[str, Any],
    task: Mapping[str, Any],
    taxonomy: Taxonomy,
) -> Applied:
    """Store one annotation's judgements unless a newer or deleted version is stored
    (no commit)."""
    event = Event("ANNOTATION_UPDATED", project_id, decode_version(annotation, task, taxonomy))
    return apply_events(db, [event], taxonomy)[0]


def delete_annotations(db: Session, project_id: int, annotation_ids: list[int]) -> Applied:
    """Record deletions (tombstones for unknown ids) and drop their judgements (no commit)."""
    return apply_events(db, [Event("ANNOTATIONS_DELETED", project_id, ids=tuple(annotation_ids))])[
        0
    ]


def _report_project(db: Session, event: Event) -> Applied:
    """Keep an adjudication project's settings as Label Studio reported them, for the
    sender's next check (:mod:`annotate.adjudication_guard`); other projects' reports
    change nothing."""
    if db.get(AdjudicationProject, event.project_id) is None:
        return Applied(event.action, ignored="not an adjudication project")
    db.add(
        ProjectReport(
            project_id=event.project_id, received_at=_now(), fields=dict(event.settings or {})
        )
    )
    return Applied(event.action)


def delete_tasks(db: Session, project_id: int, task_ids: list[int]) -> Applied:
    """Record the deletion of tasks and of all their annotations (no commit)."""
    return apply_events(db, [Event("TASKS_DELETED", project_id, ids=tuple(task_ids))])[0]


def apply_event(db: Session, payload: Mapping[str, Any], taxonomy: Taxonomy) -> Applied:
    """Apply one Label Studio webhook payload and commit; nothing is half-applied."""
    event = parse_event(payload, taxonomy)
    try:
        (applied,) = apply_events(db, [event], taxonomy)
        db.commit()
    except Exception:
        db.rollback()
        raise
    return applied
