"""Turn-level rows from the service's store: labels, aggregates, shifts, agreement, splits.

One row per turn. Rows are built clip by clip (a batch of tasks at a time), so memory holds
one batch of judgements plus the compact arrays the Dawid-Skene fit needs. Every judgement
read is either in a row or counted under a skip reason (:class:`Accounting`).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from sqlmodel import Session, col, select

from annotate.agreement import krippendorff_alpha, pivot
from api.models import Annotation, Judgement, ShiftEventRow, Task
from exporters.aggregate import dawid_skene, majority, pseudonym, scale_stats, soft_labels
from exporters.splits import group_split
from schemas.shifts import TurnLabel, previous_turns, shift_types
from schemas.taxonomy import Dimension, Taxonomy

TOOL_VERSION = "0.1.0"
LABEL_SPACES = ("ours", "meld", "iemocap")
BATCH = 200  # tasks per query


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What to export and how.

    ``min_annotators``: turns labeled (emotion) by fewer annotators are skipped.
    ``min_clip_agreement``: clips whose emotion alpha is below (or undefined) are skipped.
    ``sessions``: only these sessions (None: all). ``since`` / ``until``: only annotations
    last updated in this window. ``include_cancelled``: list who cancelled a turn's clip.
    ``label_space``: emotion labels as ours, or mapped to MELD's or IEMOCAP's.
    ``real_ids``: annotator ids as Label Studio's user ids instead of salted pseudonyms.
    """

    min_annotators: int = 0
    min_clip_agreement: float | None = None
    include_cancelled: bool = False
    sessions: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    label_space: str = "ours"
    real_ids: bool = False
    salt: str = ""
    shift_tolerance: float = 1.0

    def __post_init__(self) -> None:
        if not self.real_ids and not self.salt:
            raise ValueError(
                "a secret salt is needed to pseudonymise annotator ids; give salt=, or "
                "real_ids=True"
            )
        if self.label_space not in LABEL_SPACES:
            raise ValueError(
                f"unknown label space {self.label_space!r}; expected one of {list(LABEL_SPACES)}"
            )


@dataclass(slots=True)
class Accounting:
    """Judgements read, exported, and skipped by reason; turns written."""

    read: int = 0
    exported: int = 0
    turns: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def check(self) -> None:
        """Every judgement read is exported or counted as skipped."""
        if self.read != self.exported + sum(self.skipped.values()):
            raise RuntimeError(
                f"export lost judgements: read {self.read}, exported {self.exported}, "
                f"skipped {dict(self.skipped)}"
            )


def _in_window(when: datetime | None, options: ExportOptions) -> bool:
    if when is None:
        return options.since is None and options.until is None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if options.since and when < options.since:
        return False
    return not (options.until and when > options.until)


def _media(data: Mapping[str, Any]) -> str | None:
    url = str(data.get("audio") or "")
    found = parse_qs(urlsplit(url).query).get("d")
    return found[0] if found else (url or None)


class _Emotion:
    """The Dawid-Skene fit of the emotion labels over the whole project (compact arrays)."""

    def __init__(self, db: Session, project_id: int, dim: Dimension) -> None:
        rows = db.exec(
            select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
                Judgement.project_id == project_id, Judgement.dimension == dim.name
            )
        ).all()
        self.posteriors: dict[str, dict[str, float]] = {}
        self.labels: dict[str, str | None] = {}
        if not rows:
            return
        result = dawid_skene(rows, list(dim.values), max_iter=1000)
        self.posteriors = result.posteriors
        self.labels = dict(result.labels)


