"""Hidden repeats: a share of clips imported a second time, later, as tasks annotators
cannot tell from new ones, so that each annotator's agreement with themselves can be
measured (``improv-annotate import --repeat-share``).

A repeat is a copy of a clip's task under a clip id, clip index and turn ids of the
ordinary form (the next numbers of its session), pushed after the session's clips. Its
text and audio are the clip's own: that is what a repeat is. The store keeps which tasks
are repeats (:class:`api.models.RepeatClip`, written before the copies reach Label Studio,
with each copy's Label Studio task noted once it is there) and nothing in the task says so.

The judgements on a repeat must not count twice: :func:`divert` files the events of
repeat tasks under the negated project id before they are applied, so every figure,
sum, overlap decision, report and export of the project leaves them out by construction,
while deletions and edits follow them as any annotation's. :func:`intra_rater` pairs
each annotator's second pass with their first, turn by turn.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, and_, col, or_, select

from api.models import Judgement, RepeatClip

if TYPE_CHECKING:
    from api.store import Event

__all__ = [
    "divert",
    "intra_rater",
    "keep_repeats",
    "plan_copies",
    "record_tasks",
    "repeat_clips",
    "repeat_copy",
    "retitle",
]


def repeat_copy(
    task: Mapping[str, Any],
    clip_index: int,
    first_turn: int,
    content_hash: Any,
    *,
    total: int | None = None,
    media_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A hidden repeat of ``task`` (a task as the importer pushes it) as clip number
    ``clip_index`` of its session, its turns numbered from ``first_turn``; and the map of
    the copy's turn ids to the original's.

    Ids keep the importer's forms (``<session>-c<NNN>``, ``<session>-t<NNNNN>``); the clip
    key, which must differ from the original's, keeps its form with the end one
    millisecond later. The title numbers the copy as clip ``clip_index + 1`` of ``total``
    (see :func:`retitle`). With ``media_dir`` (the session's media folder) the copy's audio
    and video are copies of the original's files under the copy's own names, so no URL is
    shared with the original. The prompt, context, audio and text are the original's.
    """
    data = dict(task["data"])
    session = str(data["session_id"])
    turns: dict[str, str] = {}
    lines = []
    for k, line in enumerate(data.get("dialogue") or []):
        index = first_turn + k
        copy_id = f"{session}-t{index:05d}"
        turns[copy_id] = str(line["turn_id"])
        lines.append({**line, "turn_id": copy_id, "turn_index": index})
    start, end = float(data.get("clip_start", 0.0)), float(data.get("clip_end", 0.0))
    clip_id = f"{session}-c{clip_index:03d}"
    data.update(
        dialogue=lines,
        clip_id=clip_id,
        clip_index=clip_index,
        clip_key=f"{session}@{start:.3f}-{end + 0.001:.3f}",
    )
    if total is not None:
        data["title"] = retitle(str(data.get("title") or ""), clip_index, total)
    if media_dir is not None:
        for field_name in ("audio", "video"):
            if isinstance(data.get(field_name), str):
                data[field_name] = _own_file(data[field_name], media_dir, clip_id)
    copy = {"data": data, "predictions": task.get("predictions", [])}
    data.pop("content_hash", None)
    data["content_hash"] = content_hash(copy)
    return copy, turns


_CLIP_OF = re.compile(r"\bclip \d+ of \d+\b")


def retitle(title: str, clip_index: int, total: int) -> str:
    """``title`` with its ``clip K of N`` (the importer's form) saying clip
    ``clip_index + 1`` of ``total``; a title without it is returned as it is."""
    return _CLIP_OF.sub(f"clip {clip_index + 1} of {total}", title, count=1)


def _own_file(url: str, media_dir: Path, clip_id: str) -> str:
    """The URL of a copy of the media file ``url`` names (in ``media_dir``), under the
    copy's clip id; ``url`` itself when the file is not in ``media_dir``."""
    name = url.rsplit("/", 1)[-1]
    source = media_dir / unquote(name)
    _, sep, rest = unquote(name).partition("_")
    if not sep or not source.is_file():
        return url
    target = media_dir / f"{clip_id}_{rest}"
    if not target.exists():
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return url[: len(url) - len(name)] + quote(target.name)


