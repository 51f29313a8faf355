"""Adjudication, the store's side: which clips need an adjudicator, which were sent, and
what the adjudicators decided.

A clip goes to adjudication when its alpha in a dimension of ``adjudication.thresholds``
is below that dimension's threshold (or undefined while annotators disagree), or when the
adaptive overlap policy settled it *exhausted* (the panel is full and still split). The
clip is sent once, to a Label Studio project of its own (:mod:`annotate.adjudicate`); the
link from the clip to that task is kept here (:class:`api.models.AdjudicationLink`), so
every worker and machine sees what was sent.

The adjudicator's annotation comes back through the webhook like any other (verified
against Label Studio) and is stored under the adjudication project. :func:`decisions` then
reads it back for the main project, taking only annotations by the configured
adjudicators on linked tasks, and only turns the clip had when it was sent; anything else
is counted by reason, never taken.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from api import reports, store
from api.events import data_hash as data_hash
from api.models import (
    AdjudicationLink,
    AdjudicationProject,
    Annotation,
    GoldClip,
    Judgement,
    Member,
    Task,
    TaskOverlapRow,
    own_work,
)
from schemas.taxonomy import Taxonomy

__all__ = [
    "Decisions",
    "adjudicator_ids",
    "ambiguous_emails",
    "data_hash",
    "decisions",
    "forget_links",
    "links",
    "queue",
    "record_links",
    "status",
]


def queue(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    thresholds: Mapping[str, float],
    link: Callable[[int], str] | None = None,
    *,
    settled: Callable[[int, int], bool] | None = None,
    gold: Mapping[str, str] | None = None,
    gold_settled: Callable[[int, int], bool] | None = None,
) -> list[dict[str, Any]]:
    """The clips to send to an adjudicator, worst first.

    A clip is in the queue when its alpha in a dimension of ``thresholds`` is below that
    threshold (or undefined with disagreement), or when the overlap policy settled its task
    *exhausted*. Each entry: ``clip``, ``task``, ``alpha`` (the first dimension's),
    ``alphas`` (per dimension), ``annotators``, ``judgements``, ``url``, ``why`` and
    ``disagreeing_turns`` (turns with more than one value in a threshold dimension), and
    ``sent`` (the adjudication task id once sent, else ``None``). With ``settled``
    (``(task id, annotators) -> bool``) only clips whose panel is complete are listed: the
    service's automatic sending waits for that. ``gold`` (``{clip id: session id}``, see
    :mod:`api.gold`) adds the gold clips, judged or not, with ``gold`` true: an expert
    answers them blind, whatever the panel did (``task`` is ``None`` for a clip the store
    has not seen an annotation of yet). With ``gold_settled`` a gold clip is listed only
    once its panel is complete: every member can open the adjudication project, so the
    expert's answer must not be there while the panel is still labeling the clip.
    """
    unknown = [d for d in thresholds if d not in {x.name for x in taxonomy.dimensions}]
    if unknown:
        raise ValueError(
            f"adjudication.thresholds: unknown dimension(s) {unknown}; expected some of "
            f"{[d.name for d in taxonomy.dimensions]}"
        )
    entries: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, set[str]]] = {}
    first = next(iter(thresholds))
    exhausted = {
        r.task_id
        for r in db.exec(
            select(TaskOverlapRow).where(
                TaskOverlapRow.project_id == project_id, TaskOverlapRow.reason == "exhausted"
            )
        ).all()
    }
    known = project_id in store.projects(db)
    for dimension, threshold in thresholds.items():
        if not known and gold:
            break  # nothing judged yet: only the gold clips
        frame = reports.load(db, project_id, dimension, taxonomy)
        low = {c["clip"] for c in reports.adjudication(frame, threshold)}
        for clip, rows in frame.group(frame.clip).items():
            task = frame.clip_task.get(clip)
            annotators = {frame.annotator[i] for i in rows}
            entry = entries.setdefault(
                clip,
                {
                    "clip": clip,
                    "task": task,
                    "alpha": None,
                    "alphas": {},
                    "annotators": 0,
                    "judgements": 0,
                    "url": link(task) if link and task is not None else None,
                    "why": [],
                },
            )
            alpha = frame.alpha(rows)
            entry["alphas"][dimension] = alpha
            if dimension == first:
                entry["alpha"] = alpha
            entry["annotators"] = max(entry["annotators"], len(annotators))
            entry["judgements"] += len(rows)
            if clip in low:
                entry["why"].append(f"{dimension} alpha below {threshold:.2f}")
            for i in rows:
                values.setdefault(clip, {}).setdefault(frame.turn[i], set()).add(
                    f"{dimension}={frame.value[i]}"
                )
    for entry in entries.values():
        entry["gold"] = False
        if entry["task"] in exhausted:
            entry["why"].append("overlap exhausted")
    for clip in gold or {}:
        entry = entries.setdefault(
            clip,
            {
                "clip": clip,
                "task": None,
                "alpha": None,
                "alphas": {},
                "annotators": 0,
                "judgements": 0,
                "url": None,
                "why": [],
            },
        )
        entry["gold"] = True
        entry["why"].insert(0, "gold: an expert answers it blind")
    sent = {row.clip_id: row.adjudication_task_id for row in links(db, project_id)}
    own = own_annotators(db, project_id) if gold and gold_settled is not None else Counter()
    out = []
    for clip, entry in entries.items():
        if not entry["why"]:
            continue
        if (
            settled is not None
            and not entry["gold"]
            and not settled(entry["task"], entry["annotators"])
        ):
            continue
        if (
            entry["gold"]
            and gold_settled is not None
            and (entry["task"] is None or not gold_settled(entry["task"], own[entry["task"]]))
        ):
            continue
        per_turn: dict[str, dict[str, set[str]]] = {}
        for turn, given in values.get(clip, {}).items():
            for item in given:
                dimension, _, value = item.partition("=")
                per_turn.setdefault(turn, {}).setdefault(dimension, set()).add(value)
        entry["disagreeing_turns"] = sorted(
            t for t, dims in per_turn.items() if any(len(v) > 1 for v in dims.values())
        )
        entry["sent"] = sent.get(str(clip))
        out.append(entry)
    return sorted(out, key=_worst_first)


def own_annotators(db: Session, project_id: int) -> Counter[int]:
    """``{task id: annotators}`` counting only annotations Label Studio recorded as saved
    by the annotator named on them (``updated_by``), at least once: any member can post
    one in another's name, and a gold clip must not go where members can read its answer
    on the strength of forged annotators; nor can a member's later save over an
    annotator's work (even one that changes nothing) hold a gold clip back for good."""
    rows = db.exec(
        select(Annotation.task_id, func.count(func.distinct(Annotation.annotator)))
        .where(
            Annotation.project_id == project_id,
            col(Annotation.deleted).is_(False),
            col(Annotation.was_cancelled).is_(False),
            col(Annotation.own_saved_by) == col(Annotation.annotator),
        )
        .group_by(col(Annotation.task_id))
    ).all()
    return Counter({int(task): int(n) for task, n in rows if task is not None})


