"""Scorecards read from the store: ``GET /projects/{id}/scorecards/performers`` and
``GET /projects/{id}/scorecards/annotators``.

The records :func:`annotate.performers.performer_scorecard` needs come from what the store
keeps: the tasks' dialogues (turns, performers, clip times, the clip's place in its
session), the judgements, the annotations (who labeled which clip), the shift spans, and
the intended emotions the import kept here (never in Label Studio; a task imported before
they were kept may still carry ``intended`` on its turns, which is read as the export
reads it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence, Set
from datetime import UTC
from statistics import median
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlmodel import Session, col, func, select

from annotate import annotator_scores as scores
from annotate.performers import SHIFT_TOLERANCE, Span, Turn, performer_scorecard
from api import adjudication, intended, members, repeats, reports, store
from api.db import request_session
from api.gold import gold_clips
from api.models import Annotation, GoldClip, ShiftEventRow, saved_over
from schemas.taxonomy import Taxonomy

__all__ = ["annotators", "performers", "register"]

AUTHENTICITY = "authenticity"


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no time


def performers(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    *,
    sessions: Collection[str] | None = None,
    tolerance: float = SHIFT_TOLERANCE,
) -> dict[str, Any]:
    """The performers' scorecard of a project (of ``sessions`` only, when given).

    Turns without a performer, or without times, are counted under ``skipped_turns``
    (nothing is dropped silently).
    """
    kept = intended.intended_map(db, project_id)
    turns: list[Turn] = []
    skipped = 0
    for task in store.iter_tasks(db, project_id):
        data = task.data or {}
        session = str(data.get("session_id") or task.session_id or "")
        if sessions is not None and session not in sessions:
            continue
        offset = _float(data.get("audio_offset")) or 0.0
        for line in data.get("dialogue") or []:
            if not isinstance(line, dict):
                skipped += 1
                continue
            performer = line.get("performer") or line.get("speaker")
            start, end = _float(line.get("start")), _float(line.get("end"))
            turn_id, index = line.get("turn_id"), line.get("turn_index")
            if not performer or start is None or end is None or not turn_id:
                skipped += 1
                continue
            aim = kept.get(str(turn_id), line.get("intended"))
            turns.append(
                Turn(
                    turn_id=str(turn_id),
                    session_id=session,
                    turn_index=int(index) if isinstance(index, int) else len(turns),
                    performer=str(performer),
                    start=start + offset,
                    end=end + offset,
                    intended=str(aim) if aim else None,
                    task_id=task.id,
                )
            )
    wanted = {t.turn_id for t in turns}
    emotions: dict[str, dict[str, str]] = defaultdict(dict)
    ratings: dict[str, dict[str, float]] = defaultdict(dict)
    emotion = taxonomy.emotion.name
    for j in store.iter_judgements(db, project_id):
        if j.turn_id not in wanted:
            continue
        if j.dimension == emotion:
            emotions[j.turn_id][j.annotator] = j.value
        elif j.dimension == AUTHENTICITY:
            value = _float(j.value)
            if value is not None:
                ratings[j.turn_id][j.annotator] = value
    seen: dict[int, set[str]] = defaultdict(set)
    for task_id, annotator in db.exec(
        select(Annotation.task_id, Annotation.annotator).where(
            Annotation.project_id == project_id,
            col(Annotation.deleted).is_(False),
            col(Annotation.was_cancelled).is_(False),
        )
    ).all():
        if task_id is not None and annotator is not None:
            seen[task_id].add(str(annotator))
    spans = [
        Span(r.annotator, r.session_id, r.start, r.end)
        for r in db.exec(select(ShiftEventRow).where(ShiftEventRow.project_id == project_id))
        if sessions is None or r.session_id in sessions
    ]
    out = performer_scorecard(turns, emotions, ratings, seen=seen, spans=spans, tolerance=tolerance)
    out["skipped_turns"] = skipped
    out["intended_turns"] = sum(t.intended is not None for t in turns)
    if not turns:
        out["reason"] = "no turns in the store for this project"
    elif not out["intended_turns"]:
        out["reason"] = "no intended emotions kept for this project (session.yaml 'intended:')"
    return out


def _self(
    passes: tuple[dict[str, str], dict[str, str]] | None,
    codes: dict[str, float],
    level: str,
    any_repeats: bool,
) -> dict[str, Any]:
    """An annotator's second pass over hidden repeats against their first (turns both
    passes labeled)."""
    if passes is None:
        reason = (
            "this annotator labeled no hidden repeat twice"
            if any_repeats
            else "no hidden repeats in this project (import --repeat-share)"
        )
        return {"units": 0, "alpha": None, "reason": reason}
    first, second = ({t: codes[v] for t, v in p.items() if v in codes} for p in passes)
    return scores.versus(second, first, level)


def _expert_gold(
    db: Session, project_id: int, dim: Any, adjudicators: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """``({turn id: code}, {turn id: when it was sent})``: the adjudicators' answers on the
    project's gold clips, and when each clip went to the adjudication project (a POSIX
    time), where any member can see the answer from then on."""
    marked = gold_clips(db, project_id)
    if not marked:
        return {}, {}
    codes = store.codes_of(dim)
    found = adjudication.decisions(db, project_id, adjudicators)
    # first shown: kept through a re-send (a member who deletes the task sees the answer
    # again in the new one, but the clock does not start again)
    sent = {
        row.clip_id: _posix(row.sent_at)
        for row in adjudication.links(db, project_id)
        if row.clip_id in marked
    }
    for clip, shown in db.exec(
        select(GoldClip.clip_id, GoldClip.shown_at).where(
            GoldClip.project_id == project_id, col(GoldClip.shown_at).is_not(None)
        )
    ).all():
        if clip in sent:
            sent[clip] = min(sent[clip], _posix(shown))
    out, when = {}, {}
    for clip in marked:
        for turn, values in found.by_clip.get(clip, {}).items():
            value = values.get(dim.name)
            if value is not None and value in codes:
                out[turn] = float(codes[value])
                when[turn] = sent[clip]
    return out, when


def _posix(when: Any) -> float:
    if when is None:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _trusted_ground_truth(
    db: Session, project_id: int, adjudicators: Sequence[str]
) -> set[int] | None:
    """The ground-truth annotations that count as gold: with ``adjudication.adjudicators``
    set, only those an adjudicator made and last saved themselves (any member can mark an
    annotation ground truth in Label Studio); ``None`` (all) when none are configured."""
    if not adjudicators:
        return None
    allowed = set(adjudication.adjudicator_ids(db, adjudicators))
    rows = db.exec(
        select(Annotation.id, Annotation.annotator, Annotation.updated_by).where(
            Annotation.project_id == project_id, col(Annotation.ground_truth).is_(True)
        )
    ).all()
    return {a for a, who, saver in rows if who in allowed and saver == who}


def _versus_gold(
    own: dict[str, float],
    gold: dict[str, float],
    shown: dict[str, float],
    frame: Any,
    mine: Sequence[int],
    level: str,
    several: Mapping[tuple[str, int], int],
    overwritten: Set[int] = frozenset(),
) -> dict[str, Any]:
    """Agreement against gold, leaving out the values an annotator saved after the gold
    clip went to the adjudication project (``shown``), where they could read the answer
    (``edited_after_gold_shown`` counts them), their values on a gold task where they
    have saved more than one annotation themselves, deleted ones included
    (``several_annotations``): decoys labeled before the answer showed, the wrong ones
    deleted after, would score every guess that happened to be right; and values of
    annotations the annotator saved and someone else saved over since
    (``saved_by_another``, Label Studio's ``updated_by``): any member can rewrite
    another's annotation, and the score is the annotator's own work."""
    late = {
        frame.turn[i]
        for i in mine
        if frame.turn[i] in shown and _posix(frame.time[i]) > shown[frame.turn[i]]
    }
    decoyed = {
        frame.turn[i]
        for i in mine
        if frame.turn[i] in gold and several.get((frame.annotator[i], frame.task[i]), 0) > 1
    }
    foreign = {
        frame.turn[i] for i in mine if frame.turn[i] in gold and frame.annotation[i] in overwritten
    }
    out = scores.versus(
        {t: v for t, v in own.items() if t not in late | decoyed | foreign}, gold, level
    )
    if late:
        out["edited_after_gold_shown"] = len(late)
    if decoyed - late:
        out["several_annotations"] = len(decoyed - late)
    if foreign - late - decoyed:
        out["saved_by_another"] = len(foreign - late - decoyed)
    return out


def _annotation_counts(db: Session, project_id: int) -> dict[tuple[str, int], int]:
    """``{(annotator, task id): annotations they saved themselves}``, deleted ones included:
    an annotation a member posted in another's name, and deleted, is not theirs."""
    rows = db.exec(
        select(Annotation.annotator, Annotation.task_id, func.count())
        .where(
            Annotation.project_id == project_id,
            col(Annotation.own_saved_by) == col(Annotation.annotator),
        )
        .group_by(col(Annotation.annotator), col(Annotation.task_id))
    ).all()
    return {(str(who), int(task)): int(n) for who, task, n in rows if who is not None and task}


def _saved_by_another(db: Session, project_id: int) -> set[int]:
    """The project's live annotations their annotator saved themselves that are no longer
    their own work (:func:`api.models.saved_over`): someone else changed the result, or
    renamed the annotator. (Annotations someone made in the annotator's name from the
    start, as an import of another tool's labels does, stay theirs; so does one another
    member saved without changing it, starring it as ground truth say.)"""
    rows = db.exec(
        select(Annotation).where(
            Annotation.project_id == project_id,
            col(Annotation.deleted).is_(False),
            col(Annotation.own_saved_by).is_not(None),
        )
    ).all()
    return {int(a.id) for a in rows if saved_over(a)}


def annotators(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    *,
    dimension: str | None = None,
    adjudicators: Sequence[str] = (),
) -> dict[str, Any]:
    """The annotators' scorecard of a project on one dimension (the emotion by default):
    per annotator, agreement with the rest and against gold (alpha with its interval,
    units compared), drift, label bias, speed (Label Studio's lead time) and shift timing
    lag (:mod:`annotate.annotator_scores` defines each figure). Agreement with themselves
    (``self``) compares their second pass over hidden repeats with their first
    (:mod:`api.repeats`); ``None`` with a reason where there is none.

    Gold is Label Studio's ground-truth annotations, and the expert answers of the clips
    the import marked gold (:mod:`api.gold`): the decisions of ``adjudicators`` on them in
    the adjudication project. Where both answer a turn, the expert's decision wins.
    """
    frame = reports.load(db, project_id, dimension or taxonomy.emotion.name, taxonomy)
    level = frame.dim.level
    people = [i for i in range(len(frame)) if not frame.gold[i]]
    table = scores._by_unit(
        [frame.turn[i] for i in people],
        [frame.annotator[i] for i in people],
        [frame.code[i] for i in people],
    )
    trusted = _trusted_ground_truth(db, project_id, adjudicators)
    marked = [i for i in range(len(frame)) if frame.gold[i]]
    kept = [i for i in marked if trusted is None or frame.annotation[i] in trusted]
    gold = {frame.turn[i]: float(frame.code[i]) for i in kept}
    from_ground_truth = len(gold)
    expert, shown = _expert_gold(db, project_id, frame.dim, adjudicators)
    gold.update(expert)
    pool = [frame.value[i] for i in people]
    speed = {row["annotator"]: row for row in reports.activity(db, project_id)}
    lead = dict(
        db.exec(
            select(Annotation.id, Annotation.lead_time).where(
                Annotation.project_id == project_id, col(Annotation.deleted).is_(False)
            )
        ).all()
    )
    spans = [
        (r.annotator, r.task_id, r.start)
        for r in db.exec(select(ShiftEventRow).where(ShiftEventRow.project_id == project_id))
    ]
    lags = scores.shift_lag(spans)
    repeat_rows = repeats.repeat_clips(db, project_id)
    passes = repeats.intra_rater(db, project_id, frame.dim.name) if repeat_rows else {}
    codes = store.codes_of(frame.dim)
    several = _annotation_counts(db, project_id) if gold else {}
    overwritten = _saved_by_another(db, project_id) if gold else set()
    names = members.names(db, {frame.annotator[i] for i in people})
    rows = []
    for who in sorted({frame.annotator[i] for i in people}, key=lambda k: (len(k), k)):
        mine = [i for i in people if frame.annotator[i] == who]
        own = {frame.turn[i]: float(frame.code[i]) for i in mine}
        rest = scores.others_consensus(table, who, level)
        order = [
            frame.turn[i] for i in sorted(mine, key=lambda i: (reports._stamp(frame.time[i]), i))
        ]
        turns_per_task: dict[int, int] = Counter(frame.task[i] for i in mine)
        seconds = [
            lead[a] / turns_per_task[t]
            for a, t in {(frame.annotation[i], frame.task[i]) for i in mine}
            if lead.get(a) is not None and turns_per_task[t]
        ]
        activity = speed.get(who, {})
        rows.append(
            {
                "annotator": who,
                "name": names.get(who, who),
                "judgements": len(mine),
                "with_rest": scores.versus(own, rest, level),
                "vs_gold": _versus_gold(own, gold, shown, frame, mine, level, several, overwritten)
                if gold
                else {
                    "units": 0,
                    "alpha": None,
                    "reason": "no gold in the project (a ground-truth annotation, or an "
                    "expert's answer to a clip imported with --gold-share)",
                },
                "self": _self(passes.get(who), codes, level, bool(repeat_rows)),
                "drift": scores.drift(order, own, rest),
                "bias": scores.bias([frame.value[i] for i in mine], pool)
                if frame.dim.kind == "choice"
                else {"n": len(mine), "tvd": None, "reason": "a rating, not labels"},
                "speed": {
                    "annotations": activity.get("annotations", 0),
                    "median_seconds_per_task": activity.get("median_seconds_per_task"),
                    "median_seconds_per_turn": median(seconds) if seconds else None,
                },
                "shift_lag": lags.get(
                    who, {"spans": 0, "matched": 0, "median_lag_s": None, "reason": "no spans"}
                ),
            }
        )
    return {
        "dimension": frame.dim.name,
        "level": level,
        "gold": {
            "turns": len(gold),
            "ground_truth": from_ground_truth,
            "expert": len(expert),
            # ground truth marked by someone who is not an adjudicator: not gold
            "ground_truth_refused": len(marked) - len(kept),
        },
        "annotators": rows,
    }


def register(reads: APIRouter) -> None:
    """Add the scorecard endpoints to ``reads`` (the API-key protected router)."""

    @reads.get("/projects/{project_id}/scorecards/performers")
    def performers_scorecard(
        request: Request,
        project_id: int,
        db: Annotated[Session, Depends(request_session)],
        tolerance: Annotated[float, Query(ge=0.0, le=30.0)] = SHIFT_TOLERANCE,
    ) -> dict[str, Any]:
        """Per performer and intended emotion: recognition rate (with its interval), the
        confusion intended -> perceived, authenticity ratings, and the intended shifts
        annotators marked (see :mod:`annotate.performers`)."""
        if project_id not in store.projects(db):
            raise HTTPException(404, f"project {project_id} has no judgements here")
        return performers(db, project_id, request.app.state.taxonomy, tolerance=tolerance)

    @reads.get("/projects/{project_id}/scorecards/annotators")
    def annotators_scorecard(
        request: Request,
        project_id: int,
        db: Annotated[Session, Depends(request_session)],
        dimension: str | None = None,
    ) -> dict[str, Any]:
        """Per annotator: agreement with the rest and against gold (with intervals and
        units compared), drift, label bias, speed and shift timing lag."""
        if project_id not in store.projects(db):
            raise HTTPException(404, f"project {project_id} has no judgements here")
        try:
            return annotators(
                db,
                project_id,
                request.app.state.taxonomy,
                dimension=dimension,
                adjudicators=request.app.state.settings.adjudication.adjudicators,
            )
        except store.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
