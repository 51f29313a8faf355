"""Adjudication in Label Studio Community: send the clips the panel could not agree on to an
adjudication project of their own.

Each clip becomes one task there: the clip as annotators saw it (audio, dialogue, prompt,
context), plus ``panel``, every annotator's values for every turn side by side under
pseudonyms (A1, A2, ... in the order they first labeled the clip), with the turns the
panel split on marked ``⚠`` in the panel and in the dialogue. The adjudicator starts from a
pre-annotation that holds the turn regions and the values the panel gave unanimously; the
split turns are left for them to decide. The project takes one annotation per task.

Sending is idempotent and safe from several machines at once: tasks are pushed by clip key
(:func:`annotate.ls_push.push_tasks` removes a copy two pushes made at the same
moment), and the store keeps one link per clip (:mod:`api.adjudication`). The adjudicator's
annotation flows back through the service's webhook like any other and is verified
against Label Studio; only ``adjudication.adjudicators`` count.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from label_studio_sdk.core.api_error import ApiError
from sqlmodel import Session, col, select

from annotate.adjudication_guard import guard, predictions_hash, project_differences
from annotate.config import ConfigError, Settings
from annotate.labelstudio import (
    BLIND_STREAM,
    Pushed,
    ensure_local_storage,
    ensure_webhook,
    find_project,
    iter_tasks,
    list_clip_tasks,
    push_tasks,
)
from api import adjudication, resends, store
from api.db import held_lock
from api.gold import gold_clips
from api.models import Judgement, PinnedTask, Task
from schemas.codec import encode_annotation
from schemas.label_config import label_config
from schemas.taxonomy import Taxonomy

__all__ = [
    "ADJUDICATION_VERSION",
    "SendReport",
    "adjudication_task",
    "adjudication_title",
    "ensure_adjudication_project",
    "send",
    "task_key",
]

# The model version of the adjudication tasks' pre-annotation (turn regions + unanimous
# values), which the adjudication project shows its adjudicators.
ADJUDICATION_VERSION = "improv-annotate-adjudication"
MARK = "⚠"


def adjudication_title(settings: Settings) -> str:
    """The adjudication project's title (``adjudication.project_title``, or the main
    project's title with `` · adjudication``)."""
    return (
        settings.adjudication.project_title
        or f"{settings.label_studio.project_title} · adjudication"
    )


def ensure_adjudication_project(client: Any, settings: Settings, taxonomy: Taxonomy) -> Any:
    """The adjudication project, created or brought up to date, with the service's webhook.

    Its label config is the main project's with the panel above the dialogue; one
    annotation per task; the stream shows the pre-annotation and no one else's work.
    """
    title = adjudication_title(settings)
    options = adjudication_options(settings, taxonomy)
    project = find_project(client, title)
    if project is None:
        created = client.projects.create(title=title, **options)
        project = find_project(client, title)  # two senders at once: the oldest stays
        if project is None or project.id == created.id:
            project = created
        else:
            client.projects.delete(id=created.id)
    elif project_differences(project, options):
        project = client.projects.update(id=project.id, **options)
    ensure_webhook(
        client, int(project.id), settings.webhook_url, settings.service.webhook_secret or ""
    )
    return project


def adjudication_options(settings: Settings, taxonomy: Taxonomy) -> dict[str, Any]:
    """What the adjudication project is made with: the label config (the main project's
    with the panel), the pre-annotation's model version, a blind stream, one annotation
    per task."""
    return {
        **BLIND_STREAM,
        "model_version": ADJUDICATION_VERSION,
        "label_config": label_config(
            taxonomy, video=settings.label_studio.video, adjudication=True
        ),
        "maximum_annotations": 1,
        # set, Label Studio rewrites every URL in the task data it serves and sends (a
        # proxy with these credentials): the data would no longer be what was sent
        "task_data_login": None,
        "task_data_password": None,
        "description": f"Adjudication of {settings.label_studio.project_title!r}. "
        "Created by improv-annotate.",
    }