def plan_copies(
    db: Session,
    project_id: int,
    session_id: str,
    tasks: Sequence[Mapping[str, Any]],
    picked: Sequence[Mapping[str, Any]],
    n_turns: int,
    content_hash: Any,
    media_dir: Path | None = None,
) -> tuple[list[tuple[dict[str, Any], str, dict[str, str]]], list[str]]:
    """The hidden repeats of a session's import: ``[(copy task, original clip id, turn
    map)]``, and warnings.

    A session that has copies in the store keeps exactly those, under the ids they were
    given, whatever share or key a re-import uses: the store's turn map and Label Studio's
    task must stay one copy. Otherwise the ``picked`` tasks are copied as the clips after
    the session's ``tasks``, their turns numbered after its ``n_turns`` turns. A copy
    whose ids the session has grown into (a re-import that added clips or turns) is
    left out with a warning: two tasks would share a clip id.
    """
    stored = [r for r in repeat_clips(db, project_id) if r.session_id == session_id]
    by_clip = {str(t["data"]["clip_id"]): t for t in tasks}
    warnings: list[str] = []
    plan: list[tuple[int, int, Mapping[str, Any]]] = []  # (clip index, first turn, task)
    if stored:
        for row in stored:
            original = by_clip.get(row.original_clip_id)
            clip_index = _number(row.clip_id, "-c")
            first = min((_number(t, "-t") for t in row.turns or {}), default=-1)
            if original is None or clip_index < 0 or first < 0:
                warnings.append(
                    f"{session_id}: hidden repeat {row.clip_id} left out: its original "
                    f"{row.original_clip_id} is no longer a clip of the session"
                )
                continue
            plan.append((clip_index, first, original))
    else:
        first = n_turns
        for k, original in enumerate(picked):
            plan.append((len(tasks) + k, first, original))
            first += len(original["data"].get("dialogue") or [])
    total = len(tasks) + len(plan)
    out = []
    for clip_index, first, original in plan:
        copy, turns = repeat_copy(
            original, clip_index, first, content_hash, total=total, media_dir=media_dir
        )
        kept = next((r for r in stored if r.clip_id == copy["data"]["clip_id"]), None)
        if kept is not None and dict(kept.turns or {}) != turns:
            warnings.append(
                f"{session_id}: hidden repeat {kept.clip_id} left out: its original "
                f"{kept.original_clip_id} has other turns now"
            )
            continue
        if clip_index < len(tasks) or first < n_turns:
            warnings.append(
                f"{session_id}: hidden repeat {copy['data']['clip_id']} left out: the session "
                "has grown into its ids (a re-import with more clips or turns)"
            )
            continue
        out.append((copy, str(original["data"]["clip_id"]), turns))
    return out, warnings


def _number(identifier: str, marker: str) -> int:
    """The number after the last ``marker`` of an importer's id, or -1."""
    _, sep, digits = str(identifier).rpartition(marker)
    return int(digits) if sep and digits.isdigit() else -1


def keep_repeats(
    db: Session, project_id: int, session_id: str, copies: Iterable[tuple[str, str, dict]]
) -> int:
    """Keep ``copies`` (``(copy clip id, original clip id, turn map)``) of a session;
    a copy kept before stays as it was. Returns how many are new. The caller commits."""
    new = 0
    now = datetime.now(UTC)
    for clip_id, original, turns in copies:
        savepoint = db.begin_nested()
        db.add(
            RepeatClip(
                project_id=project_id,
                clip_id=clip_id,
                original_clip_id=original,
                session_id=session_id,
                turns=dict(turns),
                made_at=now,
            )
        )
        try:
            savepoint.commit()
            new += 1
        except IntegrityError:  # kept by an earlier import, or another machine just now
            savepoint.rollback()
    return new


