"""Reconciliation with Label Studio: pull what webhooks missed, on demand and periodically.

Label Studio delivers each webhook once, inside the annotator's save, with a 1 s timeout
and no retry; a pull of the tasks updated since the last pull (or of every task) closes the
gap. Applying pulled annotations goes through the same order-safe path as webhooks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from label_studio_sdk.core.api_error import ApiError
from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from annotate.labelstudio import (
    LabelStudioError,
    connect,
    find_project,
    pull_events,
)
from annotate.ls_webhooks import check_webhook
from api import members, reconcile, store
from api.models import SyncState

log = logging.getLogger("improv_annotate.sync")


def reconcile_project(state: Any, project_id: int, *, full: bool) -> reconcile.Reconciled:
    """Pull one project from Label Studio into the store (``state`` is ``app.state``)."""
    client = connect(state.settings)
    started = datetime.now(UTC)
    with Session(state.writer) as db:
        since = None if full else reconcile.pull_since(db, project_id)
        db.commit()  # end the read: on SQLite it holds the write lock while pages are fetched
        iso = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if since else None
        report = reconcile.reconcile(
            db,
            project_id,
            pull_events(client, project_id, iso),
            state.taxonomy,
            full=full or since is None,
            started=started,
            exists=lambda ids: still_held(client, project_id, ids),
        )
        pull_members(client, db)
    return report


def still_held(client: Any, project_id: int, task_ids: Sequence[int]) -> set[int]:
    """The ids among ``task_ids`` Label Studio still answers for in ``project_id``: one
    request each, for the few a full pull's list misses. (Label Studio on SQLite gives a
    new task a deleted one's id: found in another project, it is not this one's.)"""
    found = set()
    for task_id in task_ids:
        try:
            task = client.tasks.get(id=str(task_id))
        except ApiError as exc:
            if exc.status_code == 404:
                continue
            raise
        held = task.get("project") if isinstance(task, dict) else getattr(task, "project", None)
        if held is None or int(held) == project_id:  # deleted only when sure
            found.add(task_id)
    return found


def pull_members(client: Any, db: Session) -> int:
    """Read the organisation's users from Label Studio and keep their names (see
    :mod:`api.members`); returns how many were new or changed. Names are for QA leads to
    read; when Label Studio does not give them, a warning is logged and the figures show
    ``"user N"`` until the next pull."""
    try:
        users = [u if isinstance(u, dict) else u.dict() for u in client.users.list()]
    except (httpx.HTTPError, ApiError) as exc:  # names are not worth failing a pull for
        log.warning("cannot read Label Studio's users for their names: %s", type(exc).__name__)
        return 0
    return members.record_users(db, users)


def projects_to_pull(state: Any) -> list[int]:
    """The projects the store knows, and the configured project even before its first
    event (found in Label Studio by its title)."""
    with Session(state.engine) as db:
        project_ids = set(store.projects(db))
    try:
        found = find_project(connect(state.settings), state.settings.label_studio.project_title)
    except LabelStudioError as exc:
        log.warning("cannot look up the configured project: %s", exc)
        found = None
    if found is not None:
        project_ids.add(int(found.id))
    return sorted(project_ids)


def _loop(app: FastAPI, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            pull_all(app.state)
        except Exception as exc:  # e.g. the store is down: try again next time, never stop
            log.warning("periodic pull failed: %s: %s", type(exc).__name__, exc)


def pull_all(state: Any) -> None:
    """One round of the periodic pull: the service's webhooks checked (and put back where
    a member changed them), then every known project, incrementally; in full where its
    webhook had to be put back or was changed since the last round, since it may have
    missed anything, and where the last full pull is ``service.full_pull_seconds`` old
    (an incremental pull does not see deletions). When that was is kept in the store, so
    several service processes share one timer."""
    repaired = guard_webhooks(state)
    due = _full_pull_due(state)
    for project_id in projects_to_pull(state):
        try:
            full = project_id in repaired or project_id in due
            report = reconcile_project(state, project_id, full=full)
            log.info("reconciled project %s: %s", project_id, report)
        except (LabelStudioError, OSError) as exc:
            log.warning("reconcile of project %s failed: %s", project_id, exc)


def _full_pull_due(state: Any) -> set[int]:
    """The projects whose last full pull is older than ``service.full_pull_seconds``, and
    that this process claimed: each claim is one atomic update in the store, so of several
    service processes (on one machine or several) one pulls each project in full. A claim
    left by a process that died lapses after the same period."""
    every = state.settings.service.full_pull_seconds
    if every <= 0:
        return set()
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=every)
    projects = set(store_projects(state))
    claimed: set[int] = set()
    with Session(state.writer) as db:
        known = {int(p) for p in db.exec(select(SyncState.project_id)).all()}
        for p in sorted(projects - known):
            _ensure_row(db, p)
        for p in sorted(projects | known):
            result = db.exec(  # type: ignore[call-overload]
                update(SyncState)
                .where(
                    col(SyncState.project_id) == p,
                    or_(
                        col(SyncState.last_full_pull).is_(None),
                        col(SyncState.last_full_pull) <= cutoff,
                    ),
                    or_(
                        col(SyncState.full_pull_claimed_at).is_(None),
                        col(SyncState.full_pull_claimed_at) <= cutoff,
                    ),
                )
                .values(full_pull_claimed_at=now)
            )
            if result.rowcount == 1:
                claimed.add(p)
            db.commit()
    return claimed


def _ensure_row(db: Session, project_id: int) -> None:
    """The project's ``sync_state`` row, made if missing (by one of several processes)."""
    table = SyncState.__table__  # type: ignore[attr-defined]
    postgres = db.get_bind().dialect.name == "postgresql"
    insert = (pg_insert if postgres else sqlite_insert)(table).values(project_id=project_id)
    db.exec(insert.on_conflict_do_nothing(index_elements=["project_id"]))  # type: ignore[call-overload]


