"""Reconciliation with Label Studio: pull what webhooks missed, on demand and periodically.

Label Studio delivers each webhook once, inside the annotator's save, with a 1 s timeout
and no retry; a pull of the tasks updated since the last pull (or of every task) closes the
gap. Applying pulled annotations goes through the same order-safe path as webhooks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from label_studio_sdk.core.api_error import ApiError
from sqlmodel import Session

from annotate.labelstudio import LabelStudioError, connect, find_project, pull_events
from api import members, reconcile, store

log = logging.getLogger("improv_annotate.sync")


def reconcile_project(state: Any, project_id: int, *, full: bool) -> reconcile.Reconciled:
    """Pull one project from Label Studio into the store (``state`` is ``app.state``)."""
    client = connect(state.settings)
    started = datetime.now(UTC)
    with Session(state.writer) as db:
        since = None if full else reconcile.pull_since(db, project_id)
        iso = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if since else None
        report = reconcile.reconcile(
            db,
            project_id,
            pull_events(client, project_id, iso),
            state.taxonomy,
            full=full or since is None,
            started=started,
        )
        pull_members(client, db)
    return report


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
    """One round of the periodic pull: every known project, incrementally."""
    for project_id in projects_to_pull(state):
        try:
            report = reconcile_project(state, project_id, full=False)
            log.info("reconciled project %s: %s", project_id, report)
        except (LabelStudioError, OSError) as exc:
            log.warning("reconcile of project %s failed: %s", project_id, exc)


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
