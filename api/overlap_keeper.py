"""Adaptive overlap, live: each task returns to annotators' queues only when the policy asks.

Label Studio Community serves a task in the labeling stream while it is not *labeled*, and
a task is labeled once it has as many annotations as its ``overlap``. With
``overlap.enabled`` the project starts every task at the policy's ``min_annotators``; after
each batch of judgements the applier decides, in the same transaction, what every task the
batch touched needs (:func:`annotate.overlap.decide_clips` over the task's judgements):

- needs one more annotator: ``target`` = annotators so far + 1 (at most ``max_annotators``);
- settled (agreed, or exhausted at ``max_annotators``): ``target`` = annotators so far, so
  the task leaves the queues.

The decision is kept in the store (``task_overlap``), never in one process: any applier
that leads, on any machine, reads the same rows. The leading applier then tells Label
Studio (``PATCH /api/tasks/{id}`` with ``overlap`` and ``is_labeled``) what differs from
what it last told it; the PATCH sets a value, so sending it twice changes nothing. When
Label Studio cannot be reached the row stays pending, with the error and the number of
tries, and is sent again later (after 1, 2, 4 ... at most 60 s); webhooks are applied
meanwhile as always. ``GET /projects/{id}/overlap`` lists each task's decision and whether
Label Studio has it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from sqlmodel import Session, col, or_, select

from annotate.config import ConfigError, Settings
from annotate.overlap import OverlapPolicy, decide_clips
from api.db import request_session
from api.models import AdjudicationLink, AdjudicationProject, Annotation, Judgement, TaskOverlapRow
from api.repeats import divert
from api.store import Event

__all__ = [
    "OverlapKeeper",
    "affected_tasks",
    "decide_tasks",
    "keeper_of",
    "overlap_health",
    "overlap_status",
    "register",
]

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0  # seconds between tries of a PATCH Label Studio refused or missed


def _now() -> datetime:
    return datetime.now(UTC)


def affected_tasks(db: Session, events: Iterable[Event]) -> set[tuple[int, int]]:
    """(project, task) pairs whose judgements the events change (deleted annotations
    are looked up in the store, which remembers their task)."""
    out: set[tuple[int, int]] = set()
    deleted: list[int] = []
    for event in events:
        if event.annotation is not None:
            out.add((event.project_id, event.annotation.task_id))
        elif event.action == "ANNOTATIONS_DELETED":
            deleted += list(event.ids)
    if deleted:
        rows = db.exec(
            select(Annotation.project_id, Annotation.task_id).where(col(Annotation.id).in_(deleted))
        ).all()
        out |= {(int(p), int(t)) for p, t in rows if t is not None}
    return out


def decide_tasks(db: Session, tasks: Iterable[tuple[int, int]], policy: OverlapPolicy) -> int:
    """Decide what each (project, task) needs from its judgements in the store and keep it
    in ``task_overlap``; returns how many targets changed. A row whose target or number of
    annotators changed is marked to be sent again. The caller commits."""
    changed = 0
    for project_id, task_id in sorted(set(tasks)):
        rows = db.exec(
            select(Judgement.turn_id, Judgement.annotator, Judgement.dimension, Judgement.value)
            .where(Judgement.task_id == task_id, Judgement.project_id == project_id)
            .order_by(col(Judgement.id))
        ).all()
        records = [(task_id, turn, who, dim, value) for turn, who, dim, value in rows]
        decision = decide_clips(policy, records).get(task_id)
        annotators = decision.annotators if decision is not None else 0
        if decision is None:
            target, reason, unsettled = policy.min_annotators, "no judgements", 0
        elif decision.need_more:
            target = min(annotators + 1, policy.max_annotators)
            reason, unsettled = decision.reason, len(decision.unsettled)
        else:
            target, reason, unsettled = max(annotators, 1), decision.reason, 0
        row = db.get(TaskOverlapRow, task_id)
        if row is None:
            row = TaskOverlapRow(task_id=task_id, project_id=project_id)
        if row.target != target or row.annotators != annotators:
            # a new overlap, or a new annotation (Label Studio does not recompute is_labeled
            # itself once it was set): send both again, at once
            changed += row.target != target
            row.applied, row.attempts = None, 0
        row.annotators, row.target, row.reason, row.unsettled = (
            annotators,
            target,
            reason,
            unsettled,
        )
        row.decided_at = _now()
        db.add(row)
    return changed


class OverlapKeeper:
    """Decides task overlaps in the applier's transaction and tells Label Studio after.

    Parameters
    ----------
    policy : OverlapPolicy
        The adaptive overlap policy (``settings.overlap.policy()``).
    url, token : str
        Label Studio and the service's own token (``label_studio.url``/``token``).
    """

    def __init__(self, policy: OverlapPolicy, url: str, token: str, timeout: float = 5.0) -> None:
        self.policy = policy
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=timeout,
        )

    def decide(self, db: Session, events: Sequence[Event]) -> int:
        """Decide the tasks ``events`` touch (inside the caller's transaction): the main
        projects' tasks only. A hidden repeat keeps the overlap it was imported with (its
        events are filed under the negated project, :func:`api.repeats.divert`), and an
        adjudication task keeps its one annotator."""
        adjudicating = set(
            db.exec(select(AdjudicationLink.adjudication_project_id).distinct()).all()
        ) | set(db.exec(select(AdjudicationProject.id)).all())
        tasks = {
            (project, task)
            for project, task in affected_tasks(db, divert(db, events))
            if project > 0 and project not in adjudicating
        }
        return decide_tasks(db, tasks, self.policy)

    def push(self, db: Session, limit: int = 50) -> int:
        """Send Label Studio the targets it does not have yet (oldest decision first, those
        that failed recently after their backoff); returns how many it took. Commits."""
        now = _now()
        pending = db.exec(
            select(TaskOverlapRow)
            .where(
                or_(
                    col(TaskOverlapRow.applied).is_(None),
                    TaskOverlapRow.applied != TaskOverlapRow.target,
                )
            )
            .order_by(col(TaskOverlapRow.decided_at))
            .limit(limit * 4)
        ).all()
        sent = 0
        for row in pending:
            if sent >= limit:
                break
            wait = min(2.0 ** max(row.attempts - 1, 0), MAX_BACKOFF) if row.attempts else 0.0
            tried = row.tried_at
            if tried is not None and tried.tzinfo is None:  # SQLite gives naive UTC back
                tried = tried.replace(tzinfo=UTC)
            if tried is not None and now - tried < timedelta(seconds=wait):
                continue
            body = {"overlap": row.target, "is_labeled": row.annotators >= row.target}
            row.tried_at = now
            try:
                answer = self._client.patch(f"/api/tasks/{row.task_id}", json=body)
                if answer.status_code == 404:
                    row.applied, row.error = row.target, "task gone from Label Studio"
                else:
                    answer.raise_for_status()
                    row.applied, row.applied_at, row.error = row.target, now, None
                row.attempts = 0
            except httpx.HTTPError as exc:
                row.attempts += 1
                row.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("overlap of task %s not sent: %s", row.task_id, row.error)
            db.add(row)
            db.commit()
            sent += 1
        return sent

    def close(self) -> None:
        """Close the connection to Label Studio."""
        self._client.close()


def keeper_of(settings: Settings) -> OverlapKeeper | None:
    """The keeper ``overlap.enabled`` asks for (None when off); it needs the service's own
    Label Studio token."""
    if not settings.overlap.enabled:
        return None
    if not settings.label_studio.token:
        raise ConfigError(
            "overlap.enabled is true but label_studio.token is empty: the service needs its "
            "own Label Studio token to set task overlaps"
        )
    return OverlapKeeper(
        settings.overlap.policy(), settings.label_studio.url, settings.label_studio.token
    )


def overlap_health(engine: Any, bound_seconds: float) -> tuple[dict[str, Any], str | None]:
    """What ``/health`` says of adaptive overlap: the decisions Label Studio does not have
    yet (``pending``), those whose sending failed (``failing``), and a reason when one has
    waited longer than ``bound_seconds`` after a failed try (Label Studio away, a token
    refused): the queues then do not follow the policy."""
    with Session(engine) as db:
        rows = db.exec(
            select(TaskOverlapRow).where(
                or_(
                    col(TaskOverlapRow.applied).is_(None),
                    TaskOverlapRow.applied != TaskOverlapRow.target,
                )
            )
        ).all()
    now = _now()
    failing = [r for r in rows if r.attempts]
    oldest = 0.0
    for r in failing:
        decided = r.decided_at
        if decided is not None and decided.tzinfo is None:
            decided = decided.replace(tzinfo=UTC)
        if decided is not None:
            oldest = max(oldest, (now - decided).total_seconds())
    info = {"pending": len(rows), "failing": len(failing), "oldest_failing_s": round(oldest, 1)}
    if failing and oldest > bound_seconds:
        last = max(failing, key=lambda r: r.attempts).error or "unknown error"
        return info, (
            f"{len(failing)} task overlaps not sent to Label Studio for {oldest:.0f} s "
            f"(bound: service.max_backlog_seconds = {bound_seconds:g} s); last error: {last}"
        )
    return info, None


def overlap_status(db: Session, project_id: int) -> dict[str, Any]:
    """Each task's decision and whether Label Studio has it, with counts."""
    rows = db.exec(
        select(TaskOverlapRow)
        .where(TaskOverlapRow.project_id == project_id)
        .order_by(col(TaskOverlapRow.task_id))
    ).all()
    tasks = [
        {
            "task": r.task_id,
            "annotators": r.annotators,
            "target": r.target,
            "need_more": r.target > r.annotators,
            "reason": r.reason,
            "unsettled_units": r.unsettled,
            "applied": r.applied,
            "pending": r.applied != r.target,
            "attempts": r.attempts,
            "error": r.error,
        }
        for r in rows
    ]
    return {
        "tasks": tasks,
        "need_more": sum(t["need_more"] for t in tasks),
        "settled": sum(not t["need_more"] for t in tasks),
        "pending": sum(t["pending"] for t in tasks),
        "failing": sum(bool(t["pending"] and t["attempts"]) for t in tasks),
    }


def register(reads: APIRouter) -> None:
    """Add ``GET /projects/{id}/overlap`` to ``reads`` (the API-key protected router)."""

    @reads.get("/projects/{project_id}/overlap")
    def overlap(
        request: Request, project_id: int, db: Annotated[Session, Depends(request_session)]
    ) -> dict[str, Any]:
        """Per task: annotators so far, the policy's decision, the target overlap, and
        whether Label Studio has it (``pending``, with the tries and the last error);
        ``enabled`` false (and no tasks) while adaptive overlap is off."""
        settings = request.app.state.settings
        out: dict[str, Any] = {
            "enabled": settings.overlap.enabled,
            "policy": settings.overlap.policy().to_dict(),
            **overlap_status(db, project_id),
        }
        if not settings.overlap.enabled:
            out["reason"] = "adaptive overlap is off (overlap.enabled in config.yaml)"
        return out
