"""Reading the store: judgements, tasks, projects and agreement from the kept sums.

Every function reads; none writes. :mod:`api.store` re-exports them, so callers keep
using ``store.agreement`` and the like.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlmodel import Session, col, func, select

from annotate import incremental
from annotate.agreement import pivot
from api.models import AgreementSum, Annotation, Judgement, Task
from schemas.errors import AnnotateError
from schemas.taxonomy import Dimension, Taxonomy

__all__ = [
    "NotFound",
    "agreement",
    "check_dimension",
    "codes_of",
    "count_judgements",
    "iter_judgements",
    "iter_tasks",
    "judgement_matrix",
    "live_judgements",
    "projects",
    "recompute_sums",
    "skipped",
    "stored_sums",
    "turn_labels",
]


class NotFound(AnnotateError, LookupError):
    """An unknown project or dimension; the message lists what exists."""


def live_judgements(project_id: int, dimension: str | None = None) -> Any:
    """A select of the project's judgements (of one dimension), deleted ones excluded."""
    query = select(Judgement).where(Judgement.project_id == project_id)
    if dimension is not None:
        query = query.where(Judgement.dimension == dimension)
    return query.order_by(col(Judgement.id))


def count_judgements(db: Session, project_id: int) -> int:
    """How many judgements the project has."""
    return int(
        db.exec(
            select(func.count()).select_from(Judgement).where(Judgement.project_id == project_id)
        ).one()
    )


def iter_judgements(db: Session, project_id: int) -> Iterator[Judgement]:
    """Every judgement of the project, in arrival order, streamed."""
    yield from db.exec(live_judgements(project_id)).yield_per(5000)


def iter_tasks(db: Session, project_id: int) -> Iterator[Task]:
    """The project's live tasks, ordered by id."""
    query = select(Task).where(Task.project_id == project_id, col(Task.deleted).is_(False))
    yield from db.exec(query.order_by(col(Task.id)))


def skipped(db: Session, project_id: int) -> dict[str, int]:
    """Result items of the project's live annotations that gave no judgement, by reason."""
    totals: dict[str, int] = {}
    rows = db.exec(
        select(Annotation.skipped).where(
            Annotation.project_id == project_id, col(Annotation.deleted).is_(False)
        )
    ).all()
    for counts in rows:
        for reason, n in (counts or {}).items():
            totals[reason] = totals.get(reason, 0) + int(n)
    return totals


def projects(db: Session) -> list[int]:
    """Ids of the projects the store has judgements or tasks for (not the negated ids that
    hold hidden repeats' second passes, :mod:`api.repeats`)."""
    ids = set(db.exec(select(Task.project_id).distinct()).all())
    ids |= set(db.exec(select(Judgement.project_id).distinct()).all())
    return sorted(i for i in ids if i >= 0)


def check_dimension(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> None:
    """Raise :class:`NotFound` listing what exists for an unknown project or dimension."""
    known = projects(db)
    if project_id not in known:
        raise NotFound(f"unknown project {project_id}; the store has {known}")
    if dimension not in {d.name for d in taxonomy.dimensions}:
        raise NotFound(
            f"unknown dimension {dimension!r}; expected one of "
            f"{[d.name for d in taxonomy.dimensions]}"
        )


def stored_sums(db: Session, project_id: int, dimension: str) -> dict[str, float]:
    """The incremental agreement sums of one project and dimension."""
    rows = db.exec(
        select(AgreementSum.key, AgreementSum.value).where(
            AgreementSum.project_id == project_id, AgreementSum.dimension == dimension
        )
    ).all()
    return dict(rows)


def codes_of(dim: Dimension) -> dict[str, float]:
    """Value -> number for the agreement metric of ``dim``."""
    if dim.kind == "choice":
        return {v: float(i) for i, v in enumerate(dim.values)}
    return {str(v): float(v) for v in dim.scale}


def agreement(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> dict[str, Any]:
    """The live figures of one dimension from the incremental sums (no scan of judgements).

    Krippendorff's alpha at the dimension's level, Gwet's AC1 and percent agreement, with
    the counts of judgements, units and annotators.
    """
    check_dimension(db, project_id, dimension, taxonomy)
    dim = taxonomy.dimension(dimension)
    live = incremental.figures(
        stored_sums(db, project_id, dimension),
        codes_of(dim),
        dim.level,
        len(dim.values) if dim.kind == "choice" else len(dim.scale),
    )
    counts = db.exec(
        select(
            func.count(),
            func.count(func.distinct(Judgement.turn_id)),
            func.count(func.distinct(Judgement.annotator)),
        ).where(Judgement.project_id == project_id, Judgement.dimension == dimension)
    ).one()
    return {
        "project": project_id,
        "dimension": dimension,
        "level": dim.level,
        "taxonomy": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "judgements": int(counts[0]),
        "units": int(counts[1]),
        "annotators": int(counts[2]),
        **live,
    }


def judgement_matrix(
    db: Session, project_id: int, dim: Dimension
) -> tuple[np.ndarray, list[str], list[str]]:
    """(annotators x units) codes of one dimension, with annotator and unit labels."""
    rows = db.exec(
        select(Judgement.turn_id, Judgement.annotator, Judgement.value).where(
            Judgement.project_id == project_id, Judgement.dimension == dim.name
        )
    ).all()
    if not rows:
        return np.empty((0, 0)), [], []
    codes = codes_of(dim)
    units, annotators, values = zip(*rows, strict=True)
    matrix, names, unit_ids = pivot(units, annotators, [codes[v] for v in values])
    return matrix, [str(n) for n in names], [str(u) for u in unit_ids]


def recompute_sums(db: Session, project_id: int) -> dict[str, dict[str, float]]:
    """The sums rebuilt from the judgements (the batch path the incremental one must equal)."""
    units: dict[tuple[str, str], list[str]] = defaultdict(list)
    rows = db.exec(
        select(Judgement.dimension, Judgement.turn_id, Judgement.value).where(
            Judgement.project_id == project_id
        )
    ).all()
    for dimension, turn_id, value in rows:
        units[(dimension, turn_id)].append(value)
    by_dim: dict[str, list[list[str]]] = defaultdict(list)
    for (dimension, _), values in units.items():
        by_dim[dimension].append(sorted(values))
    return {d: incremental.total_sums(v) for d, v in by_dim.items()}


def turn_labels(db: Session, project_id: int) -> dict[str, dict[str, dict[str, str]]]:
    """``{turn_id: {annotator: {dimension: value}}}`` for the project's live judgements."""
    table: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for j in iter_judgements(db, project_id):
        table[j.turn_id][j.annotator][j.dimension] = j.value
    return {turn: dict(by) for turn, by in table.items()}
