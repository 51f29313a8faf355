"""Keeping the adjudication project as the sender made it.

Every member of a Label Studio Community organisation can change the adjudication
project's label config, its model version and stream settings, and any task's
predictions (the pre-annotation an adjudicator starts from). None of that shows in the
decision the adjudicator saves, yet it changes what they saw. So before each send the
sender checks the project and every linked task's predictions against what it made
(:func:`guard`). A changed project is put back, and every link whose task was undecided or
decided since the last check that found the project as made is marked tampered; a task
whose predictions changed has its link marked tampered; a change Label Studio reported
since the last check (a PROJECT_UPDATED webhook, :func:`api.store.apply_events`)
counts even when it was put back before it. So is a link whose task holds an
annotation someone saved in another's name (:func:`saved_over`): over an adjudicator's
own decision (Label Studio then records the member as its last saver, and the decision
no longer counts), or in an adjudicator's name on an undecided task (Label Studio then
takes the task out of that adjudicator's queue). The sender then deletes the tampered
tasks and sends their clips afresh (:func:`annotate.adjudicate.send`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from label_studio_sdk.core.api_error import ApiError
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from api import adjudication
from api.models import AdjudicationLink, AdjudicationProject, Annotation, ProjectReport, own_work
from api.models import saved_over as is_saved_over

__all__ = ["guard", "predictions_hash", "project_differences", "saved_over"]


def predictions_hash(predictions: Iterable[Any]) -> str:
    """sha256 of a task's predictions (their model versions and results, in any order),
    as sent and as Label Studio lists them."""
    items = sorted(
        json.dumps(
            {"model_version": _get(p, "model_version"), "result": _get(p, "result")},
            sort_keys=True,
            default=str,
        )
        for p in predictions
    )
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def project_differences(project: Any, options: Mapping[str, Any]) -> list[str]:
    """The fields of ``options`` (label config, model version, stream settings, one
    annotation per task, no data credentials) in which the Label Studio project differs
    (its description is left to people)."""
    wrong = []
    for key, wanted in options.items():
        held = _get(project, key)
        if key == "label_config":
            if (held or "").strip() != str(wanted).strip():
                wrong.append(key)
        elif key == "description":
            continue
        elif wanted is None:
            if held:  # unset: Label Studio gives None or ""
                wrong.append(key)
        elif held != wanted:
            wrong.append(key)
    return wrong


def guard(
    db: Session,
    client: Any,
    project_id: int,
    options: Mapping[str, Any],
    restore: Callable[[], Any],
    adjudicators: Collection[str] | None = None,
) -> list[str]:
    """Check each adjudication project of ``project_id`` against ``options`` (what the
    sender makes it with) and its linked tasks' predictions against what was sent; put a
    changed project back with ``restore()`` and mark the links it may have misled
    tampered. Returns what was found (empty when nothing). Commits.

    No transaction is open while Label Studio is asked (on SQLite every transaction holds
    the one write lock, and the applier and imports must not wait on Label Studio): the
    store is read first, then Label Studio, then the findings are written and committed,
    and only then is a changed project put back."""
    found: list[str] = []
    for project in db.exec(
        select(AdjudicationProject.id).where(AdjudicationProject.project_id == project_id)
    ).all():
        found += _guard_project(
            db, client, project_id, int(project), options, restore, adjudicators
        )
    db.commit()  # the findings kept before the sender deletes tasks in Label Studio
    return found


def _guard_project(
    db: Session,
    client: Any,
    project_id: int,
    adjudication_project_id: int,
    options: Mapping[str, Any],
    restore: Callable[[], Any],
    adjudicators: Collection[str] | None,
) -> list[str]:
    pid = adjudication_project_id
    # the store first
    links = [
        link
        for link in adjudication.links(db, project_id)
        if link.adjudication_project_id == pid and link.tampered_at is None
    ]
    by_link = {
        int(link.id or 0): (link.adjudication_task_id, link.predictions_hash) for link in links
    }
    saved = saved_over(db, links, adjudicators)
    reports = [
        (int(r.id or 0), _aware(r.received_at), dict(r.fields or {}))
        for r in db.exec(select(ProjectReport).where(ProjectReport.project_id == pid)).all()
    ]
    row = db.get(AdjudicationProject, pid)
    since = _aware(row.checked_at) if row is not None else None
    last = _received(db, [task for task, _ in by_link.values()])
    started = datetime.now(UTC)  # a decision received during the check is after it
    db.commit()  # the read ended before Label Studio is asked (SQLite: the write lock)
    # then Label Studio: the predictions first, so that little happens between reading
    # the project and putting it back
    held: dict[int, list[Any]] = {}
    try:
        for prediction in client.predictions.list(project=pid):
            held.setdefault(int(_get(prediction, "task")), []).append(prediction)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    try:
        project = client.projects.get(id=pid)
    except ApiError as exc:
        if exc.status_code == 404:
            return []  # deleted: its links are dropped and the clips sent again
        raise
    problems = [f"project {pid}: {k} changed" for k in project_differences(project, options)]
    # changed now: the links undecided or decided since the last check that found the
    # project as made may have been decided on the changed screen
    suspects: set[int] = set()
    if problems:
        for link_id, (task, _) in by_link.items():
            when = last.get(task)
            if when is None or since is None or _aware(when) > since:
                suspects.add(link_id)
    # changes Label Studio reported since the last check (PROJECT_UPDATED), put back
    # before now: the decisions received since the report may have been made on the
    # changed screen (Label Studio sends the report as it saves the change)
    for _, received, fields in reports:
        told = {k: v for k, v in options.items() if k in fields}
        changed = project_differences(fields, told)
        for k in changed:
            problem = f"project {pid}: {k} changed and put back since the last send"
            if f"project {pid}: {k} changed" not in problems and problem not in problems:
                problems.append(problem)
        if changed:
            for link_id, (task, _) in by_link.items():
                when = last.get(task)
                if when is not None and (received is None or _aware(when) >= received):
                    suspects.add(link_id)
    changed = bool(problems)  # put back once the findings are kept (below)
    # a change to the whole project is not counted against each clip's re-sends
    # (api.resends): one member could otherwise hold every clip
    own: set[int] = set()
    for link_id, (task, sent) in by_link.items():
        if sent is not None and predictions_hash(held.get(task, [])) != sent:
            problems.append(f"task {task}: predictions changed")
            own.add(link_id)
    for link_id, problem in saved.items():
        problems.append(problem)
        own.add(link_id)
    # then the findings
    now = datetime.now(UTC)
    for marked, wide in ((suspects - own, True), (own, False)):
        if marked:
            db.exec(  # type: ignore[call-overload]
                update(AdjudicationLink)
                .where(  # not one the applier marked meanwhile (task data changed)
                    col(AdjudicationLink.id).in_(sorted(marked)),
                    col(AdjudicationLink.tampered_at).is_(None),
                )
                .values(tampered_at=now, tampered_by_project=wide)
            )
    row = db.get(AdjudicationProject, pid)
    if row is not None:
        if problems:
            row.problem, row.problem_at = "; ".join(problems)[:1000], now
        else:
            row.checked_at = started
        db.add(row)
    if reports:  # those read, not any that came in since
        db.exec(  # type: ignore[call-overload]
            delete(ProjectReport).where(col(ProjectReport.id).in_([r[0] for r in reports]))
        )
    db.commit()  # the findings kept, then the project put back and the next one asked
    if changed:
        restore()
    return problems


def saved_over(
    db: Session, links: Iterable[AdjudicationLink], adjudicators: Collection[str] | None = None
) -> dict[int, str]:
    """``{link id: what was found}`` for the links whose task holds an annotation that is
    not the work of the annotator named on it: one its annotator had saved themselves and
    someone else then changed, or gave to another annotator (their decision, now not
    theirs: :func:`api.models.saved_over`); or, while no adjudicator's own decision stands
    on the task, one made in an adjudicator's name by someone else (it hides the task from
    that adjudicator's queue). ``adjudicators``: their Label Studio user ids (None: any
    annotator counts as one). A save that leaves an annotation's result as its annotator
    saved it (starring it as ground truth, pressing Update) finds nothing."""
    by_task = {link.adjudication_task_id: int(link.id or 0) for link in links}
    if not by_task:
        return {}
    rows = db.exec(
        select(Annotation).where(
            col(Annotation.task_id).in_(sorted(by_task)),
            col(Annotation.deleted).is_(False),
            col(Annotation.updated_by).is_not(None),
        )
    ).all()

    def judge(a: Annotation) -> bool:
        return adjudicators is None or a.annotator in adjudicators

    decided = {a.task_id for a in rows if own_work(a) and judge(a) and not a.was_cancelled}
    found: dict[int, str] = {}
    for a in sorted(rows, key=lambda a: a.id):
        if own_work(a) or a.task_id is None:
            continue
        if a.own_saved_by is not None and a.own_saved_by != a.annotator:
            what = f"saved by user {a.own_saved_by}, since given to user {a.annotator}"
        elif is_saved_over(a):
            what = f"in user {a.annotator}'s name changed by user {a.updated_by}"
        elif a.task_id not in decided and judge(a):
            what = f"in user {a.annotator}'s name last saved by user {a.updated_by}"
        else:
            continue
        found.setdefault(by_task[a.task_id], f"task {a.task_id}: annotation {a.id} {what}")
    return found


def _received(db: Session, task_ids: list[int]) -> dict[int, datetime]:
    """When the service last received an annotator's own save of the work that stands on
    each of ``task_ids`` (:func:`api.models.own_work`): a decision is as new as the
    adjudicator's own save of it, not as a later save by someone else that changed
    nothing (a star), which would otherwise make every decision look new."""
    if not task_ids:
        return {}
    out: dict[int, datetime] = {}
    for a in db.exec(
        select(Annotation).where(
            col(Annotation.task_id).in_(task_ids), col(Annotation.deleted).is_(False)
        )
    ).all():
        when = _aware(a.own_received_at)
        if a.task_id is None or when is None or not own_work(a):
            continue
        if a.task_id not in out or when > out[a.task_id]:
            out[a.task_id] = when
    return out


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