def task_key(settings: Settings, project_id: int, clip_key: str) -> str:
    """The clip key of a clip's task in the adjudication project: a keyed hash (with the
    service's API key) of the project and the clip's key, so that no member can make a task
    under it before the clip is sent and have the sender link their task. Refuses without
    ``service.api_key``: an empty secret would let anyone compute the key."""
    if not settings.service.api_key:
        raise ConfigError(
            "service.api_key is empty: adjudication tasks are keyed with it, so that no "
            "member can make a task under a clip's key before it is sent"
        )
    secret = settings.service.api_key.encode()
    digest = hmac.new(secret, f"adjudication|{project_id}|{clip_key}".encode(), "sha256")
    return f"adj-{digest.hexdigest()[:24]}"


def _pseudonyms(judgements: Sequence[Any]) -> dict[str, str]:
    order: dict[str, int] = {}
    for j in sorted(judgements, key=lambda j: (j.annotation_id, j.id)):
        order.setdefault(j.annotator, len(order))
    return {annotator: f"A{k + 1}" for annotator, k in order.items()}


def adjudication_task(
    source: Mapping[str, Any],
    judgements: Sequence[Any],
    taxonomy: Taxonomy,
    disagreeing: Sequence[str],
    why: Sequence[str],
    *,
    blind: bool = False,
    key: str | None = None,
) -> dict[str, Any]:
    """The adjudication project's task for one clip.

    ``source`` is the clip task's data; ``judgements`` its stored judgements (objects with
    ``annotation_id``, ``id``, ``annotator``, ``turn_id``, ``dimension``, ``value``);
    ``disagreeing`` the turn ids the panel split on. The task's dialogue keeps every turn
    id, so the adjudicator's values land on the clip's own turns. ``blind`` (a gold clip):
    the panel's labels are neither shown nor pre-filled; the expert answers on their own.
    ``key``: the task's clip key in the adjudication project (see :func:`task_key`).
    """
    if blind:
        judgements, disagreeing = (), ()
    names = _pseudonyms(judgements)
    given: dict[str, dict[str, dict[str, str]]] = {}
    for j in judgements:
        given.setdefault(j.turn_id, {}).setdefault(j.dimension, {})[j.annotator] = j.value
    split = set(disagreeing)
    dialogue = []
    lines = [
        f"Sent because: {'; '.join(why)}.",
        f"Annotators: {', '.join(sorted(names.values(), key=lambda n: int(n[1:])))} "
        "(in the order they first labeled this clip).",
        f"{MARK} marks the {len(split)} turn(s) they split on; those are left for you to "
        "decide, the others start with the value everyone gave.",
        "",
    ]
    if blind:
        lines = [
            "Label every turn yourself: no one's labels are shown or filled in.",
            "",
        ]
    unanimous: dict[int, dict[str, str]] = {}
    for index, line in enumerate(source.get("dialogue") or []):
        turn = str(line.get("turn_id"))
        speaker = str(line.get("speaker") or "")
        marked = turn in split
        dialogue.append({**line, "speaker": f"{MARK} {speaker}" if marked else speaker})
        lines.append(f"{MARK + ' ' if marked else ''}Turn {index + 1} · {speaker}")
        for dim in taxonomy.dimensions:
            values = given.get(turn, {}).get(dim.name)
            if not values:
                continue
            shown = " · ".join(
                f"{names[a]} {v}" for a, v in sorted(values.items(), key=lambda kv: names[kv[0]])
            )
            lines.append(f"    {dim.title or dim.name}: {shown}")
            if len(set(values.values())) == 1 and len(values) > 1 and not marked:
                unanimous.setdefault(index, {})[dim.name] = next(iter(values.values()))
    data = {
        key: value
        for key, value in source.items()
        if key not in ("dialogue", "content_hash", "intended")
    }
    data.update(
        dialogue=dialogue,
        title=f"Adjudicate · {source.get('title') or source.get('clip_id')}",
        panel="\n".join(lines),
    )
    if key is not None:
        data["clip_key"] = key
    data["content_hash"] = adjudication.data_hash(data)
    result = encode_annotation(dialogue, unanimous, taxonomy)
    return {
        "data": data,
        "predictions": [{"model_version": ADJUDICATION_VERSION, "result": result}],
    }


