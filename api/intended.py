"""Intended emotions, kept by the service instead of in Label Studio.

A session's ``session.yaml`` may say which emotion the scene intended at each turn. Label
Studio shows a task's whole ``data`` to every member of the organisation (data manager,
``/api/tasks``, the labeling stream), so the intended emotions never go there: the import
sends them here (``PUT /projects/{id}/intended/{session}``, with the API key) and the
export joins them to its rows by turn id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import Session, col, delete, select

from api.models import IntendedEmotionRow

__all__ = ["IntendedError", "intended_map", "intended_rows", "put_intended"]

MAX_TEXT = 200  # characters of a turn id, session id or emotion name


class IntendedError(ValueError):
    """An intended-emotion entry is malformed; the message names the entry and field."""


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise IntendedError(f"{where}.{key}: expected a non-empty string of at most {MAX_TEXT}")
    return value


def put_intended(
    db: Session, project_id: int, session_id: str, turns: Iterable[Mapping[str, Any]]
) -> int:
    """Make ``turns`` the project's intended emotions of ``session_id`` (the session's
    earlier ones are replaced; an empty list clears them); returns how many are kept.

    Each turn is ``{"turn_id": str, "turn_index": int, "emotion": str}``. The caller
    commits.
    """
    rows: dict[str, IntendedEmotionRow] = {}
    for i, item in enumerate(turns):
        where = f"turns[{i}]"
        if not isinstance(item, Mapping):
            raise IntendedError(f"{where}: expected an object with turn_id, turn_index, emotion")
        index = item.get("turn_index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise IntendedError(f"{where}.turn_index: expected a whole number >= 0")
        turn_id = _text(item, "turn_id", where)
        if turn_id in rows:
            raise IntendedError(f"{where}.turn_id: {turn_id!r} is given twice")
        rows[turn_id] = IntendedEmotionRow(
            project_id=project_id,
            turn_id=turn_id,
            session_id=session_id,
            turn_index=index,
            emotion=_text(item, "emotion", where),
        )
    db.exec(  # type: ignore[call-overload]
        delete(IntendedEmotionRow).where(
            col(IntendedEmotionRow.project_id) == project_id,
            col(IntendedEmotionRow.session_id) == session_id,
        )
    )
    if rows:  # a turn id another session held in this project moves to this one
        db.exec(  # type: ignore[call-overload]
            delete(IntendedEmotionRow).where(
                col(IntendedEmotionRow.project_id) == project_id,
                col(IntendedEmotionRow.turn_id).in_(list(rows)),
            )
        )
    db.add_all(rows.values())
    return len(rows)


def intended_rows(db: Session, project_id: int) -> list[IntendedEmotionRow]:
    """The project's intended emotions, by session and turn index."""
    return list(
        db.exec(
            select(IntendedEmotionRow)
            .where(IntendedEmotionRow.project_id == project_id)
            .order_by(col(IntendedEmotionRow.session_id), col(IntendedEmotionRow.turn_index))
        ).all()
    )


def intended_map(db: Session, project_id: int) -> dict[str, str]:
    """``{turn id: intended emotion}`` of the project."""
    return {row.turn_id: row.emotion for row in intended_rows(db, project_id)}