def _worst_first(entry: Mapping[str, Any]) -> tuple[bool, float, str]:
    known = [a for a in entry["alphas"].values() if a is not None]
    lowest = min(known) if known else None
    return (lowest is not None, lowest or 0.0, str(entry["clip"]))


def links(db: Session, project_id: int) -> list[AdjudicationLink]:
    """The project's clips sent to adjudication, in the order they were sent."""
    return list(
        db.exec(
            select(AdjudicationLink)
            .where(AdjudicationLink.project_id == project_id)
            .order_by(col(AdjudicationLink.id))
        ).all()
    )


def record_project(db: Session, project_id: int, adjudication_project_id: int) -> None:
    """Note that ``adjudication_project_id`` adjudicates ``project_id`` (once), and commit:
    the overlap keeper leaves such a project's tasks alone from their first event."""
    if db.get(AdjudicationProject, adjudication_project_id) is None:
        savepoint = db.begin_nested()
        db.add(
            AdjudicationProject(
                id=adjudication_project_id,
                project_id=project_id,
                recorded_at=datetime.now(UTC),
                checked_at=datetime.now(UTC),  # the sender has just made it as it should be
            )
        )
        try:
            savepoint.commit()
        except IntegrityError:  # another sender recorded it first
            savepoint.rollback()
    db.commit()


def record_links(db: Session, project_id: int, sent: Iterable[Mapping[str, Any]]) -> int:
    """Keep the links of clips just sent (``clip``, ``task``, ``adjudication_project``,
    ``adjudication_task``, ``turns``, ``disagreeing``, ``why``, ``hash``); a clip another
    sender linked first keeps that link, and a task linked to another clip is not linked
    again. Returns how many are new. Commits."""
    sent = list(sent)
    new = 0
    now = datetime.now(UTC)
    for item in sent:
        row = AdjudicationLink(
            project_id=project_id,
            clip_id=str(item["clip"]),
            source_task_id=int(item["task"]),
            adjudication_project_id=int(item["adjudication_project"]),
            adjudication_task_id=int(item["adjudication_task"]),
            turns=[str(t) for t in item["turns"]],
            disagreeing=[str(t) for t in item["disagreeing"]],
            reasons=[str(w) for w in item["why"]],
            sent_at=now,
            sent_hash=item.get("hash"),
            predictions_hash=item.get("predictions_hash"),
        )
        savepoint = db.begin_nested()
        db.add(row)
        try:
            savepoint.commit()
            new += 1
        except IntegrityError:  # another sender linked the clip (or the task) first
            savepoint.rollback()
    # a gold clip's first showing stays what it was through a re-send
    db.exec(  # type: ignore[call-overload]
        update(GoldClip)
        .where(
            GoldClip.project_id == project_id,
            col(GoldClip.clip_id).in_([str(item["clip"]) for item in sent]),
            col(GoldClip.shown_at).is_(None),
        )
        .values(shown_at=now)
    )
    db.commit()
    return new


