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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from annotate import incremental
from annotate.agreement import pivot
from api import repeats
from api.models import AgreementSum, Annotation, Judgement, ShiftEventRow, SyncState, Task
from schemas.codec import JudgementRow, annotator_of, decode_rows
from schemas.errors import AnnotateError
from schemas.taxonomy import Dimension, Taxonomy

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


def _insert(db: Session) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


def upsert_task(db: Session, project_id: int, task: Mapping[str, Any]) -> tuple[int, dict]:
    """Store (or refresh) a task's data in one statement; (task id, data)."""
    task_id, data = _task_of(task)
    db.connection().execute(
        _task_statement(db.get_bind().dialect.name), [_task_row(project_id, task_id, data)]
    )
    return task_id, data


def _task_of(task: Mapping[str, Any]) -> tuple[int, dict]:
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


@functools.cache
def _task_statement(dialect: str) -> Any:
    """Insert a task, or refresh its data (a deleted task stays deleted)."""
    table = Task.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={c: statement.excluded[c] for c in ("project_id", "data", "clip_id", "session_id")},
    )


def lock(db: Session, keys: Iterable[str]) -> None:
    """Serialise writers on ``keys`` until the transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in sorted order (no deadlocks).
    SQLite: writers are serialised already (each transaction begins IMMEDIATE).
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    ordered = sorted(set(keys))
    if ordered:
        db.exec(  # type: ignore[call-overload]
            text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
            ),
            params={"keys": ordered},
        )


def add_sums(db: Session, project_id: int, changes: Mapping[tuple[str, str], float]) -> None:
    """Add ``{(dimension, key): amount}`` to the stored agreement sums (upsert)."""
    _add_sums(db, {(project_id, dim, key): amount for (dim, key), amount in changes.items()})


def _add_sums(db: Session, changes: Mapping[tuple[int, str, str], float]) -> None:
    # sorted, so that concurrent writers take the rows' locks in one order (no deadlocks);
    # one fixed statement executed for many rows, so it is compiled once
    rows = [(*key, amount) for key, amount in sorted(changes.items()) if amount]
    if rows:
        dialect = db.get_bind().dialect.name
        _bulk(db.connection(), dialect, "agreement_sum", _SUM_COLUMNS, rows, _SUM_CONFLICT)


# ---------------------------------------------------------------------------- events


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
        return Event(action, project_id, _version(annotation, task, taxonomy))
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
    return Event(action, project_id)


def _item(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _version(annotation: Mapping[str, Any], task: Mapping[str, Any], taxonomy: Taxonomy) -> Version:
    annotation_id = _need(annotation, "id", int, "annotation.")
    updated = parse_time(annotation.get("updated_at"), "annotation.updated_at")
    task_id, task_data = _task_of(task)
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
    )


def _user_of(value: Any) -> str | None:
    """A user id as Label Studio gives it (an int, or an object with ``id``), as text."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        return None
    return str(value)


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
        self.stored: dict[int, tuple[bool, datetime | None]] = self._annotations(ids)
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

    # -- reading

    def _annotations_of_tasks(self, task_ids: Iterable[int]) -> list[int]:
        return list(
            self.db.exec(
                select(Annotation.id).where(col(Annotation.task_id).in_(sorted(set(task_ids))))
            ).all()
        )

    def _annotations(self, ids: set[int]) -> dict[int, tuple[bool, datetime | None]]:
        if not ids:
            return {}
        rows = self.connection.execute(_state_statement(), {"ids": sorted(ids)})
        return {i: (bool(deleted), updated) for i, deleted, updated in rows}

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
            "received_at": _now(),
            "skipped": dict(applied.skipped),
        }
        self.stored[version.id] = (False, version.updated_at)
        return applied

    def delete(self, project_id: int, annotation_ids: Iterable[int], action: str) -> Applied:
        applied = Applied(action)
        for annotation_id in annotation_ids:
            applied.removed += self._clear(annotation_id)
            state = self.stored.get(annotation_id)
            self.stored[annotation_id] = (True, state[1] if state else None)
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
                _bulk(
                    conn,
                    self.dialect,
                    "task",
                    _TASK_COLUMNS,
                    _rows(tasks, _TASK_COLUMNS),
                    _TASK_CONFLICT,
                )
            else:
                conn.execute(_task_statement(self.dialect), tasks)
        if self.cleared:
            cleared = sorted(self.cleared)
            conn.execute(delete(Judgement).where(col(Judgement.annotation_id).in_(cleared)))
            conn.execute(delete(ShiftEventRow).where(col(ShiftEventRow.annotation_id).in_(cleared)))
        rows = [
            row for annotation_id in sorted(self.inserts) for row in self.inserts[annotation_id]
        ]
        if rows:
            _bulk(conn, self.dialect, "judgement", _JUDGEMENT_COLUMNS, rows)
        shifts = [s for annotation_id in sorted(self.shifts) for s in self.shifts[annotation_id]]
        if shifts:
            conn.execute(ShiftEventRow.__table__.insert(), shifts)  # type: ignore[attr-defined]
        if self.rewritten:
            annotations = [self.rewritten[a] for a in sorted(self.rewritten)]
            if postgres:
                _bulk(
                    conn,
                    self.dialect,
                    "annotation",
                    _ANNOTATION_COLUMNS,
                    _rows(annotations, _ANNOTATION_COLUMNS),
                    _ANNOTATION_CONFLICT,
                )
            else:
                conn.execute(_annotation_statement(self.dialect), annotations)
        if self.tombstones:
            now = _now()
            conn.execute(
                _tombstone_statement(self.dialect),
                [
                    {"id": a, "project_id": p, "received_at": now, "deleted": True, "skipped": {}}
                    for a, p in sorted(self.tombstones.items())
                ],
            )
        if self.deleted_tasks:
            self.db.exec(  # type: ignore[call-overload]
                update(Task)
                .where(col(Task.id).in_(sorted(set(self.deleted_tasks))))
                .values(deleted=True)
            )
        changes = self._changes()
        if changes:
            _bulk(conn, self.dialect, "agreement_sum", _SUM_COLUMNS, changes, _SUM_CONFLICT)

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