def iter_rows(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    options: ExportOptions,
    accounting: Accounting | None = None,
    split_of: Mapping[str, str | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per turn of the project's live tasks, in task and turn order.

    ``split_of`` maps a turn id to its split (see :func:`plan_splits`).
    """
    accounting = accounting if accounting is not None else Accounting()
    emotion = taxonomy.emotion
    mapping = None if options.label_space == "ours" else taxonomy.mapping(options.label_space)
    ds = _Emotion(db, project_id, emotion)
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    task_ids = list(
        db.exec(
            select(Task.id)
            .where(Task.project_id == project_id, col(Task.deleted).is_(False))
            .order_by(col(Task.id))
        ).all()
    )
    for start in range(0, len(task_ids), BATCH):
        batch = task_ids[start : start + BATCH]
        tasks = {t.id: t for t in db.exec(select(Task).where(col(Task.id).in_(batch))).all()}
        # plain column rows, not ORM objects: the export reads, it never writes
        annotations = {
            a.id: a
            for a in db.exec(
                select(
                    Annotation.id,
                    Annotation.task_id,
                    Annotation.annotator,
                    Annotation.was_cancelled,
                    Annotation.deleted,
                    Annotation.updated_at,
                ).where(col(Annotation.task_id).in_(batch))
            ).all()
        }
        judgements: dict[int, list[Any]] = defaultdict(list)
        for j in db.exec(
            select(
                Judgement.annotation_id,
                Judgement.task_id,
                Judgement.turn_id,
                Judgement.annotator,
                Judgement.dimension,
                Judgement.value,
            ).where(col(Judgement.task_id).in_(batch))
        ).all():
            judgements[j.task_id].append(j)
        shifts: dict[int, list[ShiftEventRow]] = defaultdict(list)
        for s in db.exec(select(ShiftEventRow).where(col(ShiftEventRow.task_id).in_(batch))):
            shifts[s.task_id].append(s)
        for task_id in batch:
            task = tasks[task_id]
            for row in _task_rows(
                task,
                judgements[task_id],
                annotations,
                shifts[task_id],
                taxonomy,
                options,
                mapping,
                ds,
                exported_at,
                accounting,
            ):
                row["split"] = split_of.get(row["turn_id"]) if split_of else None
                yield row


def plan_splits(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, str | None]:
    """Turn id -> train/dev/test for every turn of the project, before any row is built.

    Whole sessions go to one split, and sessions sharing a performer go together
    (:func:`exporters.splits.group_split`), stratified by each turn's majority emotion.
    """
    votes: dict[str, list[str]] = defaultdict(list)
    for turn_id, value in db.exec(
        select(Judgement.turn_id, Judgement.value).where(
            Judgement.project_id == project_id, Judgement.dimension == taxonomy.emotion.name
        )
    ):
        votes[turn_id].append(value)
    turns: list[dict[str, Any]] = []
    tasks = db.exec(
        select(Task.data).where(Task.project_id == project_id, col(Task.deleted).is_(False))
    )
    for data in tasks:
        for line in data.get("dialogue") or []:
            turn_id = str(line.get("turn_id"))
            turns.append(
                {
                    "turn": turn_id,
                    "session": data.get("session_id"),
                    "performer": line.get("performer") or line.get("speaker"),
                    "label": majority(votes.get(turn_id, []))[0],
                }
            )
    split = group_split(
        turns,
        session_key="session",
        performer_key="performer",
        label_key="label",
        fractions=fractions,
        seed=seed,
    )
    return {t["turn"]: split.get(i) for i, t in enumerate(turns)}


def _task_rows(
    task: Task,
    judgements: list[Judgement],
    annotations: Mapping[int, Annotation],
    shift_rows: list[ShiftEventRow],
    taxonomy: Taxonomy,
    options: ExportOptions,
    mapping: Mapping[str, str] | None,
    ds: _Emotion,
    exported_at: str,
    accounting: Accounting,
) -> Iterator[dict[str, Any]]:
    data: Mapping[str, Any] = task.data
    dialogue: Sequence[Mapping[str, Any]] = data.get("dialogue") or []
    accounting.read += len(judgements)
    if options.sessions is not None and data.get("session_id") not in options.sessions:
        accounting.skipped["session not selected"] += len(judgements)
        return
    kept = []
    for j in judgements:
        if _in_window(annotations[j.annotation_id].updated_at, options):
            kept.append(j)
        else:
            accounting.skipped["outside the date range"] += 1
    emotion = taxonomy.emotion
    clip_alpha = _clip_alpha(kept, taxonomy)
    if options.min_clip_agreement is not None:
        alpha = clip_alpha.get(emotion.name)
        if alpha is None or alpha < options.min_clip_agreement:
            accounting.skipped["clip agreement below the minimum"] += len(kept)
            return
    name = (lambda a: a) if options.real_ids else _pseudonyms(options.salt)
    by_turn: dict[str, list[Judgement]] = defaultdict(list)
    for j in kept:
        by_turn[j.turn_id].append(j)
    known = {str(line.get("turn_id")) for line in dialogue}
    for turn_id, items in by_turn.items():
        if turn_id not in known:
            accounting.skipped["turn not in the task's dialogue"] += len(items)
    offset = float(data.get("audio_offset") or 0.0)
    majorities = []
    for line in dialogue:
        values = [
            j.value for j in by_turn.get(str(line["turn_id"]), []) if j.dimension == emotion.name
        ]
        majorities.append(majority(values)[0])
    turn_labels = [
        TurnLabel(
            str(line["turn_id"]),
            str(line.get("performer") or line.get("speaker")),
            majorities[i],
            _mean(by_turn, line, "valence"),
            _mean(by_turn, line, "arousal"),
        )
        for i, line in enumerate(dialogue)
    ]
    prev_speaker = previous_turns(turn_labels, "speaker")
    prev_any = previous_turns(turn_labels, "adjacent")
    cancelled = (
        sorted(
            name(a.annotator or "")
            for a in annotations.values()
            if a.was_cancelled and not a.deleted and a.task_id == task.id
        )
        if options.include_cancelled
        else None
    )
    for i, line in enumerate(dialogue):
        turn_id = str(line["turn_id"])
        items = by_turn.get(turn_id, [])
        annotators = {j.annotator for j in items if j.dimension == emotion.name}
        if len(annotators) < options.min_annotators:
            accounting.skipped["fewer annotators than the minimum"] += len(items)
            continue
        labels: dict[str, dict[str, str]] = defaultdict(dict)
        for j in items:
            value = j.value
            if mapping is not None and j.dimension == emotion.name:
                value = mapping.get(value, value)
            labels[name(j.annotator)][j.dimension] = value
        accounting.exported += len(items)
        accounting.turns += 1
        start, end = float(line["start"]) + offset, float(line["end"]) + offset
        row: dict[str, Any] = {
            "taxonomy": taxonomy.name,
            "taxonomy_version": taxonomy.version,
            "label_space": options.label_space,
            "project_id": task.project_id,
            "task_id": task.id,
            "annotation_ids": sorted({j.annotation_id for j in items}),
            "session_id": data.get("session_id"),
            "clip_id": data.get("clip_id"),
            "turn_id": turn_id,
            "turn_index": line.get("turn_index"),
            "speaker": line.get("performer") or line.get("speaker"),
            "start": round(start, 3),
            "end": round(end, 3),
            "text": line.get("text"),
            "media": _media(data),
            "media_start": round(float(line["start"]), 3),
            "media_end": round(float(line["end"]), 3),
            "prompt": data.get("prompt"),
            "intended_emotion": _mapped(line.get("intended"), mapping),
            "labels": dict(sorted(labels.items())),
            "n_annotators": len(annotators),
            "cancelled_by": cancelled,
            "aggregates": _aggregates(items, taxonomy, mapping, ds, turn_id),
            "shift": _shift_fields(
                i,
                turn_labels,
                prev_speaker,
                prev_any,
                taxonomy,
                mapping,
                shift_rows,
                start,
                end,
                options.shift_tolerance,
            ),
            "agreement": {"clip": clip_alpha, "turn": _unit_agreement(items, taxonomy)},
            "prosody": line.get("prosody"),
            "exported_at": exported_at,
            "tool_version": TOOL_VERSION,
        }
        yield row


@functools.lru_cache(maxsize=64)
def _pseudonyms(salt: str) -> Callable[[str], str]:
    """A cached pseudonym function for one salt (annotators repeat on every row)."""
    return functools.lru_cache(maxsize=100_000)(lambda a: pseudonym(a, salt))


def _mapped(value: Any, mapping: Mapping[str, str] | None) -> Any:
    if value is None or mapping is None:
        return value
    return mapping.get(str(value), value)


def _mean(
    by_turn: Mapping[str, list[Judgement]], line: Mapping[str, Any], dim: str
) -> float | None:
    values = [float(j.value) for j in by_turn.get(str(line["turn_id"]), []) if j.dimension == dim]
    return float(np.mean(values)) if values else None


def _aggregates(
    items: list[Judgement],
    taxonomy: Taxonomy,
    mapping: Mapping[str, str] | None,
    ds: _Emotion,
    turn_id: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dim in taxonomy.dimensions:
        values = [j.value for j in items if j.dimension == dim.name]
        if dim.kind == "choice":
            label, tied = majority(values)
            soft = soft_labels(values, dim.values)
            entry: dict[str, Any] = {
                "n": len(values),
                "majority": label,
                "tied": tied,
                "soft": soft,
            }
            if dim is taxonomy.emotion:
                entry["dawid_skene"] = ds.labels.get(turn_id)
                entry["dawid_skene_posterior"] = ds.posteriors.get(turn_id)
            if mapping is not None and dim is taxonomy.emotion:
                entry = _map_entry(entry, mapping)
            out[dim.name] = entry
        else:
            mean, std = scale_stats([float(v) for v in values])
            label, tied = majority(values)
            out[dim.name] = {
                "n": len(values),
                "mean": mean,
                "std": std,
                "majority": label,
                "tied": tied,
            }
    return out


def _map_entry(entry: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Emotion aggregates in another label space (soft labels summed per target label)."""
    soft: dict[str, float] = defaultdict(float)
    for label, p in entry["soft"].items():
        soft[mapping.get(label, label)] += p
    posterior: dict[str, float] | None = None
    if entry.get("dawid_skene_posterior"):
        posterior = defaultdict(float)
        for label, p in entry["dawid_skene_posterior"].items():
            posterior[mapping.get(label, label)] += p
        posterior = dict(posterior)
    return {
        **entry,
        "majority": _mapped(entry["majority"], mapping),
        "tied": sorted({mapping.get(t, t) for t in entry["tied"]}),
        "soft": dict(soft),
        "dawid_skene": _mapped(entry.get("dawid_skene"), mapping),
        "dawid_skene_posterior": posterior,
    }


def _clip_alpha(judgements: list[Judgement], taxonomy: Taxonomy) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for dim in taxonomy.dimensions:
        rows = [j for j in judgements if j.dimension == dim.name]
        if not rows:
            out[dim.name] = None
            continue
        codes = {v: float(i) for i, v in enumerate(dim.values)} if dim.kind == "choice" else None
        values = [codes[j.value] if codes else float(j.value) for j in rows]
        matrix = pivot([j.turn_id for j in rows], [j.annotator for j in rows], values)[0]
        try:
            out[dim.name] = float(krippendorff_alpha(matrix, level=dim.level))
        except ValueError:
            out[dim.name] = None
    return out


def _unit_agreement(items: list[Judgement], taxonomy: Taxonomy) -> dict[str, float | None]:
    """Per dimension: the share of agreeing pairs of annotators on this turn."""
    out: dict[str, float | None] = {}
    for dim in taxonomy.dimensions:
        values = [j.value for j in items if j.dimension == dim.name]
        pairs = list(itertools.combinations(values, 2))
        out[dim.name] = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
    return out


def _shift_fields(
    i: int,
    turns: Sequence[TurnLabel],
    prev_speaker: Sequence[int | None],
    prev_any: Sequence[int | None],
    taxonomy: Taxonomy,
    mapping: Mapping[str, str] | None,
    shift_rows: Sequence[ShiftEventRow],
    start: float,
    end: float,
    tolerance: float,
) -> dict[str, Any]:
    turn = turns[i]
    same = turns[prev_speaker[i]] if prev_speaker[i] is not None else None
    adjacent = turns[prev_any[i]] if prev_any[i] is not None else None
    shifted = {
        "speaker": bool(same and same.emotion and turn.emotion and same.emotion != turn.emotion),
        "adjacent": bool(
            adjacent and adjacent.emotion and turn.emotion and adjacent.emotion != turn.emotion
        ),
    }
    types = shift_types(same, turn, taxonomy) if shifted["speaker"] and same else ()
    # marked events whose moment (span midpoint) falls on this turn, within the tolerance
    grouped: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for e in shift_rows:
        moment = (e.start + e.end) / 2
        if start - tolerance <= moment <= end + tolerance:
            key = (e.from_emotion, e.to_emotion, e.trigger, e.onset)
            grouped[key].add(e.annotator)
    events = [
        {
            "from": _mapped(k[0], mapping),
            "to": _mapped(k[1], mapping),
            "trigger": k[2],
            "onset": k[3],
            "annotators": len(v),
        }
        for k, v in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))
    ]
    return {
        "previous_same_speaker": _mapped(same.emotion if same else None, mapping),
        "previous_any_speaker": _mapped(adjacent.emotion if adjacent else None, mapping),
        "shift_speaker": shifted["speaker"],
        "shift_adjacent": shifted["adjacent"],
        "from": _mapped(same.emotion, mapping) if shifted["speaker"] and same else None,
        "to": _mapped(turn.emotion, mapping) if shifted["speaker"] else None,
        "types": list(types),
        "marked": events,
    }


__all__ = ["Accounting", "ExportOptions", "iter_rows", "plan_splits"]
