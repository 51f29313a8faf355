"""The service's store operations: apply Label Studio events, read judgements, agreement.

These are the public functions the routes (and the exporters) call; they raise domain
errors, never HTTP ones.

Applying events is idempotent and order-safe: an annotation is replaced only by a version
with a newer ``updated_at``; a deletion leaves a tombstone, so a create delivered after its
delete changes nothing.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from annotate import incremental
from annotate.agreement import pivot
from api.models import AgreementSum, Annotation, Judgement, ShiftEventRow, SyncState, Task
from schemas.codec import annotator_of, decode_annotation
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


def _insert(db: Session) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


def upsert_task(db: Session, project_id: int, task: Mapping[str, Any]) -> tuple[int, dict]:
    """Store (or refresh) a task's data in one statement; (task id, data)."""
    task_id = _need(task, "id", int, "task.")
    data = task.get("data") or {}
    if not isinstance(data, Mapping):
        raise PayloadError("task.data: expected an object")
    data = dict(data)
    values = {
        "project_id": project_id,
        "data": data,
        "clip_id": data.get("clip_id"),
        "session_id": data.get("session_id"),
    }
    table = Task.__table__  # type: ignore[attr-defined]
    statement = _insert(db)(table).values(id=task_id, deleted=False, **values)
    statement = statement.on_conflict_do_update(index_elements=["id"], set_=values)
    db.exec(statement)  # type: ignore[call-overload]
    return task_id, data


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


class _Units:
    """Keeps the incremental agreement sums right while judgements of some turns change."""

    def __init__(self, db: Session, project_id: int, turn_ids: Iterable[str]) -> None:
        self.db, self.project_id = db, project_id
        self.turn_ids = sorted(set(turn_ids))
        lock(db, (f"u{project_id}:{t}" for t in self.turn_ids))
        self.before = self._values()

    def _values(self) -> dict[tuple[str, str], list[str]]:
        values: dict[tuple[str, str], list[str]] = defaultdict(list)
        if not self.turn_ids:
            return values
        rows = self.db.exec(
            select(Judgement.turn_id, Judgement.dimension, Judgement.value).where(
                Judgement.project_id == self.project_id,
                col(Judgement.turn_id).in_(self.turn_ids),
            )
        ).all()
        for turn_id, dimension, value in rows:
            values[(turn_id, dimension)].append(value)
        return values

    def commit_sums(self) -> None:
        """Add the change of every touched unit to the stored sums."""
        self.db.flush()
        after = self._values()
        changes: dict[tuple[str, str], float] = defaultdict(float)
        for unit in set(self.before) | set(after):
            for key, value in incremental.delta(
                sorted(self.before.get(unit, [])), sorted(after.get(unit, []))
            ).items():
                changes[(unit[1], key)] += value
        add_sums(self.db, self.project_id, changes)


def add_sums(db: Session, project_id: int, changes: Mapping[tuple[str, str], float]) -> None:
    """Add ``{(dimension, key): amount}`` to the stored agreement sums (upsert)."""
    # sorted, so that concurrent writers take the rows' locks in one order (no deadlocks);
    # one fixed statement executed for many rows, so it is compiled once
    rows = [
        {"project_id": project_id, "dimension": dim, "key": key, "value": amount}
        for (dim, key), amount in sorted(changes.items())
        if amount
    ]
    if not rows:
        return
    db.connection().execute(_sums_statement(db.get_bind().dialect.name), rows)


@functools.cache
def _sums_statement(dialect: str) -> Any:
    table = AgreementSum.__table__  # type: ignore[attr-defined]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=["project_id", "dimension", "key"],
        set_={"value": table.c.value + statement.excluded.value},
    )


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
    lock(db, [f"a{annotation_id}"])
    task_id, task_data = upsert_task(db, project_id, task)
    row = db.get(Annotation, annotation_id)
    if row is not None and row.deleted:
        applied.ignored = "deleted"
        return applied
    if row is not None and row.updated_at and updated and row.updated_at >= updated:
        applied.ignored = "not newer"
        return applied
    try:
        decoded = decode_annotation({**annotation, "task": task_id}, task_data, taxonomy)
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"annotation.result: cannot be decoded ({exc})") from None
    if row is None:
        row = Annotation(id=annotation_id, project_id=project_id, received_at=_now())
    row.task_id = task_id
    row.annotator = annotator_of(annotation)
    row.was_cancelled = bool(annotation.get("was_cancelled"))
    row.ground_truth = bool(annotation.get("ground_truth"))
    row.updated_at = updated
    row.created_at = parse_time(annotation.get("created_at"), "annotation.created_at")
    lead_time = annotation.get("lead_time")
    row.lead_time = float(lead_time) if isinstance(lead_time, int | float) else None
    row.received_at = _now()
    db.add(row)
    dialogue_turns = [str(line.get("turn_id")) for line in task_data.get("dialogue") or []]
    units = _Units(db, project_id, [*dialogue_turns, *_turns_of(db, [annotation_id])])
    applied.removed = _remove_judgements(db, [annotation_id])
    if row.was_cancelled:
        applied.skipped = {"cancelled": len(decoded.judgements)}
    else:
        connection = db.connection()
        if decoded.judgements:
            connection.execute(
                Judgement.__table__.insert(),  # type: ignore[attr-defined]
                [{"project_id": project_id, **j.to_dict()} for j in decoded.judgements],
            )
        if decoded.shifts:
            connection.execute(
                ShiftEventRow.__table__.insert(),  # type: ignore[attr-defined]
                [{"project_id": project_id, **s.to_dict()} for s in decoded.shifts],
            )
        applied.stored = len(decoded.judgements)
        applied.skipped = dict(decoded.skipped)
    row.skipped = dict(applied.skipped)
    units.commit_sums()
    return applied


def _turns_of(db: Session, annotation_ids: list[int]) -> list[str]:
    return list(
        db.exec(
            select(Judgement.turn_id)
            .where(col(Judgement.annotation_id).in_(annotation_ids))
            .distinct()
        ).all()
    )


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
    lock(db, (f"a{i}" for i in annotation_ids))
    for annotation_id in annotation_ids:
        row = db.get(Annotation, annotation_id) or Annotation(
            id=annotation_id, project_id=project_id, received_at=_now()
        )
        row.deleted = True
        db.add(row)
    units = _Units(db, project_id, _turns_of(db, annotation_ids))
    applied.removed = _remove_judgements(db, annotation_ids)
    units.commit_sums()
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
    """Ids of the projects the store has judgements or tasks for."""
    ids = set(db.exec(select(Task.project_id).distinct()).all())
    ids |= set(db.exec(select(Judgement.project_id).distinct()).all())
    return sorted(ids)


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
        stored = set(
            db.exec(
                select(Annotation.id).where(
                    Annotation.task_id == task_id, col(Annotation.deleted).is_(False)
                )
            ).all()
        )
        gone = sorted(stored - live)
        if gone:
            delete_annotations(db, project_id, gone)
            db.commit()
            report.deleted_annotations += len(gone)
    if full:
        stored_tasks = set(
            db.exec(
                select(Task.id).where(Task.project_id == project_id, col(Task.deleted).is_(False))
            ).all()
        )
        missing = sorted(stored_tasks - seen_tasks)
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
