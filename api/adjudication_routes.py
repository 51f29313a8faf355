"""The adjudication endpoints, and the service's automatic sending.

``POST /projects/{id}/adjudication/send`` sends the current adjudication queue to the
adjudication project (``?dry_run=true``: only say what would go); ``GET
/projects/{id}/adjudicated`` lists the clips sent and what the adjudicators decided;
``POST /projects/{id}/adjudication/release?clip=`` lets a clip held after too many
re-sends go once more, every held clip with ``all=true`` (:mod:`api.resends`). All need
the API key: a Label Studio member can neither send clips nor read the decisions early.
With ``adjudication.auto`` the leading applier sends clips as their panel completes
(:class:`AutoAdjudicator`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from label_studio_sdk.core.api_error import ApiError
from sqlmodel import Session, select

from annotate.adjudicate import send
from annotate.config import Settings
from annotate.labelstudio import LabelStudioError, connect, find_project
from api import adjudication, resends, store, sync
from api.db import request_session
from api.models import TaskOverlapRow
from schemas.taxonomy import Taxonomy

log = logging.getLogger("improv_annotate.adjudication")

__all__ = ["AutoAdjudicator", "adjudicator_of", "register", "settled_check"]


def _ls_link(base: str) -> Any:
    def link(project_id: int, task_id: int) -> str:
        return f"{base.rstrip('/')}/projects/{int(project_id)}/data?task={int(task_id)}"

    return link


def register(reads: APIRouter) -> None:
    """Add the adjudication endpoints to ``reads`` (the API-key protected router)."""

    @reads.post("/projects/{project_id}/adjudication/send")
    def adjudication_send(request: Request, project_id: int, dry_run: bool = False) -> Any:
        """Send the clips below ``adjudication.thresholds`` (and those the overlap policy
        settled exhausted) to the adjudication project; clips sent before stay as they
        are. Answers what was queued, due and sent."""
        state = request.app.state
        with Session(state.writer) as db:
            try:
                client = None if dry_run else connect(state.settings)
                report = send(
                    db,
                    client,
                    state.settings,
                    state.taxonomy,
                    project_id,
                    dry_run=dry_run,
                    gold_settled=settled_check(db, state.settings, project_id),
                )
                if client is not None:  # the adjudicators' accounts, to resolve their e-mails
                    sync.pull_members(client, db)
                    db.commit()
            except store.NotFound as exc:
                raise HTTPException(404, str(exc)) from None
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
            except (LabelStudioError, ApiError, httpx.HTTPError) as exc:
                raise HTTPException(
                    502, f"Label Studio did not take the adjudication tasks: {exc}"
                ) from None
        return report.to_json()

    @reads.post("/projects/{project_id}/adjudication/release")
    def adjudication_release(
        request: Request,
        project_id: int,
        db: Annotated[Session, Depends(request_session)],
        clip: str | None = None,
        every: Annotated[bool, Query(alias="all")] = False,
    ) -> dict[str, Any]:
        """Let a clip held after too many re-sends (its adjudication task deleted or
        tampered with again and again) go to adjudication once more, at the next send;
        ``all=true``: every held clip. ``released``: the clips let go."""
        limit = request.app.state.settings.adjudication.max_resends
        if (clip is None) == (not every):
            raise HTTPException(422, "give either clip=CLIP or all=true")
        if clip is None:
            return {"released": resends.release_all(db, project_id, limit)}
        if not resends.release(db, project_id, clip, limit):
            raise HTTPException(
                404, f"clip {clip!r} of project {project_id} is not held (see the send's held)"
            )
        return {"released": [clip]}

    @reads.get("/projects/{project_id}/adjudicated")
    def adjudicated(
        request: Request, project_id: int, db: Annotated[Session, Depends(request_session)]
    ) -> dict[str, Any]:
        """The clips sent to adjudication, which are decided and by whom, the decided
        values per turn, and what was ignored (annotations by people who are not
        adjudicators, values on turns the clip did not have)."""
        settings = request.app.state.settings
        out = adjudication.status(
            db,
            project_id,
            settings.adjudication.adjudicators,
            _ls_link(settings.label_studio.url),
        )
        out["auto"] = settings.adjudication.auto
        out["held"] = resends.held(db, project_id, settings.adjudication.max_resends)
        return out


def settled_check(db: Session, settings: Settings, project_id: int) -> Any:
    """``(task id, annotators) -> bool``: whether a clip's panel is complete, so that the
    automatic sending does not send a clip more annotators are still to label: with
    adaptive overlap, the policy's target is reached; else Label Studio's fixed overlap."""
    if not settings.overlap.enabled:
        wanted = settings.label_studio.maximum_annotations
        return lambda _task, annotators: annotators >= wanted
    # plain values, not rows: the send commits before it asks (which expires rows, and
    # each would then be read again)
    targets = {
        int(task): (int(have), int(target))
        for task, have, target in db.exec(
            select(TaskOverlapRow.task_id, TaskOverlapRow.annotators, TaskOverlapRow.target).where(
                TaskOverlapRow.project_id == project_id
            )
        )
    }

    def settled(task: int, annotators: int) -> bool:
        have, target = targets.get(task, (0, -1))
        return target >= 0 and have >= target and annotators >= target

    return settled


class AutoAdjudicator:
    """``adjudication.auto``: the leading applier sends the configured project's settled
    clips below threshold, at most every ``adjudication.every_seconds``. Sending talks to
    Label Studio, so it runs on a thread of its own: a slow or absent Label Studio never
    delays applying. A failure (Label Studio away) is logged and tried again next time;
    nothing is lost, since sending only reads the store."""

    def __init__(self, settings: Settings, taxonomy: Taxonomy) -> None:
        self.settings = settings
        self.taxonomy = taxonomy
        self._last = float("-inf")
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.sent = 0  # clips sent since the start

    def tick(self, engine: Any) -> bool:
        """Start a round of sending if ``every_seconds`` have passed and the last round
        has finished; returns whether one started (it runs on its own thread)."""
        if self._thread is not None and self._thread.is_alive():
            return False
        if time.monotonic() - self._last < self.settings.adjudication.every_seconds:
            return False
        self._last = time.monotonic()
        self._thread = threading.Thread(
            target=self.send_once, args=(engine,), name="auto-adjudication", daemon=True
        )
        self._thread.start()
        return True

    def send_once(self, engine: Any) -> int:
        """One round: send what is due now; returns clips sent."""
        try:
            client = connect(self.settings)
            project = find_project(client, self.settings.label_studio.project_title)
            if project is None:
                return 0
            with Session(engine) as db:
                if int(project.id) not in store.projects(db):
                    return 0
                settled = settled_check(db, self.settings, int(project.id))
                report = send(
                    db,
                    client,
                    self.settings,
                    self.taxonomy,
                    int(project.id),
                    settled=settled,
                    gold_settled=settled,
                )
        except Exception as exc:  # Label Studio or the store away: next time
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("automatic adjudication: %s", self.last_error)
            return 0
        self.last_error = None
        self.sent += len(report.sent)
        if report.sent:
            log.info("sent %d clips to adjudication", len(report.sent))
        return len(report.sent)


def adjudicator_of(settings: Settings, taxonomy: Taxonomy) -> AutoAdjudicator | None:
    """The automatic sender ``adjudication.auto`` asks for (None when off)."""
    if not settings.adjudication.auto or not settings.label_studio.token:
        return None
    return AutoAdjudicator(settings, taxonomy)
