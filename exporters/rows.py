"""Turn-level rows from the service's store: labels, aggregates, shifts, agreement, splits.

One row per turn. The export reads the store twice: :func:`plan_export` streams the emotion
judgements once to fit Dawid-Skene on compact integer codes and to split the sessions;
:func:`iter_rows` then builds the rows clip by clip (a batch of tasks at a time), so memory
holds one batch of judgements plus the plan (a float posterior per judged turn). Every
judgement read is either in a row or counted under a skip reason (:class:`Accounting`).
"""

from __future__ import annotations

import functools
import itertools
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from sqlmodel import Session, col, select

from annotate.agreement import krippendorff_alpha, pivot
from api.intended import intended_map
from api.models import Annotation, Judgement, ShiftEventRow, Task
from exporters.aggregate import (
    check_labels,
    dawid_skene_codes,
    majority,
    pseudonym,
    scale_stats,
    soft_labels,
)
from exporters.audio import TurnAudio
from exporters.splits import SessionTally, group_split_sessions
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
    ``turn_audio``: write one WAV per exported turn (:mod:`exporters.audio`), cut from the
    session recording under ``sessions_root`` (a folder of session folders) when there,
    else from the clip file under ``media_root`` (the folder Label Studio serves clips
    from); rows then hold ``turn_audio``, the file's path relative to the export folder.
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
    turn_audio: bool = False
    media_root: Path | None = None
    sessions_root: Path | None = None

    def __post_init__(self) -> None:
        if not self.real_ids and not self.salt:
            raise ValueError(
                "a secret salt is needed to pseudonymise annotator ids; give salt=, or "
                "real_ids=True"
            )
        if self.turn_audio and self.media_root is None and self.sessions_root is None:
            raise ValueError(
                "turn_audio needs media_root= (the folder Label Studio serves clips from) "
                "or sessions_root= (a folder of session folders)"
            )
        if self.label_space not in LABEL_SPACES:
            raise ValueError(
                f"unknown label space {self.label_space!r}; expected one of {list(LABEL_SPACES)}"
            )


@dataclass(slots=True)
class Accounting:
    """Judgements read, exported, and skipped by reason; turns written; turn audio files
    written and turns without one, by reason."""

    read: int = 0
    exported: int = 0
    turns: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    audio_written: int = 0
    audio_skipped: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Accounting) -> None:
        """Add another part's counts to these."""
        self.read += other.read
        self.exported += other.exported
        self.turns += other.turns
        self.skipped.update(other.skipped)
        self.audio_written += other.audio_written
        self.audio_skipped.update(other.audio_skipped)

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


@dataclass(slots=True)
class ExportPlan:
    """What the rows need from the whole project before the first row is built.

    The Dawid-Skene fit of the emotion labels (one posterior row per judged turn) and the
    train/dev/test split of every session. Memory: the turn-id index and a ``(turns, K)``
    float64 posterior; no per-judgement state survives :func:`plan_export`.
    """

    classes: tuple[str, ...] = ()
    turn_index: dict[str, int] = field(default_factory=dict)
    posterior: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    best: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    session_split: dict[Any, str] | None = None
    # turn id -> the scene's intended emotion, kept by the service (never in a task's data)
    intended: dict[str, str] = field(default_factory=dict)

    def dawid_skene(self, turn_id: str) -> tuple[str | None, dict[str, float] | None]:
        """The turn's Dawid-Skene label and posterior (``None, None`` if not judged)."""
        i = self.turn_index.get(turn_id)
        if i is None:
            return None, None
        return self.classes[self.best[i]], dict(
            zip(self.classes, self.posterior[i].tolist(), strict=True)
        )


STREAM = 20_000  # rows fetched at a time by the streaming reads


def _raw_rows(db: Session, stmt: Any, size: int = STREAM) -> Iterator[tuple[Any, ...]]:
    """Plain tuples of a select of plain columns (ints, strings), streamed by the driver.

    The fast path of the export's large reads: the statement is compiled by SQLAlchemy
    (bound parameters, no literals) and run on the session's own DBAPI connection, inside
    its transaction; PostgreSQL gets a server-side cursor, SQLite steps through the result.
    No type processing: use it for columns that need none.
    """
    conn = db.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[key] for key in compiled.positiontup or ())
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"export_{next(_CURSORS)}")  # type: ignore[union-attr]
        cursor.itersize = size
    else:
        cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(size):
            yield from rows
    finally:
        cursor.close()


_CURSORS = itertools.count()