# (column, PostgreSQL type) of the tables written in bulk
_JUDGEMENT_COLUMNS = (
    ("project_id", "int"),
    ("annotation_id", "int"),
    ("task_id", "int"),
    ("annotator", "text"),
    ("turn_id", "text"),
    ("dimension", "text"),
    ("value", "text"),
    ("taxonomy", "text"),
    ("taxonomy_version", "text"),
)
_SUM_COLUMNS = (("project_id", "int"), ("dimension", "text"), ("key", "text"), ("value", "float8"))
_SUM_CONFLICT = (
    "ON CONFLICT (project_id, dimension, key) DO UPDATE SET value = agreement_sum.value + "
    "excluded.value"
)
_TASK_COLUMNS = (
    ("id", "int"),
    ("project_id", "int"),
    ("data", "json"),
    ("clip_id", "text"),
    ("session_id", "text"),
    ("deleted", "bool"),
)
_TASK_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, data = excluded.data, "
    "clip_id = excluded.clip_id, session_id = excluded.session_id "
    # every event carries its task: rewrite the row only when it changed (an update that
    # changes nothing still writes a new row version, its index entries and its log)
    "WHERE (task.project_id, task.data::text, task.clip_id, task.session_id) IS DISTINCT "
    "FROM (excluded.project_id, excluded.data::text, excluded.clip_id, excluded.session_id)"
)
_ANNOTATION_COLUMNS = (
    ("id", "int"),
    ("project_id", "int"),
    ("task_id", "int"),
    ("annotator", "text"),
    ("was_cancelled", "bool"),
    ("ground_truth", "bool"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("deleted", "bool"),
    ("lead_time", "float8"),
    ("updated_by", "text"),
    ("received_at", "timestamptz"),
    ("skipped", "json"),
)
_ANNOTATION_CONFLICT = "ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}"
    for c, _ in _ANNOTATION_COLUMNS
    if c not in ("id", "project_id", "deleted")
)


def _rows(
    dicts: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    """Row tuples in the order of ``columns``; JSON columns serialised."""
    return [
        tuple(json.dumps(d[c]) if kind == "json" else d[c] for c, kind in columns) for d in dicts
    ]


def _bulk(
    conn: Any,
    dialect: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    conflict: str = "",
) -> None:
    """Insert many rows in one statement: on PostgreSQL ``COPY`` (no ``conflict``) or an
    ``INSERT ... SELECT`` from one array per column (one round trip, one execution), on
    SQLite one executemany."""
    names = ", ".join(c for c, _ in columns)
    if dialect == "postgresql" and not conflict:
        # COPY parses and inserts rows about twice as fast as INSERT ... SELECT FROM
        # unnest (judgements: 48 rows per event, most of the database's work per event)
        sql = f"COPY {table} ({names}) FROM STDIN"
        driver = conn.dialect.loaded_dbapi
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except driver.Error as exc:  # raised as SQLAlchemy raises the driver's errors
            invalidated = bool(getattr(conn.connection.dbapi_connection, "closed", False))
            raise DBAPIError.instance(
                sql, None, exc, driver.Error, connection_invalidated=invalidated
            ) from exc
        finally:
            cursor.close()
    elif dialect == "postgresql":
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {conflict}",
            tuple(list(values) for values in zip(*rows, strict=True)),
        )
    else:
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}", rows)


