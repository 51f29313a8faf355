"""Gold clips: a share of clips the import marks (``improv-annotate import --gold-share``)
for an expert to answer blind, so that every annotator can be scored against an answer.

The marks live in the service's store, never in Label Studio: a gold clip is a task like
any other to annotators. Which clips are gold is decided per clip by a keyed hash of its
clip key (:func:`pick_gold`), so every machine importing with the same configuration picks
the same clips, and an annotator, who does not know the key, cannot work it out. A session
keeps the marks it was given first: importing it again (with another share) adds none and
removes none.

The expert's answer is their decision in the adjudication project
(:mod:`annotate.adjudicate` sends gold clips there without the panel's labels); the
annotators' scorecard takes it, beside Label Studio's ground-truth annotations, as gold.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.models import GoldClip

__all__ = ["gold_clips", "mark_gold", "pick_gold"]


def pick_gold(clip_keys: Iterable[str], share: float, key: str, domain: str = "gold") -> list[str]:
    """The clip keys that are gold at ``share`` (0 to 1): those whose keyed hash, read as a
    number in [0, 1), is below ``share``. ``domain`` makes another independent pick with
    the same key (the hidden repeats', :mod:`api.repeats`).

    >>> pick_gold(["a", "b"], 0.0, "k"), pick_gold(["a", "b"], 1.0, "k")
    ([], ['a', 'b'])
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{domain} share: expected a fraction from 0 to 1, got {share}")
    out = []
    for clip in clip_keys:
        message = clip if domain == "gold" else f"{domain}:{clip}"
        digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < share:
            out.append(clip)
    return out


def mark_gold(db: Session, project_id: int, session_id: str, clip_ids: Iterable[str]) -> int:
    """Mark ``clip_ids`` of a session gold, unless the session has marks already (they
    stay as they are). Returns the session's gold clips now. The caller commits."""
    have = db.exec(
        select(GoldClip.clip_id).where(
            GoldClip.project_id == project_id, GoldClip.session_id == session_id
        )
    ).all()
    if have:
        return len(have)
    now = datetime.now(UTC)
    ids = sorted(set(clip_ids))
    savepoint = db.begin_nested()
    db.add_all(
        GoldClip(project_id=project_id, clip_id=c, session_id=session_id, marked_at=now)
        for c in ids
    )
    try:
        savepoint.commit()
    except IntegrityError:  # another import marked the session at the same moment
        savepoint.rollback()
        return mark_gold(db, project_id, session_id, ())
    return len(ids)


def gold_clips(db: Session, project_id: int) -> dict[str, str]:
    """``{clip id: session id}`` of the project's gold clips."""
    rows = db.exec(
        select(GoldClip.clip_id, GoldClip.session_id)
        .where(GoldClip.project_id == project_id)
        .order_by(col(GoldClip.id))
    ).all()
    return dict(rows)
