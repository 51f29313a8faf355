"""The statements the store writes with: bulk inserts (``COPY`` or one ``INSERT ...
SELECT`` from arrays on PostgreSQL, executemany on SQLite) and the upserts of tasks and
annotations, each built once per dialect."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from api.models import Annotation, Task

# (column, PostgreSQL type) of the tables written in bulk
JUDGEMENT_COLUMNS = (
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
SUM_COLUMNS = (("project_id", "int"), ("dimension", "text"), ("key", "text"), ("value", "float8"))
SUM_CONFLICT = (
    "ON CONFLICT (project_id, dimension, key) DO UPDATE SET value = agreement_sum.value + "
    "excluded.value"
)
TASK_COLUMNS = (
    ("id", "int"),
    ("project_id", "int"),
    ("data", "json"),
    ("clip_id", "text"),
    ("session_id", "text"),
    ("deleted", "bool"),
)
TASK_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, data = excluded.data, "
    "clip_id = excluded.clip_id, session_id = excluded.session_id "
    # every event carries its task: rewrite the row only when it changed (an update that
    # changes nothing still writes a new row version, its index entries and its log)
    "WHERE (task.project_id, task.data::text, task.clip_id, task.session_id) IS DISTINCT "
    "FROM (excluded.project_id, excluded.data::text, excluded.clip_id, excluded.session_id)"
)
ANNOTATION_COLUMNS = (
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
    ("own_saved_by", "text"),
    ("own_hash", "text"),
    ("own_updated_at", "timestamptz"),
    ("own_received_at", "timestamptz"),
    ("result_hash", "text"),
    ("received_at", "timestamptz"),
    ("skipped", "json"),
)
# the first annotator seen saving it themselves is kept, and their last own save's result
# hash and times (see api.models.AnnotationBase)
OWN_COLUMNS = ("own_saved_by", "own_hash", "own_updated_at", "own_received_at")
_FIRST = "COALESCE(annotation.own_saved_by, excluded.own_saved_by)"
ANNOTATION_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c, _ in ANNOTATION_COLUMNS
        if c not in ("id", "project_id", "deleted", *OWN_COLUMNS)
    )
    + f", own_saved_by = {_FIRST}, "
    + ", ".join(
        f"{c} = CASE WHEN excluded.own_saved_by = {_FIRST} "
        f"THEN excluded.{c} ELSE annotation.{c} END"
        for c in OWN_COLUMNS[1:]
    )
)


def own_fields(
    version: Any, digest: str, now: datetime, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The own-save columns (:data:`OWN_COLUMNS`) of an annotation's new version, as the
    upsert keeps them: the version's own when its annotator saved it (``updated_by``) and
    is the first own saver seen; else those of ``previous``, the row an earlier event of
    the same batch wrote (the upsert keeps what the store holds)."""
    own = version.updated_by is not None and version.updated_by == version.annotator
    mine = {
        "own_saved_by": version.annotator if own else None,
        "own_hash": digest if own else None,
        "own_updated_at": version.updated_at if own else None,
        "own_received_at": now if own else None,
    }
    first = previous["own_saved_by"] if previous is not None else None
    if previous is not None and first is not None and mine["own_saved_by"] != first:
        mine = {k: previous[k] for k in mine}
    return mine


def row_tuples(
    dicts: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    """Row tuples in the order of ``columns``; JSON columns serialised."""
    return [
        tuple(json.dumps(d[c]) if kind == "json" else d[c] for c, kind in columns) for d in dicts
    ]


def bulk(
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
def state_statement() -> Any:
    table = Annotation.__table__  # type: ignore[attr-defined]
    return select(table.c.id, table.c.deleted, table.c.updated_at, table.c.created_at).where(
        table.c.id.in_(bindparam("ids", expanding=True))
    )


@functools.cache
def annotation_statement(dialect: str) -> Any:
    """Insert an annotation, or overwrite the stored version (its project is kept)."""
    table = Annotation.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    kept = {"id", "project_id", "deleted", *OWN_COLUMNS}
    given = {c.name: statement.excluded[c.name] for c in table.c if c.name not in kept}
    first = func.coalesce(table.c.own_saved_by, statement.excluded.own_saved_by)
    given["own_saved_by"] = first
    for c in OWN_COLUMNS[1:]:
        given[c] = case(
            (statement.excluded.own_saved_by == first, statement.excluded[c]), else_=table.c[c]
        )
    return statement.on_conflict_do_update(index_elements=["id"], set_=given)


@functools.cache
def tombstone_statement(dialect: str) -> Any:
    """Mark an annotation deleted (a tombstone when it was never seen)."""
    table = Annotation.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(index_elements=["id"], set_={"deleted": True})


@functools.cache
def task_statement(dialect: str) -> Any:
    """Insert a task, or refresh its data (a deleted task stays deleted)."""
    table = Task.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={c: statement.excluded[c] for c in ("project_id", "data", "clip_id", "session_id")},
    )