@dataclass
class SendReport:
    """What :func:`send` found and did: ``queue`` (every clip the thresholds select),
    ``due`` (those not sent yet), ``sent`` (clips linked by this run), ``refused`` (clips
    whose task in the adjudication project already had annotations before it could be
    linked: not linked, with the task), ``resent`` (clips whose adjudication task was
    deleted in Label Studio, or tampered with and deleted by this run: their links are
    dropped and they are due again), ``tampered`` (what :func:`annotate.adjudication_guard.guard`
    found changed in the adjudication project), ``held`` (clips due again but re-sent
    more than ``adjudication.max_resends`` times: held for a person, :mod:`api.resends`),
    ``project``
    (the adjudication project's id; ``None`` on a dry run), ``pushed`` (Label Studio's
    count)."""

    queue: list[dict[str, Any]] = field(default_factory=list)
    due: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    project: int | None = None
    pushed: Pushed | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as the CLI's ``--json`` prints it."""
        return {
            "queued": len(self.queue),
            "already_sent": len(self.queue) - len(self.due),
            "due": [_brief(c) for c in self.due],
            "sent": self.sent,
            "refused": self.refused,
            "resent": self.resent,
            "tampered": self.tampered,
            "held": self.held,
            "adjudication_project": self.project,
        }


def _brief(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "clip": entry["clip"],
        "task": entry["task"],
        "alphas": entry["alphas"],
        "annotators": entry["annotators"],
        "why": entry["why"],
        "gold": entry["gold"],
        "disagreeing_turns": entry["disagreeing_turns"],
    }


def _unseen_tasks(
    db: Session, client: Any, project_id: int, due: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[int, dict[str, Any]]]:
    """``{clip id: (task id, data)}`` from Label Studio for the due clips the store has no
    task of (gold clips nobody has annotated yet)."""
    wanted = set()
    for entry in due:
        stored = (
            db.exec(select(Task.id).where(Task.id == entry["task"])).first()
            if entry["task"] is not None
            else None
        )
        if stored is None:
            wanted.add(str(entry["clip"]))
    if not wanted:
        return {}
    found = {}
    # the data the import pinned, not what members may have made of it in Label Studio
    for pin in db.exec(select(PinnedTask).where(PinnedTask.project_id == project_id)).all():
        clip = str((pin.data or {}).get("clip_id"))
        if clip in wanted:
            found[clip] = (int(pin.task_id), dict(pin.data))
    if wanted <= set(found):
        return found
    _release(db)
    for task in iter_tasks(client, project_id):
        data = dict(task.data or {})
        clip = str(data.get("clip_id"))
        if clip in wanted and clip not in found:
            found[clip] = (int(task.id), data)
    return found


def _release(db: Session) -> None:
    """End the store's transaction before talking to Label Studio: on SQLite every
    transaction that writes holds the one write lock, and the applier must not wait on a
    slow Label Studio (the sender's own lock is held apart, :func:`api.db.held_lock`)."""
    db.commit()


def _forget_tampered(db: Session, client: Any, project_id: int) -> tuple[list[str], list[str]]:
    """Delete in Label Studio (and in the store) the adjudication tasks whose links are
    marked tampered, and drop their links: their clips are due again, as fresh tasks.
    Returns the clips whose own task was tampered with, and those marked only for a change
    to the whole project (not counted against ``adjudication.max_resends``)."""
    tampered = [row for row in adjudication.links(db, project_id) if row.tampered_at is not None]
    if not tampered:
        return [], []
    wide = {row.clip_id for row in tampered if row.tampered_by_project}
    _release(db)
    for row in tampered:
        try:
            client.tasks.delete(id=str(row.adjudication_task_id))
        except ApiError as exc:
            if exc.status_code != 404:  # 404: gone already
                raise
    gone = {row.adjudication_task_id for row in tampered}
    held = {
        p: [t for t in tasks if t not in gone] for p, tasks in _linked_tasks(db, project_id).items()
    }
    dropped = adjudication.forget_links(db, project_id, held)
    for row in dropped:
        store.delete_tasks(db, row.adjudication_project_id, [row.adjudication_task_id])
    clips = [row.clip_id for row in dropped]
    return [c for c in clips if c not in wide], [c for c in clips if c in wide]


