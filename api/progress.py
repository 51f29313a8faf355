"""Where the applier stands, kept in the store (table ``applier_state``, one row) so that
every process and machine that reads the store sees it: the watermark (the highest inbox
id applied), the leading applier's heartbeat, and the identity of the inbox the watermark
counts in (see :class:`api.models.ApplierState`).

Only the leading applier writes the watermark and the heartbeat; the web workers read
them and never wait for the applier to do so (reads of the store do not wait for writers,
on SQLite in WAL mode as on PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from api.models import ApplierState

log = logging.getLogger("improv_annotate.progress")
STATE = ApplierState.__table__  # type: ignore[attr-defined]
HOST = socket.gethostname()


class Replaced(RuntimeError):
    """The store counts in another inbox than the applier's (its file was replaced): the
    applier must open the new one before applying anything more."""


@dataclass(frozen=True, slots=True)
class Progress:
    """The row of ``applier_state`` as last read."""

    watermark: int = 0
    inbox_identity: str | None = None
    heartbeat_at: datetime | None = None
    pid: int | None = None
    host: str | None = None
    caught_up_at: datetime | None = None
    replaced_at: datetime | None = None
    lost_since: datetime | None = None

    def heartbeat_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the leading applier last reported (None: never)."""
        if self.heartbeat_at is None:
            return None
        return ((now or datetime.now(UTC)) - _aware(self.heartbeat_at)).total_seconds()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def read(engine: Engine | Connection) -> Progress:
    """The applier's state as the store has it now (defaults when the row is missing)."""
    query = select(*[STATE.c[f] for f in Progress.__dataclass_fields__]).where(STATE.c.id == 1)
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    if row is None:
        return Progress()
    values = row._asdict()
    for key, value in values.items():
        if isinstance(value, datetime):
            values[key] = _aware(value)
    values["watermark"] = int(values["watermark"] or 0)
    return Progress(**values)


def _ensure(conn: Connection) -> None:
    if conn.execute(select(STATE.c.id).where(STATE.c.id == 1)).first() is None:
        conn.execute(STATE.insert().values(id=1, watermark=0))


def record(
    conn: Connection,
    *,
    upto: int | None = None,
    caught_up: bool = False,
    identity: str | None = None,
) -> None:
    """In the connection's transaction: the watermark moves up to ``upto`` (never down),
    and the heartbeat of this process (``caught_up``: nothing was left to apply).

    ``identity``: the inbox the applier reads; raises :class:`Replaced` (and changes
    nothing) when the store counts in another one."""
    _ensure(conn)
    if identity is not None:
        known = conn.execute(select(STATE.c.inbox_identity).where(STATE.c.id == 1)).scalar()
        if known is not None and known != identity:
            raise Replaced(f"the store counts in inbox {known}, this applier reads {identity}")
    now = datetime.now(UTC)
    values: dict[str, object] = {"heartbeat_at": now, "pid": os.getpid(), "host": HOST}
    if caught_up:
        values["caught_up_at"] = now
    conn.execute(update(STATE).where(STATE.c.id == 1).values(**values))
    if upto is not None:
        conn.execute(
            update(STATE).where(STATE.c.id == 1, STATE.c.watermark < upto).values(watermark=upto)
        )
    if identity is not None and known is None:
        conn.execute(update(STATE).where(STATE.c.id == 1).values(inbox_identity=identity))


def claim(engine: Engine, identity: str) -> Progress:
    """Record ``identity`` as the store's inbox. When the store knew another inbox, that
    one was deleted or replaced: events it acknowledged after the applier last caught up
    may be lost; ``lost_since`` says from when (an error is logged). Returns the state
    after the claim."""
    with engine.begin() as conn:
        _ensure(conn)
        before = read(conn)
        if before.inbox_identity is None:
            conn.execute(update(STATE).where(STATE.c.id == 1).values(inbox_identity=identity))
        elif before.inbox_identity != identity:
            since = before.caught_up_at or before.heartbeat_at or before.replaced_at
            since = since or datetime(1970, 1, 1, tzinfo=UTC)
            if before.lost_since is not None:
                since = min(since, before.lost_since)
            conn.execute(
                update(STATE)
                .where(STATE.c.id == 1, STATE.c.inbox_identity == before.inbox_identity)
                .values(inbox_identity=identity, replaced_at=datetime.now(UTC), lost_since=since)
            )
            log.error(
                "inbox replaced (identity %s, the store knew %s): events acknowledged since "
                "%s may be lost",
                identity,
                before.inbox_identity,
                since.isoformat(),
            )
        return read(conn)


def recovered(engine: Engine, replaced_at: datetime | None) -> bool:
    """Clear ``lost_since`` once a full pull from Label Studio, started after the inbox
    replaced at ``replaced_at`` was noticed, has brought back what it held (unless another
    replacement happened since). Returns whether it was cleared."""
    with engine.begin() as conn:
        now = read(conn)
        if now.lost_since is None or now.replaced_at != replaced_at:
            return False
        conn.execute(update(STATE).where(STATE.c.id == 1).values(lost_since=None))
        return True
