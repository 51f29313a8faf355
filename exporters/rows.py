"""Turn-level rows from the service's store: labels, aggregates, shifts, agreement, splits.

One row per turn. The export reads the store twice: :func:`exporters.plan.plan_export`
streams the emotion judgements once to fit Dawid-Skene on compact integer codes and to
split the sessions; :func:`iter_rows` then builds the rows clip by clip (a batch of tasks
at a time), so memory holds one batch of judgements plus the plan (a float posterior per
judged turn). Every judgement read is either in a row or counted under a skip reason
(:class:`Accounting`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from sqlmodel import Session, col, select

from api.models import Annotation, Judgement, ShiftEventRow, Task
from exporters.aggregate import (
    majority,
    pseudonym,
    scale_stats,
    soft_labels,
)
from exporters.audio import TurnAudio
from exporters.options import Accounting as Accounting
from exporters.options import ExportOptions as ExportOptions
from exporters.plan import ExportPlan, _raw_rows, plan_export, plan_splits
from exporters.turn_fields import (
    _ANNOTATION,
    _ANNOTATOR,
    _DIMENSION,
    _TURN,
    _VALUE,
    _clip_alpha,
    _map_entry,
    _mapped,
    _pair_share,
    _shift_fields,
)
from schemas.shifts import TurnLabel, previous_turns
from schemas.taxonomy import Dimension, Taxonomy

TOOL_VERSION = "0.1.0"
BATCH = 200  # tasks per query


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


def _next_tasks(db: Session, project_id: int, after: int, last: int | None = None) -> list[Any]:
    """The next batch of live tasks (id, project_id, data) with ids above ``after``."""
    where = [Task.project_id == project_id, col(Task.deleted).is_(False), Task.id > after]
    if last is not None:
        where.append(Task.id <= last)
    return list(
        db.exec(
            select(Task.id, Task.project_id, Task.data)
            .where(*where)
            .order_by(col(Task.id))
            .limit(BATCH)
        ).all()
    )


def _batch_inputs(
    db: Session, batch: list[int]
) -> tuple[dict[int, Any], dict[int, list[Any]], dict[int, list[Any]]]:
    """Annotations, judgements and shift spans of a batch of tasks (judgements in id order)."""
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
                Annotation.skipped,
            ).where(col(Annotation.task_id).in_(batch))
        ).all()
    }
    judgements: dict[int, list[Any]] = defaultdict(list)
    for j in _raw_rows(
        db,
        select(
            Judgement.task_id,
            Judgement.annotation_id,
            Judgement.turn_id,
            Judgement.annotator,
            Judgement.dimension,
            Judgement.value,
        )
        .where(col(Judgement.task_id).in_(batch))
        .order_by(col(Judgement.task_id), col(Judgement.id)),
    ):
        judgements[j[0]].append(j[1:])
    shifts: dict[int, list[Any]] = defaultdict(list)
    for s in db.exec(
        select(
            ShiftEventRow.task_id,
            ShiftEventRow.annotator,
            ShiftEventRow.start,
            ShiftEventRow.end,
            ShiftEventRow.from_emotion,
            ShiftEventRow.to_emotion,
            ShiftEventRow.trigger,
            ShiftEventRow.onset,
            ShiftEventRow.trigger_turn,
        )
        .where(col(ShiftEventRow.task_id).in_(batch))
        .order_by(col(ShiftEventRow.task_id), col(ShiftEventRow.id))
    ).all():
        shifts[s[0]].append(s[1:])
    return annotations, judgements, shifts


def iter_rows(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    options: ExportOptions,
    accounting: Accounting | None = None,
    split_of: Mapping[str, str | None] | None = None,
    *,
    plan: ExportPlan | None = None,
    audio: TurnAudio | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per turn of the project's live tasks, in task and turn order.

    Tasks are read a batch at a time (keyset pagination by task id), each batch's
    judgements in (task, id) order, so memory holds one batch plus the ``plan``
    (:func:`plan_export`; made here, without splits, when not given). A row's ``split``
    comes from ``split_of`` (turn id -> split) when given, else from the plan's session
    splits, else ``None``. ``audio`` (needed with ``options.turn_audio``) writes the turn
    audio files.
    """
    if options.turn_audio and audio is None:
        raise ValueError("options.turn_audio needs audio= (an exporters.audio.TurnAudio)")
    accounting = accounting if accounting is not None else Accounting()
    plan = plan if plan is not None else plan_export(db, project_id, taxonomy, fractions=None)
    if split_of is not None:
        splits: Callable[[Any, str], str | None] = lambda _, turn: split_of.get(turn)  # noqa: E731
    elif plan.session_split is not None:
        session_split = plan.session_split
        splits = lambda session, _: session_split.get(session)  # noqa: E731
    else:
        splits = lambda *_: None  # noqa: E731
    builder = RowBuilder(taxonomy, options, plan, accounting, splits, audio=audio)
    yield from builder.rows(db, project_id)


