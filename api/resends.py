"""How often each clip went to adjudication again, and the clips held back for a person.

A clip is sent to adjudication again when its task there was deleted or tampered with
(:func:`annotate.adjudicate.send`). Each time the adjudicator's work on it is thrown away,
so a member who tampers before every send could keep a clip from ever being decided and
waste every adjudicator's time on it. Past ``adjudication.max_resends`` re-sends the clip
is therefore held: it is listed (:func:`held`), not sent, until a QA lead releases it
(:func:`release`, or :func:`release_all`), which allows one more. Only tampering with the
clip's own task counts: a change to the whole adjudication project, or its deletion, sends
every clip again without counting (one member could otherwise hold every clip at once).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlmodel import Session, select

from api.models import AdjudicationResend

__all__ = ["count", "held", "release", "release_all"]


def count(db: Session, project_id: int, clips: Iterable[str]) -> None:
    """Count one more re-send of each of ``clips``. The caller commits."""
    now = datetime.now(UTC)
    for clip in sorted(set(clips)):
        row = db.get(AdjudicationResend, (project_id, clip)) or AdjudicationResend(
            project_id=project_id, clip_id=clip
        )
        row.resends += 1
        row.last_at = now
        db.add(row)
    db.flush()


def held(db: Session, project_id: int, limit: int) -> dict[str, int]:
    """``{clip id: re-sends}`` of the clips re-sent more than ``limit`` times beyond what
    a person released: not to be sent until released."""
    rows = db.exec(
        select(AdjudicationResend).where(AdjudicationResend.project_id == project_id)
    ).all()
    return {r.clip_id: r.resends for r in rows if r.resends - r.released > limit}


def release(db: Session, project_id: int, clip: str, limit: int) -> bool:
    """Let a held clip go once more; False when it is not held. Commits."""
    row = db.get(AdjudicationResend, (project_id, clip))
    if row is None or row.resends - row.released <= limit:
        return False
    row.released = row.resends - limit
    db.add(row)
    db.commit()
    return True


def release_all(db: Session, project_id: int, limit: int) -> list[str]:
    """Let every held clip of the project go once more (after a member's tampering with
    the whole project was dealt with); the clips released, in order. Commits."""
    released = sorted(held(db, project_id, limit))
    for clip in released:
        release(db, project_id, clip, limit)
    return released