@functools.cache
def _state_statement() -> Any:
    table = Annotation.__table__  # type: ignore[attr-defined]
    return select(table.c.id, table.c.deleted, table.c.updated_at).where(
        table.c.id.in_(bindparam("ids", expanding=True))
    )


@functools.cache
def _annotation_statement(dialect: str) -> Any:
    """Insert an annotation, or overwrite the stored version (its project is kept)."""
    table = Annotation.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    kept = {"id", "project_id", "deleted"}
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={c.name: statement.excluded[c.name] for c in table.c if c.name not in kept},
    )


@functools.cache
def _tombstone_statement(dialect: str) -> Any:
    """Mark an annotation deleted (a tombstone when it was never seen)."""
    table = Annotation.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(index_elements=["id"], set_={"deleted": True})


def apply_events(db: Session, events: Sequence[Event]) -> list[Applied]:
    """Apply checked events in order inside the session's transaction (no commit).

    The result equals applying them one by one, in far fewer statements: the webhook's
    group commit applies every event waiting at once in one transaction. A TASKS_DELETED
    event is applied on its own (the events before it are written first). The events of
    hidden repeats go under the negated project id (:func:`api.repeats.divert`).
    """
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
    event = Event("ANNOTATION_UPDATED", project_id, _version(annotation, task, taxonomy))
    return apply_events(db, [event])[0]


def delete_annotations(db: Session, project_id: int, annotation_ids: list[int]) -> Applied:
    """Record deletions (tombstones for unknown ids) and drop their judgements (no commit)."""
    return apply_events(db, [Event("ANNOTATIONS_DELETED", project_id, ids=tuple(annotation_ids))])[
        0
    ]


def delete_tasks(db: Session, project_id: int, task_ids: list[int]) -> Applied:
    """Record the deletion of tasks and of all their annotations (no commit)."""
    return apply_events(db, [Event("TASKS_DELETED", project_id, ids=tuple(task_ids))])[0]


def apply_event(db: Session, payload: Mapping[str, Any], taxonomy: Taxonomy) -> Applied:
    """Apply one Label Studio webhook payload and commit; nothing is half-applied."""
    event = parse_event(payload, taxonomy)
    try:
        (applied,) = apply_events(db, [event])
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


def skipped(db: Session, project_id: int) -> dict[str, int]:
    """Result items of the project's live annotations that gave no judgement, by reason."""
    totals: dict[str, int] = {}
    rows = db.exec(
        select(Annotation.skipped).where(
            Annotation.project_id == project_id, col(Annotation.deleted).is_(False)
        )
    ).all()
    for counts in rows:
        for reason, n in (counts or {}).items():
            totals[reason] = totals.get(reason, 0) + int(n)
    return totals


def projects(db: Session) -> list[int]:
    """Ids of the projects the store has judgements or tasks for (not the negated ids that
    hold hidden repeats' second passes, :mod:`api.repeats`)."""
    ids = set(db.exec(select(Task.project_id).distinct()).all())
    ids |= set(db.exec(select(Judgement.project_id).distinct()).all())
    return sorted(i for i in ids if i >= 0)