def forget_links(
    db: Session, project_id: int, held: Mapping[int, Iterable[int]]
) -> list[AdjudicationLink]:
    """Drop the links whose task the adjudication project no longer holds (``held``:
    adjudication project id -> its task ids, as Label Studio lists them now), so that
    those clips are sent again; returns the dropped links. The caller commits."""
    gone = [
        row
        for row in links(db, project_id)
        if row.adjudication_task_id not in set(held.get(row.adjudication_project_id, ()))
    ]
    for row in gone:
        db.delete(row)
    db.flush()
    return gone


def adjudicator_ids(db: Session, adjudicators: Iterable[str]) -> dict[str, str]:
    """``{Label Studio user id: as configured}`` of the adjudicators: a user id is taken as
    it is, an e-mail through the members the service has read from Label Studio
    (case-insensitive). An e-mail no member has yet maps to nothing, and so does one that
    more than one account holds (Label Studio Community does not verify addresses, and
    matches them ignoring case: two accounts could claim one adjudicator)."""
    return _resolved(db, adjudicators)[0]


def ambiguous_emails(db: Session, adjudicators: Iterable[str]) -> list[str]:
    """The configured e-mails that more than one Label Studio account holds."""
    return _resolved(db, adjudicators)[1]


def _resolved(db: Session, adjudicators: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    out: dict[str, str] = {}
    ambiguous: list[str] = []
    emails: dict[str, str] = {}
    for entry in adjudicators:
        text = str(entry).strip()
        if text.isdigit():
            out[str(int(text))] = text
        elif text:
            emails[text.lower()] = text
    if emails:
        rows = db.exec(
            select(Member.id, Member.email).where(
                func.lower(col(Member.email)).in_(list(emails))  # type: ignore[arg-type]
            )
        ).all()
        holders: dict[str, set[str]] = {}
        for user_id, email in rows:
            holders.setdefault(str(email).lower(), set()).add(str(user_id))
        for email, ids in holders.items():
            if len(ids) == 1:
                out[next(iter(ids))] = emails[email]
            else:
                ambiguous.append(emails[email])
    return out, sorted(ambiguous)


@dataclass
class Decisions:
    """What the adjudicators decided for a project.

    ``turns``: turn id -> dimension -> value. ``clips``: clip id -> the decision's
    ``adjudicator`` (user id), ``annotation``, ``updated_at``, ``adjudication_task``.
    ``ignored``: annotations and values not taken, by reason. ``by_clip``: clip id -> turn
    id -> dimension -> value.
    """

    turns: dict[str, dict[str, str]] = field(default_factory=dict)
    by_clip: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)