CACHE = 50_000  # entries per memo table; tables are cleared when full (bounded memory)


def _memo(table: dict[Any, Any], key: Any, compute: Callable[[], Any]) -> Any:
    """``table[key]``, computing and storing it first if missing (bounded size)."""
    try:
        return table[key]
    except KeyError:
        pass
    value = compute()
    if len(table) >= CACHE:
        table.clear()
    table[key] = value
    return value


class RowBuilder:
    """Builds the rows of one task after another; memo tables for repeated value patterns.

    The aggregates of a dimension, its unit agreement and the mean of a rating depend only
    on the turn's values in judgement order, which repeat across turns (a few annotators,
    a few labels), so each distinct pattern is computed once by the same functions.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        options: ExportOptions,
        plan: ExportPlan,
        accounting: Accounting,
        splits: Callable[[Any, str], str | None],
        exported_at: str | None = None,
        audio: TurnAudio | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.options = options
        self.plan = plan
        self.accounting = accounting
        self.splits = splits
        self.emotion = taxonomy.emotion
        self.mapping = (
            None if options.label_space == "ours" else taxonomy.mapping(options.label_space)
        )
        self.name: Callable[[str], str] = (
            (lambda a: a) if options.real_ids else _pseudonyms(options.salt)
        )
        self.windowed = options.since is not None or options.until is not None
        self.exported_at = exported_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.memo: dict[str, dict[Any, Any]] = defaultdict(dict)
        self.audio = audio if options.turn_audio else None
        self.dimension_names = tuple(d.name for d in taxonomy.dimensions)
        self.ratings = frozenset(d.name for d in taxonomy.dimensions if d.kind != "choice")

    def rows(
        self, db: Session, project_id: int, after: int = 0, last: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of the live tasks with ids in ``(after, last]``, a batch at a time."""
        while batch_tasks := _next_tasks(db, project_id, after, last):
            after = batch_tasks[-1].id
            annotations, judgements, shifts = _batch_inputs(db, [t.id for t in batch_tasks])
            of_task: dict[int, list[Any]] = defaultdict(list)
            for a in annotations.values():
                of_task[a.task_id].append(a)
            for task in batch_tasks:
                yield from self.task_rows(
                    task,
                    judgements.get(task.id, []),
                    annotations,
                    shifts.get(task.id, []),
                    of_task.get(task.id, ()),
                )

    def task_rows(
        self,
        task: Any,
        judgements: list[Any],
        annotations: Mapping[int, Any],
        shift_rows: list[Any],
        task_annotations: Sequence[Any] = (),
    ) -> Iterator[dict[str, Any]]:
        """The rows of one task; every judgement counted as exported or skipped, and the
        result items its annotations (``task_annotations``) dropped counted by reason."""
        options, accounting, emotion = self.options, self.accounting, self.emotion
        mapping, name = self.mapping, self.name
        data: Mapping[str, Any] = task.data
        dialogue: Sequence[Mapping[str, Any]] = data.get("dialogue") or []
        accounting.read += len(judgements)
        if options.sessions is not None and data.get("session_id") not in options.sessions:
            accounting.skipped["session not selected"] += len(judgements)
            return
        kept = judgements
        if self.windowed:
            inside = {
                a: _in_window(annotations[a].updated_at, options)
                for a in {j[_ANNOTATION] for j in judgements}
            }
            kept = [j for j in judgements if inside[j[_ANNOTATION]]]
            if len(kept) < len(judgements):
                accounting.skipped["outside the date range"] += len(judgements) - len(kept)
        for a in task_annotations:
            if not a.skipped or a.deleted:
                continue
            if not self.windowed or _in_window(a.updated_at, options):
                accounting.dropped.update({str(k): int(n) for k, n in a.skipped.items()})
        clip_alpha = _clip_alpha(kept, self.taxonomy)
        if options.min_clip_agreement is not None:
            alpha = clip_alpha.get(emotion.name)
            if alpha is None or alpha < options.min_clip_agreement:
                accounting.skipped["clip agreement below the minimum"] += len(kept)
                return
        by_turn: dict[str, list[Any]] = defaultdict(list)
        for j in kept:
            by_turn[j[_TURN]].append(j)
        known = {str(line.get("turn_id")) for line in dialogue}
        for turn_id, items in by_turn.items():
            if turn_id not in known:
                accounting.skipped["turn not in the task's dialogue"] += len(items)
        offset = float(data.get("audio_offset") or 0.0)
        media = _media(data)
        # per line: the turn's judgements and its values per dimension, in judgement order
        turn_values: list[dict[str, list[str]]] = []
        for line in dialogue:
            values: dict[str, list[str]] = defaultdict(list)
            for j in by_turn.get(str(line["turn_id"]), ()):
                values[j[_DIMENSION]].append(j[_VALUE])
            turn_values.append(values)
        memo = self.memo
        turn_labels = [
            TurnLabel(
                str(line["turn_id"]),
                str(line.get("performer") or line.get("speaker")),
                self._majority(values.get(emotion.name, ())),
                self._mean(values.get("valence")),
                self._mean(values.get("arousal")),
            )
            for line, values in zip(dialogue, turn_values, strict=True)
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
        agreement_memo = memo["unit agreement"]
        for i, line in enumerate(dialogue):
            turn_id = str(line["turn_id"])
            items = by_turn.get(turn_id, [])
            values = turn_values[i]
            annotators = {j[_ANNOTATOR] for j in items if j[_DIMENSION] == emotion.name}
            if len(annotators) < options.min_annotators:
                accounting.skipped["fewer annotators than the minimum"] += len(items)
                continue
            labels: dict[str, dict[str, str]] = defaultdict(dict)
            for j in items:
                value = j[_VALUE]
                if mapping is not None and j[_DIMENSION] == emotion.name:
                    value = mapping.get(value, value)
                elif j[_DIMENSION] in self.ratings:
                    value = _whole(value, j[_DIMENSION])
                labels[name(j[_ANNOTATOR])][j[_DIMENSION]] = value
            accounting.exported += len(items)
            accounting.turns += 1
            start, end = float(line["start"]) + offset, float(line["end"]) + offset
            pattern = tuple(tuple(values.get(d, ())) for d in self.dimension_names)
            unit = agreement_memo.get(pattern)
            if unit is None:
                unit = _memo(
                    agreement_memo,
                    pattern,
                    lambda p=pattern: {
                        d: _pair_share(v) for d, v in zip(self.dimension_names, p, strict=True)
                    },
                )
            unit = dict(unit)
            row: dict[str, Any] = {
                "taxonomy": self.taxonomy.name,
                "taxonomy_version": self.taxonomy.version,
                "label_space": options.label_space,
                "project_id": task.project_id,
                "task_id": task.id,
                "annotation_ids": sorted({j[_ANNOTATION] for j in items}),
                "session_id": data.get("session_id"),
                "clip_id": data.get("clip_id"),
                "turn_id": turn_id,
                "turn_index": line.get("turn_index"),
                "speaker": line.get("performer") or line.get("speaker"),
                "start": round(start, 3),
                "end": round(end, 3),
                "text": line.get("text"),
                "media": media,
                "media_start": round(float(line["start"]), 3),
                "media_end": round(float(line["end"]), 3),
                "prompt": data.get("prompt"),
                # kept by the service; a task imported by an older version carries it itself
                "intended_emotion": _mapped(
                    self.plan.intended.get(turn_id, line.get("intended")), mapping
                ),
                "labels": dict(sorted(labels.items())),
                "n_annotators": len(annotators),
                "cancelled_by": cancelled,
                "aggregates": self._aggregates(values, turn_id),
                "adjudicated": self._adjudicated(turn_id, mapping),
                "shift": _shift_fields(
                    i,
                    turn_labels,
                    prev_speaker,
                    prev_any,
                    self.taxonomy,
                    mapping,
                    shift_rows,
                    start,
                    end,
                    options.shift_tolerance,
                ),
                "agreement": {"clip": clip_alpha, "turn": unit},
                "prosody": line.get("prosody"),
                "exported_at": self.exported_at,
                "tool_version": TOOL_VERSION,
                "split": self.splits(data.get("session_id"), turn_id),
            }
            if self.audio is not None:
                row = self._with_audio(row)
            yield row

    def _with_audio(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its turn audio cut and ``turn_audio`` after ``media_end``."""
        path, problem = self.audio.cut(row)  # type: ignore[union-attr]
        if problem is None:
            self.accounting.audio_written += 1
        else:
            self.accounting.audio_skipped[problem] += 1
        out: dict[str, Any] = {}
        for key, value in row.items():
            out[key] = value
            if key == "media_end":
                out["turn_audio"] = path
        return out

    def _adjudicated(
        self, turn_id: str, mapping: Mapping[str, str] | None
    ) -> dict[str, Any] | None:
        """The adjudicator's values of the turn (ratings as integers, emotion in the label
        space), or ``None`` when its clip was not adjudicated."""
        decided = self.plan.adjudicated.get(turn_id)
        if not decided:
            return None
        out: dict[str, Any] = {}
        for dim in self.taxonomy.dimensions:
            value = decided.get(dim.name)
            if value is not None and dim.name in self.ratings:
                out[dim.name] = _whole(value, dim.name)
            elif value is not None and mapping is not None and dim is self.emotion:
                out[dim.name] = mapping.get(value, value)
            else:
                out[dim.name] = value
        return out

    def _majority(self, values: Sequence[str]) -> str | None:
        key = tuple(values)
        table = self.memo["majority"]
        if key in table:
            return table[key]  # type: ignore[no-any-return]
        return _memo(table, key, lambda: majority(key)[0])

    def _mean(self, values: Sequence[str] | None) -> float | None:
        if not values:
            return None
        key = tuple(values)
        return _memo(self.memo["mean"], key, lambda: float(np.mean([float(v) for v in key])))

    def _aggregates(self, values: Mapping[str, list[str]], turn_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for dim in self.taxonomy.dimensions:
            key = tuple(values.get(dim.name, ()))
            table = self.memo["dimension " + dim.name]
            found = table.get(key)
            if found is None:
                compute = _choice if dim.kind == "choice" else _scale
                found = _memo(table, key, lambda k=key, d=dim, f=compute: f(k, d))
            if dim.kind == "choice":
                n, label, tied, soft = found
                entry: dict[str, Any] = {
                    "n": n,
                    "majority": label,
                    "tied": list(tied),
                    "soft": dict(soft),
                }
                if dim is self.emotion:
                    label, posterior = self.plan.dawid_skene(turn_id)
                    entry["dawid_skene"] = label
                    entry["dawid_skene_posterior"] = posterior
                if self.mapping is not None and dim is self.emotion:
                    entry = _map_entry(entry, self.mapping)
                out[dim.name] = entry
            else:
                n, mean, std, label, tied = found
                out[dim.name] = {
                    "n": n,
                    "mean": mean,
                    "std": std,
                    "majority": label,
                    "tied": list(tied),
                }
        return out


def _choice(values: tuple[str, ...], dim: Dimension) -> tuple[Any, ...]:
    label, tied = majority(values)
    return len(values), label, tuple(tied), soft_labels(values, dim.values)


def _scale(values: tuple[str, ...], dim: Dimension) -> tuple[Any, ...]:
    mean, std = scale_stats([float(v) for v in values])
    label, tied = majority(values)
    whole = None if label is None else _whole(label, dim.name)
    return len(values), mean, std, whole, tuple(_whole(t, dim.name) for t in tied)


def _whole(value: str, dimension: str) -> int:
    """A stored rating (text of a whole number) as an integer; names it if it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"{dimension}: stored rating {value!r} is not a whole number")
    return int(number)


@functools.lru_cache(maxsize=64)
def _pseudonyms(salt: str) -> Callable[[str], str]:
    """A cached pseudonym function for one salt (annotators repeat on every row)."""
    return functools.lru_cache(maxsize=100_000)(lambda a: pseudonym(a, salt))


__all__ = ["Accounting", "ExportOptions", "ExportPlan", "iter_rows", "plan_export", "plan_splits"]