def check_dimension(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> None:
    """Raise :class:`NotFound` listing what exists for an unknown project or dimension."""
    known = projects(db)
    if project_id not in known:
        raise NotFound(f"unknown project {project_id}; the store has {known}")
    if dimension not in {d.name for d in taxonomy.dimensions}:
        raise NotFound(
            f"unknown dimension {dimension!r}; expected one of "
            f"{[d.name for d in taxonomy.dimensions]}"
        )


def stored_sums(db: Session, project_id: int, dimension: str) -> dict[str, float]:
    """The incremental agreement sums of one project and dimension."""
    rows = db.exec(
        select(AgreementSum.key, AgreementSum.value).where(
            AgreementSum.project_id == project_id, AgreementSum.dimension == dimension
        )
    ).all()
    return dict(rows)


def codes_of(dim: Dimension) -> dict[str, float]:
    """Value -> number for the agreement metric of ``dim``."""
    if dim.kind == "choice":
        return {v: float(i) for i, v in enumerate(dim.values)}
    return {str(v): float(v) for v in dim.scale}


def agreement(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> dict[str, Any]:
    """The live figures of one dimension from the incremental sums (no scan of judgements).

    Krippendorff's alpha at the dimension's level, Gwet's AC1 and percent agreement, with
    the counts of judgements, units and annotators.
    """
    check_dimension(db, project_id, dimension, taxonomy)
    dim = taxonomy.dimension(dimension)
    live = incremental.figures(
        stored_sums(db, project_id, dimension),
        codes_of(dim),
        dim.level,
        len(dim.values) if dim.kind == "choice" else len(dim.scale),
    )
    counts = db.exec(
        select(
            func.count(),
            func.count(func.distinct(Judgement.turn_id)),
            func.count(func.distinct(Judgement.annotator)),
        ).where(Judgement.project_id == project_id, Judgement.dimension == dimension)
    ).one()
    return {
        "project": project_id,
        "dimension": dimension,
        "level": dim.level,
        "taxonomy": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "judgements": int(counts[0]),
        "units": int(counts[1]),
        "annotators": int(counts[2]),
        **live,
    }


def judgement_matrix(
    db: Session, project_id: int, dim: Dimension
) -> tuple[np.ndarray, list[str], list[str]]:
    """(annotators x units) codes of one dimension, with annotator and unit labels."""
    rows = db.exec(
        select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
            Judgement.project_id == project_id, Judgement.dimension == dim.name
        )
    ).all()
    if not rows:
        return np.empty((0, 0)), [], []
    codes = codes_of(dim)
    units, annotators, values = zip(*rows, strict=True)
    matrix, names, unit_ids = pivot(units, annotators, [codes[v] for v in values])
    return matrix, [str(n) for n in names], [str(u) for u in unit_ids]


def recompute_sums(db: Session, project_id: int) -> dict[str, dict[str, float]]:
    """The sums rebuilt from the judgements (the batch path the incremental one must equal)."""
    units: dict[tuple[str, str], list[str]] = defaultdict(list)
    rows = db.exec(
        select(Judgement.dimension, Judgement.turn_id, Judgement.value).where(
            Judgement.project_id == project_id
        )
    ).all()
    for dimension, turn_id, value in rows:
        units[(dimension, turn_id)].append(value)
    by_dim: dict[str, list[list[str]]] = defaultdict(list)
    for (dimension, _), values in units.items():
        by_dim[dimension].append(sorted(values))
    return {d: incremental.total_sums(v) for d, v in by_dim.items()}


def turn_labels(db: Session, project_id: int) -> dict[str, dict[str, dict[str, str]]]:
    """``{turn_id: {annotator: {dimension: value}}}`` for the project's live judgements."""
    table: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for j in iter_judgements(db, project_id):
        table[j.turn_id][j.annotator][j.dimension] = j.value
    return {turn: dict(by) for turn, by in table.items()}


@dataclass(slots=True)
class Reconciled:
    """What a pull from Label Studio changed in the store."""

    tasks: int = 0
    annotations: int = 0
    stored: int = 0
    unchanged: int = 0
    deleted_annotations: int = 0
    deleted_tasks: int = 0
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


def reconcile(
    db: Session,
    project_id: int,
    pulled: Iterable[tuple[int, list[dict[str, Any]]]],
    taxonomy: Taxonomy,
    *,
    full: bool,
    started: datetime | None = None,
) -> Reconciled:
    """Apply what a pull from Label Studio found: annotations webhooks missed, and deletions.

    ``pulled`` yields each task id with its annotations as webhook-shaped payloads. An
    annotation the store has for a pulled task but Label Studio no longer lists is recorded
    as deleted; with ``full``, so is every stored task the pull did not see.
    """
    report = Reconciled()
    seen_tasks: set[int] = set()
    # an annotation stored after the pull began may be missing from Label Studio's answer
    # only because it was made after that answer: it is never taken for a deletion
    began = started or _now()
    for task_id, events in pulled:
        report.tasks += 1
        seen_tasks.add(task_id)
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
            db.commit()
            report.deleted_annotations += len(gone)
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