def plan_export(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    *,
    fractions: Sequence[float] | None = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> ExportPlan:
    """Read the project's emotion judgements once (streamed, in id order) and plan the export.

    Fits Dawid-Skene on compact integer codes and, unless ``fractions`` is ``None``,
    splits the sessions (:func:`exporters.splits.group_split_sessions`: whole sessions,
    sessions sharing a performer together, stratified by each turn's majority emotion).
    """
    dim = taxonomy.emotion
    label_code = {v: i for i, v in enumerate(dim.values)}
    turn_index: dict[str, int] = {}
    annotator_index: dict[str, int] = {}
    items, raters = array("i"), array("i")
    given = array("b" if len(label_code) < 128 else "i")
    unknown: set[str] = set()
    rows = _raw_rows(
        db,
        select(Judgement.turn_id, Judgement.annotator, Judgement.value)
        .where(Judgement.project_id == project_id, Judgement.dimension == dim.name)
        .order_by(col(Judgement.id)),
    )
    for turn_id, annotator, value in rows:
        code = label_code.get(value)
        if code is None:
            unknown.add(value)
            continue
        items.append(turn_index.setdefault(turn_id, len(turn_index)))
        raters.append(annotator_index.setdefault(annotator, len(annotator_index)))
        given.append(code)
    if unknown:
        check_labels(unknown, list(label_code), "dawid_skene")
    plan = ExportPlan(
        classes=tuple(dim.values), turn_index=turn_index, intended=intended_map(db, project_id)
    )
    if items:
        codes = [np.frombuffer(a, dtype=a.typecode) for a in (items, raters, given)]
        fit = dawid_skene_codes(
            *codes,
            n_items=len(turn_index),
            n_annotators=len(annotator_index),
            n_labels=len(label_code),
            max_iter=1000,
        )
        plan.posterior = fit.posterior
        plan.best = fit.posterior.argmax(axis=1)
        votes = np.bincount(
            codes[0].astype(np.intp) * len(label_code) + codes[2],
            minlength=len(turn_index) * len(label_code),
        ).reshape(len(turn_index), len(label_code))
        del codes, items, raters, given
    else:
        votes = np.zeros((0, len(label_code)), dtype=np.intp)
    # majority emotion of each judged turn: the single most voted label, or -1 on a tie
    top = votes.max(axis=1, initial=0)
    clear = (votes == top[:, None]).sum(axis=1) == 1
    majority_code = np.where(clear & (top > 0), votes.argmax(axis=1), -1).astype(np.int16)
    del votes, top, clear
    if fractions is not None:
        plan.session_split = _split_sessions(
            db, project_id, dim, turn_index, majority_code, fractions=fractions, seed=seed
        )
    return plan


def _split_sessions(
    db: Session,
    project_id: int,
    dim: Dimension,
    turn_index: Mapping[str, int],
    majority_code: np.ndarray,
    *,
    fractions: Sequence[float],
    seed: int,
) -> dict[Any, str]:
    """Session -> split from one streamed read of the live tasks' dialogues."""
    labels = dim.values
    tallies: dict[Any, SessionTally] = {}
    label_order: dict[str, None] = {}
    tasks = db.exec(
        select(Task.data)
        .where(Task.project_id == project_id, col(Task.deleted).is_(False))
        .order_by(col(Task.id))
        .execution_options(yield_per=STREAM // 20)
    )
    for data in tasks:
        session = data.get("session_id")
        tally = tallies.get(session)
        if tally is None:
            tally = tallies[session] = SessionTally()
        for line in data.get("dialogue") or []:
            i = turn_index.get(str(line.get("turn_id")))
            code = -1 if i is None else int(majority_code[i])
            label = labels[code] if code >= 0 else None
            tally.add(line.get("performer") or line.get("speaker"), label)
            if label is not None and session is not None:
                label_order.setdefault(label)
    return group_split_sessions(
        tallies, label_order=list(label_order), fractions=fractions, seed=seed
    )


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
    (:func:`exporters.splits.group_split_sessions`), stratified by each turn's majority
    emotion. Holds every turn id: for large projects use :func:`plan_export`, which keeps
    the split per session.
    """
    plan = plan_export(db, project_id, taxonomy, fractions=fractions, seed=seed)
    session_split = plan.session_split or {}
    out: dict[str, str | None] = {}
    for data in db.exec(
        select(Task.data)
        .where(Task.project_id == project_id, col(Task.deleted).is_(False))
        .order_by(col(Task.id))
    ):
        for line in data.get("dialogue") or []:
            out[str(line.get("turn_id"))] = session_split.get(data.get("session_id"))
    return out


# Judgement columns as the row builder gets them (after the task id).
_ANNOTATION, _TURN, _ANNOTATOR, _DIMENSION, _VALUE = range(5)
# Shift columns (after the task id).
_S_ANNOTATOR, _S_START, _S_END, _S_FROM, _S_TO, _S_TRIGGER, _S_ONSET = range(7)
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

    def rows(
        self, db: Session, project_id: int, after: int = 0, last: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of the live tasks with ids in ``(after, last]``, a batch at a time."""
        while batch_tasks := _next_tasks(db, project_id, after, last):
            after = batch_tasks[-1].id
            annotations, judgements, shifts = _batch_inputs(db, [t.id for t in batch_tasks])
            for task in batch_tasks:
                yield from self.task_rows(
                    task, judgements.get(task.id, []), annotations, shifts.get(task.id, [])
                )

    def task_rows(
        self,
        task: Any,
        judgements: list[Any],
        annotations: Mapping[int, Any],
        shift_rows: list[Any],
    ) -> Iterator[dict[str, Any]]:
        """The rows of one task; every judgement counted as exported or skipped."""
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


def _scale(values: tuple[str, ...], _: Dimension) -> tuple[Any, ...]:
    mean, std = scale_stats([float(v) for v in values])
    label, tied = majority(values)
    return len(values), mean, std, label, tuple(tied)


def _pair_share(values: tuple[str, ...]) -> float | None:
    """The share of agreeing pairs among the values (``None`` for fewer than two)."""
    pairs = list(itertools.combinations(values, 2))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


@functools.lru_cache(maxsize=64)
def _pseudonyms(salt: str) -> Callable[[str], str]:
    """A cached pseudonym function for one salt (annotators repeat on every row)."""
    return functools.lru_cache(maxsize=100_000)(lambda a: pseudonym(a, salt))


def _mapped(value: Any, mapping: Mapping[str, str] | None) -> Any:
    if value is None or mapping is None:
        return value
    return mapping.get(str(value), value)


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


def _clip_alpha(judgements: Sequence[Any], taxonomy: Taxonomy) -> dict[str, float | None]:
    """Alpha of the clip's judgements per dimension (``None`` where undefined)."""
    by_dim: dict[str, list[Any]] = defaultdict(list)
    for j in judgements:
        by_dim[j[_DIMENSION]].append(j)
    out: dict[str, float | None] = {}
    for dim in taxonomy.dimensions:
        rows = by_dim.get(dim.name)
        if not rows:
            out[dim.name] = None
            continue
        codes = {v: float(i) for i, v in enumerate(dim.values)} if dim.kind == "choice" else None
        values = [codes[j[_VALUE]] if codes else float(j[_VALUE]) for j in rows]
        units = [j[_TURN] for j in rows]
        raters = [j[_ANNOTATOR] for j in rows]
        if dim.level == "nominal":
            fast = _nominal_alpha(units, raters, values)
            if fast is not _FALLBACK:
                out[dim.name] = fast
                continue
        matrix = pivot(units, raters, values)[0]
        try:
            out[dim.name] = float(krippendorff_alpha(matrix, level=dim.level))
        except ValueError:
            out[dim.name] = None
    return out


_FALLBACK = object()


def _nominal_alpha(
    units: Sequence[str], raters: Sequence[str], values: Sequence[float]
) -> float | object | None:
    """Nominal alpha of long-format judgements, in the same float operations as
    ``krippendorff_alpha(pivot(units, raters, values)[0])`` (``None`` where that raises).

    Made for the small data of one clip, where the matrix path's numpy overhead dominates.
    Returns ``_FALLBACK`` when a rater judged a unit twice (the matrix path then dedups or
    raises, as before).
    """
    per_unit: dict[str, dict[str, float]] = {}
    for unit, rater, value in zip(units, raters, values, strict=True):
        given = per_unit.setdefault(unit, {})
        if rater in given:
            return _FALLBACK
        given[rater] = value
    m_list: list[int] = []
    disagreeing: list[int] = []
    counts: Counter[float] = Counter()
    for given in per_unit.values():
        m = len(given)
        if m < 2:
            continue
        tally = Counter(given.values())
        counts.update(tally)
        equal = sum(c * (c - 1) // 2 for c in tally.values())
        m_list.append(m)
        disagreeing.append(m * (m - 1) - 2 * equal)
    if not m_list or len(counts) < 2:
        return None  # no pairable unit, or no spread: alpha undefined
    n = float(sum(m_list))
    m_array = np.array(m_list, dtype=np.intp)
    observed = float(np.sum(np.array(disagreeing, dtype=np.intp) / (m_array - 1)))
    expected = n * n - float(sum(c * c for c in counts.values()))
    return 1.0 - (n - 1.0) * observed / expected


def _shift_fields(
    i: int,
    turns: Sequence[TurnLabel],
    prev_speaker: Sequence[int | None],
    prev_any: Sequence[int | None],
    taxonomy: Taxonomy,
    mapping: Mapping[str, str] | None,
    shift_rows: Sequence[Any],
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
        moment = (e[_S_START] + e[_S_END]) / 2
        if start - tolerance <= moment <= end + tolerance:
            key = (e[_S_FROM], e[_S_TO], e[_S_TRIGGER], e[_S_ONSET])
            grouped[key].add(e[_S_ANNOTATOR])
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


__all__ = ["Accounting", "ExportOptions", "ExportPlan", "iter_rows", "plan_export", "plan_splits"]