def _linked_tasks(db: Session, project_id: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for row in adjudication.links(db, project_id):
        out.setdefault(row.adjudication_project_id, []).append(row.adjudication_task_id)
    return out


def _forget_deleted(db: Session, client: Any, project_id: int) -> tuple[list[str], list[str]]:
    """Drop the links to adjudication tasks Label Studio no longer has (a deleted task, or
    a deleted adjudication project): those clips are due again. Returns the clips whose
    task was deleted, and those of deleted projects (not counted against
    ``adjudication.max_resends``: a change to the whole project). A task Label Studio
    answers 404 for is also deleted in the store at once, with its annotations: Label
    Studio on SQLite gives a new task the id of the last one deleted, and the new task
    must not inherit the old one's decision."""
    linked = [
        (row.adjudication_project_id, row.adjudication_task_id)
        for row in adjudication.links(db, project_id)
    ]
    if not linked:
        return [], []
    _release(db)
    projects = sorted({p for p, _ in linked})
    gone_projects = {p for p in projects if not _project_exists(client, p)}
    held = {
        p: [] if p in gone_projects else [t.id for t in list_clip_tasks(client, p)]
        for p in projects
    }
    missing = set()
    for p, task in linked:
        if task in set(held[p]):
            continue
        try:
            found = client.tasks.get(id=str(task))
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            missing.add(task)
            continue
        elsewhere = getattr(found, "project", None)
        if elsewhere is not None and int(elsewhere) != p:  # its id given to a new task
            missing.add(task)
    dropped = adjudication.forget_links(db, project_id, held)
    for row in dropped:
        if row.adjudication_task_id in missing:
            store.delete_tasks(db, row.adjudication_project_id, [row.adjudication_task_id])
    return (
        [r.clip_id for r in dropped if r.adjudication_project_id not in gone_projects],
        [r.clip_id for r in dropped if r.adjudication_project_id in gone_projects],
    )


def _project_exists(client: Any, project: int) -> bool:
    try:
        client.projects.get(id=project)
    except ApiError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


def send(
    db: Session,
    client: Any,
    settings: Settings,
    taxonomy: Taxonomy,
    project_id: int,
    *,
    dry_run: bool = False,
    settled: Callable[[int, int], bool] | None = None,
    gold_settled: Callable[[int, int], bool] | None = None,
) -> SendReport:
    """Send the project's adjudication queue (:func:`api.adjudication.queue` with
    ``adjudication.thresholds``) to the adjudication project; clips sent before are left
    alone. ``dry_run``: only say what would be sent. ``settled``: only clips whose panel is
    complete (the service's automatic sending). ``gold_settled``: gold clips only once
    their panel is complete (the service passes it always)."""
    # one sender per project at a time, on every machine (PostgreSQL: an advisory lock
    # held until the send ends), so no sender links a task another removes; on SQLite the
    # unique links and the keyed task keys keep two senders apart
    db.commit()
    bind = db.get_bind()
    with held_lock(getattr(bind, "engine", bind), f"adjudicate{project_id}"):  # type: ignore[arg-type]
        return _send(db, client, settings, taxonomy, project_id, dry_run, settled, gold_settled)


def _send(
    db: Session,
    client: Any,
    settings: Settings,
    taxonomy: Taxonomy,
    project_id: int,
    dry_run: bool,
    settled: Callable[[int, int], bool] | None,
    gold_settled: Callable[[int, int], bool] | None,
) -> SendReport:
    report = SendReport()
    if not dry_run:
        options = adjudication_options(settings, taxonomy)
        _release(db)
        report.tampered = guard(
            db,
            client,
            project_id,
            options,
            lambda: ensure_adjudication_project(client, settings, taxonomy),
            set(adjudication.adjudicator_ids(db, settings.adjudication.adjudicators)),
        )
        counted, wide = _forget_tampered(db, client, project_id)
        deleted, dropped = _forget_deleted(db, client, project_id)
        resends.count(db, project_id, counted + deleted)
        report.resent = counted + wide + deleted + dropped
    report.queue = adjudication.queue(
        db,
        project_id,
        taxonomy,
        settings.adjudication.thresholds,
        settled=settled,
        gold=gold_clips(db, project_id),
        gold_settled=gold_settled,
    )
    kept = resends.held(db, project_id, settings.adjudication.max_resends)
    report.held = [
        {"clip": str(c["clip"]), "resends": kept[str(c["clip"])]}
        for c in report.queue
        if c["sent"] is None and str(c["clip"]) in kept
    ]
    report.due = [c for c in report.queue if c["sent"] is None and str(c["clip"]) not in kept]
    if dry_run:
        return report
    if not report.due:
        db.commit()  # links dropped above, if any
        return report
    tasks, keys = [], {}
    sessions: set[str] = set()
    unseen = _unseen_tasks(db, client, project_id, report.due)
    for entry in report.due:
        source = db.exec(
            select(Task).where(Task.id == entry["task"], Task.project_id == project_id)
        ).first()
        data = source.data if source is not None else unseen.get(str(entry["clip"]), (0, None))[1]
        if data is None:
            continue  # a gold clip Label Studio no longer has
        if source is None:
            entry["task"] = unseen[str(entry["clip"])][0]
        judgements = db.exec(
            select(Judgement)
            .where(Judgement.project_id == project_id, Judgement.task_id == entry["task"])
            .order_by(col(Judgement.id))
        ).all()
        clip_key = str(data.get("clip_key") or data.get("clip_id") or entry["clip"])
        task = adjudication_task(
            data,
            judgements,
            taxonomy,
            entry["disagreeing_turns"],
            entry["why"],
            blind=entry["gold"],
            key=task_key(settings, project_id, clip_key),
        )
        tasks.append(task)
        keys[str(task["data"]["clip_key"])] = (entry, task)
        if data.get("session_id"):
            sessions.add(str(data["session_id"]))
    _release(db)
    project = ensure_adjudication_project(client, settings, taxonomy)
    report.project = int(project.id)
    adjudication.record_project(db, project_id, report.project)  # before any task goes there
    _release(db)  # its read, when the project was recorded before, before the push
    if settings.label_studio.media_base_url is None:
        for session_id in sorted(sessions):
            folder = settings.media_path / session_id
            if folder.is_dir():
                ensure_local_storage(client, report.project, folder)
    report.pushed = push_tasks(client, report.project, tasks)
    held = {t.key: t for t in list_clip_tasks(client, report.project)}
    sent = []
    for key, (entry, task) in keys.items():
        if key not in held:
            continue
        if held[key].annotations:
            # annotated before it was linked: not a decision on what this sender sent
            report.refused.append(
                {"clip": entry["clip"], "adjudication_task": held[key].id, "why": "annotated"}
            )
            continue
        sent.append(
            {
                "clip": entry["clip"],
                "task": entry["task"],
                "adjudication_project": report.project,
                "adjudication_task": held[key].id,
                "turns": [str(line.get("turn_id")) for line in task["data"]["dialogue"]],
                "disagreeing": entry["disagreeing_turns"],
                "why": entry["why"],
                "hash": adjudication.data_hash(task["data"]),
                "predictions_hash": predictions_hash(task["predictions"]),
            }
        )
    adjudication.record_links(db, project_id, sent)
    report.sent = [
        {"clip": s["clip"], "task": s["task"], "adjudication_task": s["adjudication_task"]}
        for s in sent
    ]
    return report
