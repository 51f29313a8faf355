"""One name per annotator on the QA side: Label Studio user id -> the name QA leads read.

Every judgement carries the annotator's Label Studio user id (``completed_by``) as its key;
the service reads the organisation's users (``GET /api/users``) on each pull from Label
Studio and keeps their names here, so the API, the CLI and the dashboard show the same
``"First Last <email>"`` for the same id. The id stays the key: two members who give
themselves the same name are shown apart (``"... (user 7)"``), never merged, and a member
the service has not read yet is shown as ``"user 7"``. Names are text from people: the
dashboard escapes them where they land; exports never carry them (they keep the salted
pseudonyms of :func:`exporters.aggregate.pseudonym`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from api.models import Annotation, Member

MAX_PART = 80  # characters kept of a first name, last name or e-mail
_SECOND = re.compile(r"^(?P<id>\d+)(?P<rest> \(annotation \d+\))$")


def _clean(text: Any) -> str:
    """A name part as one line of printable text: control and format characters (line
    breaks, bidi overrides, zero-width joiners) removed, whitespace collapsed, cut to
    :data:`MAX_PART` characters."""
    if not isinstance(text, str):
        return ""
    kept = "".join(
        " " if c.isspace() else c for c in text if c.isspace() or unicodedata.category(c)[0] != "C"
    )
    return " ".join(kept.split())[:MAX_PART]


def display(user_id: int, email: Any, first_name: Any, last_name: Any) -> str:
    """The name of one member: ``"First Last <email>"``, the part there is, or ``"user N"``.

    Examples
    --------
    >>> display(7, "ann@example.org", "Ann", "Lee")
    'Ann Lee <ann@example.org>'
    >>> display(7, "ann@example.org", "", None), display(7, None, None, None)
    ('ann@example.org', 'user 7')
    >>> display(8, "x@example.org", "Ann\\u202e", "Lee\\n")
    'Ann Lee <x@example.org>'
    """
    name = " ".join(p for p in (_clean(first_name), _clean(last_name)) if p)
    mail = _clean(email)
    if name and mail:
        return f"{name} <{mail}>"
    return name or mail or f"user {int(user_id)}"


def record_users(db: Session, users: Iterable[Mapping[str, Any]]) -> int:
    """Keep the names of Label Studio users (dicts with ``id``, ``email``, ``first_name``,
    ``last_name``); returns how many were new or changed. Users without an integer id are
    not recorded (nothing could be keyed by them)."""
    now = datetime.now(UTC)
    changed = 0
    for user in users:
        try:
            user_id = int(user["id"])
        except (KeyError, TypeError, ValueError):
            continue
        fields = {k: _clean(user.get(k)) or None for k in ("email", "first_name", "last_name")}
        row = db.get(Member, user_id)
        if row is None:
            db.add(Member(id=user_id, seen_at=now, **fields))
            changed += 1
            continue
        if any(getattr(row, k) != v for k, v in fields.items()):
            changed += 1
        for key, value in fields.items():
            setattr(row, key, value)
        row.seen_at = now
        db.add(row)
    db.commit()
    return changed


def names(db: Session, keys: Iterable[str]) -> dict[str, str]:
    """``{annotator key: display name}`` for the keys the QA figures use.

    A key is a user id (``"7"``), or a user's older annotation of a task the reports count
    as a rater of its own (``"7 (annotation 12)"``: the name then carries the same suffix).
    Names that two members share get ``" (user N)"``, so no two ids read alike.

    Examples
    --------
    >>> from sqlmodel import SQLModel, create_engine
    >>> engine = create_engine("sqlite://")
    >>> SQLModel.metadata.create_all(engine, tables=[Member.__table__])
    >>> with Session(engine) as db:
    ...     _ = record_users(db, [{"id": 3, "email": "a@x.org", "first_name": "Ann"},
    ...                           {"id": 5, "email": "a@x.org", "first_name": "Ann"}])
    ...     names(db, ["3", "5", "9", "3 (annotation 4)"])  # doctest: +NORMALIZE_WHITESPACE
    {'3': 'Ann <a@x.org> (user 3)', '5': 'Ann <a@x.org> (user 5)', '9': 'user 9',
     '3 (annotation 4)': 'Ann <a@x.org> (user 3) (annotation 4)'}
    """
    keys = list(dict.fromkeys(str(k) for k in keys))
    members = {m.id: m for m in db.exec(select(Member)).all()}
    plain = {uid: display(uid, m.email, m.first_name, m.last_name) for uid, m in members.items()}
    shared = {n for n, count in _counts(plain.values()).items() if count > 1}
    out: dict[str, str] = {}
    for key in keys:
        user_id, rest = _split(key)
        if user_id is None:
            out[key] = key
            continue
        name = plain.get(user_id, f"user {user_id}")
        if name in shared:
            name = f"{name} (user {user_id})"
        out[key] = name + rest
    return out


def _counts(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def _split(key: str) -> tuple[int | None, str]:
    if key.isdigit():
        return int(key), ""
    match = _SECOND.match(key)
    if match:
        return int(match["id"]), match["rest"]
    return None, ""


def project_members(db: Session, project_id: int) -> list[dict[str, Any]]:
    """Every annotator of a project (who has an annotation the store keeps), by user id,
    with the name shown for them."""
    ids = db.exec(
        select(Annotation.annotator)
        .where(
            Annotation.project_id == project_id,
            col(Annotation.annotator).is_not(None),
            col(Annotation.deleted).is_(False),
        )
        .distinct()
    ).all()
    keys = sorted({str(i) for i in ids}, key=lambda k: (len(k), k))
    shown = names(db, keys)
    return [{"annotator": k, "name": shown[k]} for k in keys]
