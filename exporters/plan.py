"""The export plan: what the rows need from the whole project before the first row is built.

:func:`plan_export` streams the emotion judgements once (fitting Dawid-Skene on compact
integer codes) and the live tasks once (per-session tallies for the split, and what the
tasks say of each session: performers, provenance), then splits the sessions.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from api.intended import intended_map
from api.models import Judgement, Task
from exporters.aggregate import check_labels
from exporters.dawid_skene import dawid_skene_codes
from exporters.splits import SessionTally, group_split_sessions, split_warnings
from schemas.taxonomy import Dimension, Taxonomy


@dataclass(slots=True)
class SessionFacts:
    """What the live tasks of one session say about it: its performers and turns, and
    where it came from (``provenance`` in the task data: ``synthetic``, ``licence``,
    ``consent``, from the session's session.yaml; absent keys stay ``None``)."""

    performers: set[str] = field(default_factory=set)
    turns: int = 0
    synthetic: bool | None = None
    licence: str | None = None
    consent: str | None = None


@dataclass(slots=True)
class ExportPlan:
    """What the rows need from the whole project before the first row is built.

    The Dawid-Skene fit of the emotion labels (one posterior row per judged turn), the
    train/dev/test split of every session, what the tasks say of each session
    (:class:`SessionFacts`), and ``warnings``: what the split could not do as asked.
    Memory: the turn-id index and a ``(turns, K)`` float64 posterior; no per-judgement
    state survives :func:`plan_export`.
    """

    classes: tuple[str, ...] = ()
    turn_index: dict[str, int] = field(default_factory=dict)
    posterior: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    best: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    session_split: dict[Any, str] | None = None
    # turn id -> the scene's intended emotion, kept by the service (never in a task's data)
    intended: dict[str, str] = field(default_factory=dict)
    # turn id -> dimension -> the adjudicator's value (api.adjudication.decisions)
    adjudicated: dict[str, dict[str, str]] = field(default_factory=dict)
    sessions: dict[Any, SessionFacts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

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
    tallies, label_order = _read_sessions(db, project_id, dim, turn_index, majority_code, plan)
    if fractions is not None:
        plan.session_split = group_split_sessions(
            tallies, label_order=label_order, fractions=fractions, seed=seed
        )
        plan.warnings += split_warnings(tallies, plan.session_split, fractions)
    return plan


def _read_sessions(
    db: Session,
    project_id: int,
    dim: Dimension,
    turn_index: Mapping[str, int],
    majority_code: np.ndarray,
    plan: ExportPlan,
) -> tuple[dict[Any, SessionTally], list[str]]:
    """Per-session tallies for the split (and the labels in order of first appearance),
    from one streamed read of the live tasks; fills ``plan.sessions`` on the way."""
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
        facts = plan.sessions.get(session)
        if facts is None:
            facts = plan.sessions[session] = SessionFacts()
        _provenance(facts, data.get("provenance"))
        for line in data.get("dialogue") or []:
            i = turn_index.get(str(line.get("turn_id")))
            code = -1 if i is None else int(majority_code[i])
            label = labels[code] if code >= 0 else None
            performer = line.get("performer") or line.get("speaker")
            tally.add(performer, label)
            facts.turns += 1
            if performer is not None:
                facts.performers.add(str(performer))
            if label is not None and session is not None:
                label_order.setdefault(label)
    return tallies, list(label_order)


def _provenance(facts: SessionFacts, given: Any) -> None:
    """Take a task's ``provenance`` (synthetic, licence, consent) into its session's facts."""
    if not isinstance(given, Mapping):
        return
    if given.get("synthetic") is not None:
        facts.synthetic = bool(given["synthetic"])
    for key in ("licence", "consent"):
        if given.get(key):
            setattr(facts, key, str(given[key]))


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