def store_projects(state: Any) -> list[int]:
    """The projects the store holds events of."""
    with Session(state.engine) as db:
        return list(store.projects(db))


def guarded_projects(client: Any, settings: Any) -> list[int]:
    """The projects whose webhook the service registered: the configured project and its
    adjudication project (found by their titles), those that exist."""
    from annotate.adjudicate import adjudication_title

    found = []
    for title in (settings.label_studio.project_title, adjudication_title(settings)):
        project = find_project(client, title)
        if project is not None:
            found.append(int(project.id))
    return sorted(set(found))


def guard_webhooks(state: Any) -> set[int]:
    """Check the service's webhook on each guarded project and put back what was changed
    (:func:`annotate.ls_webhooks.ensure_webhook`); what was found is kept per project in
    the store (``sync_state``), for ``/health``. Returns the projects repaired."""
    settings = state.settings
    repaired: set[int] = set()
    now = datetime.now(UTC)
    try:
        client = connect(settings)
        projects = guarded_projects(client, settings)
    except (LabelStudioError, OSError, httpx.HTTPError, ApiError) as exc:
        log.warning("cannot look up the projects to check webhooks on: %s", exc)
        return repaired
    for project_id in projects:
        problems: list[str] = []
        error, stamp = None, None
        try:
            problems, stamp = check_webhook(
                client, project_id, settings.webhook_url, settings.service.webhook_secret or ""
            )
        except (OSError, httpx.HTTPError, ApiError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("cannot check the webhook of project %s: %s", project_id, error)
        with Session(state.writer) as db:
            row = db.get(SyncState, project_id) or SyncState(project_id=project_id)
            row.webhook_checked_at, row.webhook_error = now, error
            if (
                not problems
                and None not in (stamp, row.webhook_stamp)
                and stamp != row.webhook_stamp
            ):
                # found as registered, yet changed since the last check: changed and put
                # back in between (switched off and on), when deliveries may have been lost
                problems = ["changed and put back since the last check"]
            if stamp is not None:
                row.webhook_stamp = stamp
            if problems:
                row.webhook_repaired_at, row.webhook_problem = now, ", ".join(problems)
                repaired.add(project_id)
                log.warning(
                    "the webhook of project %s was %s; put back, pulling the project in full",
                    project_id,
                    row.webhook_problem,
                )
            db.add(row)
            db.commit()
    return repaired


def webhook_health(engine: Any, every: float) -> tuple[dict[str, Any], list[str]]:
    """``/health``'s ``webhooks`` (per guarded project: last checked, last put back and
    why, why the last check failed) and its reasons to say degraded: a check that failed,
    or none for three rounds of the periodic pull (``every`` seconds; 0: not checked)."""
    with Session(engine) as db:
        rows = db.exec(
            select(SyncState).where(col(SyncState.webhook_checked_at).is_not(None))
        ).all()
    now = datetime.now(UTC)
    out, reasons = {}, []
    for row in rows:
        checked = _aware(row.webhook_checked_at)
        repaired = _aware(row.webhook_repaired_at)
        out[str(row.project_id)] = {
            "checked_at": checked.isoformat() if checked else None,
            "repaired_at": repaired.isoformat() if repaired else None,
            "problem": row.webhook_problem,
            "error": row.webhook_error,
        }
        if row.webhook_error:
            reasons.append(
                f"the webhook of project {row.project_id} could not be checked: {row.webhook_error}"
            )
        elif every > 0 and checked is not None and (now - checked).total_seconds() > 3 * every:
            reasons.append(
                f"the webhook of project {row.project_id} was last checked "
                f"{(now - checked).total_seconds():.0f} s ago (every {every:g} s)"
            )
    return out, reasons


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the periodic pull while the service runs (``service.reconcile_seconds``; 0 off)."""
    every = app.state.settings.service.reconcile_seconds
    stop = threading.Event()
    worker = None
    if every > 0:
        worker = threading.Thread(target=_loop, args=(app, stop, every), daemon=True)
        worker.start()
    yield
    stop.set()
    if worker is not None:
        worker.join(timeout=5)