def repeat_clips(db: Session, project_id: int) -> list[RepeatClip]:
    """The project's hidden repeats."""
    return list(
        db.exec(
            select(RepeatClip)
            .where(RepeatClip.project_id == project_id)
            .order_by(col(RepeatClip.id))
        ).all()
    )


def record_tasks(db: Session, project_id: int, tasks: Mapping[str, int]) -> int:
    """Note the Label Studio task of each copy (``{copy clip id: task id}``), once pushed;
    a copy noted before keeps its task. Returns how many were noted. The caller commits."""
    noted = 0
    for row in db.exec(
        select(RepeatClip).where(
            RepeatClip.project_id == project_id,
            col(RepeatClip.clip_id).in_(list(tasks)),
            col(RepeatClip.task_id).is_(None),
        )
    ).all():
        row.task_id = int(tasks[row.clip_id])
        db.add(row)
        noted += 1
    return noted


def divert(db: Session, events: Sequence[Event]) -> list[Event]:
    """``events`` with each annotation event of a hidden repeat's task moved to the negated
    project id (one indexed read per call; nothing changes without repeats).

    A repeat is recognised by its Label Studio task, which no member can change; only a
    copy whose task is not noted yet (the moment between its push and the import noting
    it) is recognised by the ``clip_id`` in the task's data."""
    tasks: dict[int, set[int]] = {}
    clips: dict[int, set[str]] = {}
    for e in events:
        if e.annotation is not None and e.project_id > 0:
            tasks.setdefault(e.project_id, set()).add(e.annotation.task_id)
            clip = e.annotation.task_data.get("clip_id")
            if clip is not None:
                clips.setdefault(e.project_id, set()).add(str(clip))
    if not tasks:
        return list(events)
    rows = db.exec(
        select(RepeatClip.project_id, RepeatClip.clip_id, RepeatClip.task_id).where(
            col(RepeatClip.project_id).in_(list(tasks)),
            or_(
                col(RepeatClip.task_id).in_(sorted(set().union(*tasks.values()))),
                and_(
                    col(RepeatClip.task_id).is_(None),
                    col(RepeatClip.clip_id).in_(sorted(set().union(*clips.values(), set()))),
                ),
            ),
        )
    ).all()
    if not rows:
        return list(events)
    by_task = {(p, t) for p, _, t in rows if t is not None}
    by_clip = {(p, c) for p, c, t in rows if t is None}
    out = []
    for e in events:
        if e.annotation is not None and e.project_id > 0:
            clip = e.annotation.task_data.get("clip_id")
            if (e.project_id, e.annotation.task_id) in by_task or (
                clip is not None and (e.project_id, str(clip)) in by_clip
            ):
                e = dataclasses.replace(e, project_id=-e.project_id)
        out.append(e)
    return out


def intra_rater(
    db: Session, project_id: int, dimension: str
) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Per annotator, their two passes over the turns of hidden repeats they labeled
    twice: ``{annotator: (first pass {turn: value}, second pass {turn: value})}``, keyed
    by the original turn id."""
    maps: dict[str, str] = {}
    for row in repeat_clips(db, project_id):
        maps.update(row.turns or {})
    if not maps:
        return {}
    second: dict[str, dict[str, str]] = {}
    for turn, who, value in db.exec(
        select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
            Judgement.project_id == -project_id,
            Judgement.dimension == dimension,
            col(Judgement.turn_id).in_(list(maps)),
        )
    ).all():
        second.setdefault(who, {})[maps[turn]] = value
    if not second:
        return {}
    first: dict[str, dict[str, str]] = {}
    for turn, who, value in db.exec(
        select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
            Judgement.project_id == project_id,
            Judgement.dimension == dimension,
            col(Judgement.turn_id).in_(sorted(set(maps.values()))),
            col(Judgement.annotator).in_(list(second)),
        )
    ).all():
        first.setdefault(who, {})[turn] = value
    return {
        who: (first.get(who, {}), again)
        for who, again in second.items()
        if set(first.get(who, {})) & set(again)
    }