def decisions(db: Session, project_id: int, adjudicators: Sequence[str]) -> Decisions:
    """The adjudicators' decisions on the project's clips (see the module's docstring).

    Per clip the latest annotation (by its adjudicator's own last save, then highest id)
    by an adjudicator is the decision; a cancelled (skipped) one decides nothing. Any
    member can write through Label Studio's API in an adjudicator's name (``completed_by``
    is the caller's to set) and can edit a task's data, so a decision is taken only when
    Label Studio recorded the adjudicator as saving it (``updated_by``), and nobody since
    changed its result or its annotator (:func:`api.models.own_work`: starring it as
    ground truth takes nothing away), and only while the task's data is what was sent
    (:func:`data_hash`). A clip counts as decided only when a value was taken.
    """
    out = Decisions()
    linked = {row.adjudication_task_id: row for row in links(db, project_id)}
    if not linked:
        return out
    allowed = adjudicator_ids(db, adjudicators)
    annotations = db.exec(
        select(Annotation).where(
            col(Annotation.task_id).in_(list(linked)), col(Annotation.deleted).is_(False)
        )
    ).all()
    chosen: dict[int, Annotation] = {}
    for a in annotations:
        link = linked.get(a.task_id or -1)
        if link is None or a.project_id != link.adjudication_project_id:
            continue
        if a.annotator not in allowed:
            out.ignored["annotation by someone not in adjudication.adjudicators"] += 1
            continue
        if a.own_saved_by is not None and a.own_saved_by != a.annotator:
            out.ignored[
                "annotation given to another annotator after it was saved "
                "(Label Studio's completed_by)"
            ] += 1
            continue
        if not own_work(a):
            out.ignored[
                "annotation in an adjudicator's name last saved by someone else "
                "(Label Studio's updated_by)"
            ] += 1
            continue
        if a.was_cancelled:
            out.ignored["annotation skipped by the adjudicator"] += 1
            continue
        best = chosen.get(link.adjudication_task_id)
        if best is None or _newer(a, best):
            if best is not None:
                out.ignored["older decision on the same clip"] += 1
            chosen[link.adjudication_task_id] = a
        else:
            out.ignored["older decision on the same clip"] += 1
    held = {
        t.id: t.data
        for t in db.exec(select(Task).where(col(Task.id).in_(list(chosen)))).all()
        if t.id is not None
    }
    for task in list(chosen):
        link = linked[task]
        data = held.get(task)
        if link.tampered_at is not None or (
            link.sent_hash is not None and (data is None or data_hash(data) != link.sent_hash)
        ):
            out.ignored["adjudication task changed in Label Studio after it was sent"] += 1
            del chosen[task]
    if not chosen:
        return out
    by_annotation = {a.id: (task, a) for task, a in chosen.items()}
    judgements = db.exec(
        select(Judgement.annotation_id, Judgement.turn_id, Judgement.dimension, Judgement.value)
        .where(col(Judgement.annotation_id).in_(list(by_annotation)))
        .order_by(col(Judgement.id))
    ).all()
    for annotation_id, turn_id, dimension, value in judgements:
        task, annotation = by_annotation[annotation_id]
        link = linked[task]
        if turn_id not in set(link.turns):
            out.ignored["value on a turn the clip did not have when sent"] += 1
            continue
        out.turns.setdefault(turn_id, {})[dimension] = value
        out.by_clip.setdefault(link.clip_id, {}).setdefault(turn_id, {})[dimension] = value
    for task, annotation in chosen.items():
        link = linked[task]
        if link.clip_id not in out.by_clip:
            out.ignored["decision with no value on the clip's turns"] += 1
            continue
        out.clips[link.clip_id] = {
            "adjudicator": annotation.annotator,
            "annotation": annotation.id,
            "updated_at": annotation.own_updated_at or annotation.updated_at,
            "adjudication_task": task,
        }
    return out


def _newer(a: Annotation, b: Annotation) -> bool:
    """Whether ``a`` is the later decision: by its adjudicator's own last save (a later
    save by someone else that changed nothing, a star, does not make it newer)."""
    far = datetime.min.replace(tzinfo=UTC)
    key_a = (_aware(a.own_updated_at or a.updated_at) or far, a.id)
    key_b = (_aware(b.own_updated_at or b.updated_at) or far, b.id)
    return key_a > key_b


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def status(
    db: Session, project_id: int, adjudicators: Sequence[str], link: Callable[[int, int], str]
) -> dict[str, Any]:
    """The clips sent to adjudication and what was decided, for the API and the CLI:
    ``sent``, ``decided``, ``waiting``, ``ignored`` (by reason), ``adjudicators`` (the
    configured ones with the user id each resolved to, or ``None``), and ``data`` (one
    entry per sent clip, with its decided turns)."""
    sent = links(db, project_id)
    found = decisions(db, project_id, adjudicators)
    resolved = adjudicator_ids(db, adjudicators)
    by_config = {v: k for k, v in resolved.items()}
    ambiguous = set(ambiguous_emails(db, adjudicators))
    data = []
    for row in sent:
        decided = found.clips.get(row.clip_id)
        data.append(
            {
                "clip": row.clip_id,
                "task": row.source_task_id,
                "adjudication_project": row.adjudication_project_id,
                "adjudication_task": row.adjudication_task_id,
                "url": link(row.adjudication_project_id, row.adjudication_task_id),
                "why": list(row.reasons or []),
                "disagreeing_turns": list(row.disagreeing or []),
                "sent_at": row.sent_at,
                "tampered_at": row.tampered_at,
                "decided": decided is not None,
                "adjudicator": decided["adjudicator"] if decided else None,
                "turns": {t: found.turns[t] for t in row.turns or [] if t in found.turns}
                if decided
                else {},
            }
        )
    return {
        "sent": len(sent),
        "decided": sum(1 for d in data if d["decided"]),
        "waiting": sum(1 for d in data if not d["decided"]),
        # tasks a member changed after they were sent: no decision on them counts; delete
        # the task in Label Studio and the next send makes a fresh one
        "tampered": sum(1 for d in data if d["tampered_at"] is not None),
        "ignored": dict(sorted(found.ignored.items())),
        "adjudicators": [
            {
                "configured": str(a),
                "user": by_config.get(str(a).strip()),
                "ambiguous": str(a).strip() in ambiguous,
            }
            for a in adjudicators
        ],
        "data": data,
    }
