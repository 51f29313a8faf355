"""The inbox: every webhook delivery is kept durably before it is acknowledged, and one
applier applies what the inbox holds to the store, many events per transaction.

Label Studio waits for the webhook inside the annotator's save (1 s timeout, no retry), so
the answer must come fast and must mean "this event will be counted". Acknowledging an
event therefore costs one small committed row (:class:`Inbox`, written by the webhook's
group commit, :mod:`api.ingest`); applying it (its judgement rows, the agreement sums of
the units it touches) is the applier's work, off the request path, in batches of up to
``batch`` events (:class:`api.applier.Applier`).

Where the inbox lives:

- PostgreSQL: the ``inbox`` table of the store. The applier deletes the rows it applied in
  the same transaction that applies them, so each event is applied exactly once. The
  applier takes row locks only, so a stopped applier never holds up a webhook's insert.
- SQLite: a file of its own beside the store (``annotate.db`` -> ``annotate.inbox.db``),
  so that keeping an event never waits for the store's write lock while the applier holds
  it. The applier never writes this file (a stopped applier must not hold its write lock
  while webhooks wait): it records the highest inbox id it applied (the watermark,
  :mod:`api.progress`) in the store, in the transaction that applies the batch, so each
  event is applied once; the web worker's writer deletes rows at or below the watermark
  in the transactions it commits anyway, and its supervisor checkpoints the file's log.

Every inbox file has an identity (a row of its ``inbox_meta`` table) which the store
records beside the watermark: an inbox file that was deleted or replaced is noticed
(:meth:`Inbox.lost_file` while the service runs, :func:`api.progress.claim` at the next
start), the ids of a new file continue above the watermark, and the service says from when
acknowledged events may be lost instead of starting over silently.

One applier works at a time: service workers and their appliers elect one with a lock (an
advisory lock on PostgreSQL, a file lock on SQLite); the others wait, ready to take over.
Correctness does not depend on the election (two appliers would apply some events twice,
harmlessly, and the watermark never moves down); it saves the work.

Reads are consistent with what was acknowledged: :meth:`Inbox.wait_applied` waits (a
bounded time) until every event kept before the call is applied (the read endpoints call
it first), so a client that got its 200 and then asks for agreement sees its event
counted; when the wait runs out, :meth:`Inbox.lag` says how far behind the answer is.

The applier itself is :class:`api.applier.Applier`, run in a process of its own with
``python -m api.applier`` (the service does this when started by uvicorn, and replaces
it when it dies, see :mod:`api.supervise`) or in a thread.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from annotate.config import Settings
from api import privacy, progress
from api.db import make_engine
from api.doorbell import CHANNEL
from api.models import InboxRow
from schemas.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger("improv_annotate.inbox")

INBOX = InboxRow.__table__  # type: ignore[attr-defined]
MAX_BODY = 2 * 1024 * 1024  # characters of a body kept in a dead letter
ATTEMPTS = 4  # tries of one transaction on a deadlock, a conflict or a locked database
MIN_POLL, MAX_POLL = 0.001, 0.02  # seconds between looks at an empty inbox
FORGET_AT_ONCE = 2000  # applied rows the writer deletes per commit, at most
# the identity of a SQLite inbox file (one row), recorded in the store beside the watermark
META = Table(
    "inbox_meta",
    MetaData(),
    Column("identity", String, primary_key=True),
    Column("created_at", DateTime, nullable=False),
)


def retryable(exc: Exception) -> bool:
    """Whether a failed transaction may simply be tried again: a deadlock, a serialization
    failure or a unique violation between concurrent writers (PostgreSQL), or a locked
    database (SQLite). The transaction was rolled back, so a retry is clean."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40P01", "40001", "23505"} or "database is locked" in str(exc).lower()


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or used right now (rather than
    that it refuses this data): the work is kept and tried again later."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def transaction(engine: Engine, work: Callable[[Session], Any]) -> Any:
    """Run ``work`` in one transaction and commit; retried when :func:`retryable`."""
    for attempt in range(ATTEMPTS):
        with Session(engine) as db:
            try:
                result = work(db)
                db.commit()
                return result
            except (OperationalError, IntegrityError) as exc:
                db.rollback()
                if attempt == ATTEMPTS - 1 or not retryable(exc):
                    raise
        time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def inbox_path(store_path: str | Path) -> Path:
    """The SQLite inbox file beside a SQLite store file."""
    path = Path(store_path)
    return path.with_name(f"{path.stem}.inbox{path.suffix or '.db'}")


def letter(reason: str, body: bytes) -> dict[str, Any]:
    """A dead-letter row: a payload that cannot be applied, with the reason; personal data
    in both is replaced by salted pseudonyms (see ``api.privacy``)."""
    return {
        "received_at": datetime.now(UTC),
        "reason": privacy.redact_text(reason)[:2000],
        "body": privacy.redact_body(body.decode("utf-8", "replace"))[:MAX_BODY],
    }


def _no_checkpoint_on_commit(connection: Any, _record: Any) -> None:
    """SQLite checkpoints the write-ahead log in the commit that makes it pass 1000 pages,
    which made that commit (and every event waiting on it) take 100-250 ms instead of 2 ms;
    the web worker's supervisor checkpoints the inbox instead (:meth:`Inbox.checkpoint`).
    The limit left here only bounds the log if no supervisor runs."""
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cursor.close()


BACKSTOP_PAGES = 50_000  # about 200 MB of log before a commit checkpoints by itself


class InboxUnavailable(OSError):
    """The inbox cannot take deliveries now (its file is missing or was replaced, or the
    last write failed): nothing is acknowledged; the message names the file."""


@dataclass(frozen=True, slots=True)
class Lag:
    """How far the store is behind what the webhook acknowledged: ``pending`` events
    not applied yet, the oldest of them received ``oldest_age_s`` seconds ago."""

    pending: int = 0
    oldest_age_s: float = 0.0

    @property
    def fresh(self) -> bool:
        """Whether nothing acknowledged waits."""
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        """``{"pending", "oldest_age_s", "fresh"}`` (what JSON answers carry)."""
        return {
            "pending": self.pending,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "fresh": self.fresh,
        }


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class Inbox:
    """Where acknowledged webhook deliveries wait to be applied.

    Parameters
    ----------
    store : Engine
        The engine that applies events to the store (on SQLite one whose transactions
        begin IMMEDIATE, see ``api.db.make_engine``).
    create : bool
        SQLite: create the inbox file when it is missing (the web workers do; the applier
        only reads the file and waits for it, see :meth:`open`).
    """

    def __init__(self, store: Engine, *, create: bool = True) -> None:
        self.store = store
        database = store.url.database if store.dialect.name == "sqlite" else None
        on_file = bool(database and database != ":memory:")
        self.path: Path | None = inbox_path(database) if on_file else None  # type: ignore[arg-type]
        self.store_path: Path | None = Path(database) if on_file else None  # type: ignore[arg-type]
        self.create = create
        self.identity: str | None = None  # of the SQLite inbox file, see META
        self._opened: tuple[int, int] | None = None  # (st_dev, st_ino) of the file at open
        self._store_opened = _identity(self.store_path) if self.store_path else None
        self.watermark = 0  # the store's watermark as last read (see refresh_watermark)
        self._forgotten = 0  # rows up to this id are deleted already
        self._forgetting = 0  # ... once the transaction in progress commits
        self.failure: tuple[datetime, str] | None = None  # the last failed write
        self.written: datetime | None = None  # the last successful write
        self._applied = threading.Condition()
        self.engine: Engine = store
        self.reader: Engine = store
        self.open()

    def open(self) -> None:
        """(Re)open the SQLite inbox file; a new file gets an identity, and ids continuing
        above the store's watermark. The store records the identity; a different one
        than it knew means the old file is gone (see :func:`api.progress.claim`).
        Raises :class:`InboxUnavailable` when the file is missing and ``create`` is off."""
        if self.path is None:
            return
        if not self.create and not self.path.exists():
            raise InboxUnavailable(f"{self.path}: the inbox file does not exist (yet)")
        engine = make_engine(f"sqlite:///{self.path}", immediate=True)
        event.listen(engine, "connect", _no_checkpoint_on_commit)
        if self.create:
            INBOX.create(engine, checkfirst=True)
            META.create(engine, checkfirst=True)
            with engine.begin() as conn:
                identity = conn.execute(select(META.c.identity)).scalar()
                if identity is None:
                    identity = uuid.uuid4().hex
                    created = datetime.now(UTC)
                    conn.execute(insert(META).values(identity=identity, created_at=created))
                    top = max(progress.read(self.store).watermark, self._newest(conn) or 0)
                    conn.execute(text("DELETE FROM sqlite_sequence WHERE name = 'inbox'"))
                    conn.execute(
                        text("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox', :top)"),
                        {"top": top},
                    )
        else:
            with engine.connect() as conn:
                identity = conn.execute(select(META.c.identity)).scalar()
        self.engine = engine
        # reads begin deferred: they never take the write lock the webhook commits with
        self.reader = make_engine(f"sqlite:///{self.path}")
        self.identity = identity
        self._opened = _identity(self.path)
        self._forgotten = self._forgetting = 0
        if self.create and identity is not None:
            progress.claim(self.store, identity)

    def _readable(self) -> None:
        """Raise :class:`InboxUnavailable` when the SQLite inbox file is missing (reading
        it would create an empty one at its path)."""
        if self.path is not None and not self.path.exists():
            raise InboxUnavailable(f"{self.path}: the inbox file is missing")

    @staticmethod
    def _newest(conn: Connection) -> int | None:
        return conn.execute(select(func.max(INBOX.c.id))).scalar()

    @property
    def shared(self) -> bool:
        """Whether the inbox is a table of the store (PostgreSQL), not a file of its own."""
        return self.engine is self.store

    def dispose(self) -> None:
        """Close the inbox's own connections (the store's engine is its owner's)."""
        if not self.shared:
            self.engine.dispose()
            self.reader.dispose()

    def reopen(self) -> None:
        """Close the file and open the one now at its path (a new one if it is missing)."""
        self.dispose()
        self.open()

    def lost_file(self) -> str | None:
        """What is wrong when the SQLite inbox or store file that this process opened is
        missing or was replaced at its path (checked before acknowledging and in
        ``/health``); None when both are the files opened."""
        for name, path, opened in (
            ("inbox", self.path, self._opened),
            ("store", self.store_path, self._store_opened),
        ):
            if path is None:
                continue
            now = _identity(path)
            if now is None:
                return f"{path}: the {name} file is missing"
            if now != opened:
                return f"{path}: the {name} file was replaced since the service opened it"
        return None

    # -- writing (the webhook's group commit)

    def keep(self, db: Session, deliveries: Sequence[tuple[bytes, str | None]]) -> None:
        """Add deliveries ``(body, reason)`` in the session's transaction (no commit);
        ``reason`` set: a payload that cannot be applied (it becomes a dead letter).
        SQLite: also deletes rows the applier has applied (at most
        :data:`FORGET_AT_ONCE`); PostgreSQL: notifies the applier."""
        now = datetime.now(UTC)
        conn = db.connection()
        conn.execute(
            insert(INBOX),
            [{"received_at": now, "reason": reason, "body": body} for body, reason in deliveries],
        )
        if self.shared:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
            return
        mark = self.watermark
        if mark > self._forgotten:
            done = conn.execute(
                delete(INBOX).where(
                    INBOX.c.id.in_(
                        select(INBOX.c.id)
                        .where(INBOX.c.id <= mark)
                        .order_by(INBOX.c.id)
                        .limit(FORGET_AT_ONCE)
                    )
                )
            )
            if done.rowcount < FORGET_AT_ONCE:  # all of them: none left up to the mark
                self._forgetting = mark

    def kept(self) -> None:
        """After a commit of :meth:`keep`: remember it worked (``/health``)."""
        self.written = datetime.now(UTC)
        self._forgotten = max(self._forgotten, self._forgetting)

    def failed(self, exc: BaseException) -> None:
        """After a failed write of :meth:`keep`: remember it (``/health``)."""
        # the driver's message only: SQLAlchemy's adds the statement and its parameters
        # (webhook bodies), and /health answers without a key
        cause = getattr(exc, "orig", None) or exc
        self.failure = (datetime.now(UTC), f"{type(cause).__name__}: {cause}"[:300])

    def checkpoint(self) -> None:
        """SQLite: copy the inbox's write-ahead log into its file without blocking writers
        (PASSIVE: it never waits for a reader or a writer)."""
        if self.path is None:
            return
        raw = self.engine.raw_connection()  # the driver's own: no transaction is begun
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        except sqlite3.Error as exc:  # a checkpoint left for next time loses nothing
            log.debug("inbox checkpoint: %s", exc)
        finally:
            raw.close()

    # -- reading (the applier)

    def take(self, limit: int, after: int = 0) -> list[tuple[int, str | None, bytes]]:
        """The oldest ``limit`` deliveries (id, reason, body) above id ``after``.

        PostgreSQL: ``after`` is not used. Its ids come from a sequence and several web
        workers commit concurrently, so a row can become visible after a higher id was
        applied (the watermark would skip it); there, applied rows are deleted in the
        applying transaction, so every row left waits, whatever its id."""
        if self.shared:
            after = 0
        self._readable()
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(INBOX.c.id, INBOX.c.reason, INBOX.c.body)
                .where(INBOX.c.id > after)
                .order_by(INBOX.c.id)
                .limit(limit)
            ).all()
        return [(int(i), reason, bytes(body)) for i, reason, body in rows]

    def forget(self, conn: Connection, ids: Sequence[int]) -> None:
        """PostgreSQL: remove applied deliveries (in the applier's transaction)."""
        conn.execute(
            delete(INBOX).where(INBOX.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": list(ids)},
        )

    def notify_applied(self) -> None:
        """Wake readers of this process waiting in :meth:`wait_applied`."""
        with self._applied:
            self._applied.notify_all()

    # -- what is pending

    def refresh_watermark(self) -> int:
        """Read the store's watermark (the highest inbox id applied) and keep it."""
        self.watermark = max(self.watermark, progress.read(self.store).watermark)
        return self.watermark

    def newest(self) -> int | None:
        """The id of the newest delivery kept, or None when none waits."""
        self._readable()
        with self.reader.connect() as conn:
            return self._newest(conn)

    def pending(self, upto: int | None = None) -> int:
        """How many deliveries wait to be applied (those up to id ``upto``)."""
        return self.lag(upto).pending

    def lag(self, upto: int | None = None) -> Lag:
        """How many deliveries wait to be applied (those up to id ``upto``) and the age of
        the oldest of them."""
        # PostgreSQL: every row left waits (see take); SQLite: the rows above the watermark
        mark = 0 if self.shared else self.refresh_watermark()
        query = select(func.count(), func.min(INBOX.c.received_at)).where(INBOX.c.id > mark)
        if upto is not None:
            query = query.where(INBOX.c.id <= upto)
        self._readable()
        with self.reader.connect() as conn:
            count, oldest = conn.execute(query).one()
        if not count:
            return Lag()
        if isinstance(oldest, str):  # SQLite hands back what the reader engine stored
            oldest = datetime.fromisoformat(oldest)
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return Lag(int(count), max((datetime.now(UTC) - oldest).total_seconds(), 0.0))

    def wait_applied(self, timeout: float = 2.0) -> int:
        """Wait until every delivery kept before this call is applied; at most ``timeout``
        seconds. Returns how many of them still wait (0: caught up)."""
        target = self.newest()
        if target is None:
            return 0
        deadline = time.monotonic() + timeout
        pause = MIN_POLL
        while True:
            if self.shared:  # PostgreSQL: applied rows are gone (see take)
                if self.pending(target) == 0:
                    return 0
            elif self.refresh_watermark() >= target:
                return 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.pending(target)
            with self._applied:  # woken at once by an applier of this process
                self._applied.wait(min(pause, remaining))
            pause = min(pause * 2, MAX_POLL)


def service_taxonomy(settings: Settings) -> Taxonomy:
    """The taxonomy the service decodes events with (``taxonomy`` of the settings)."""
    return load_taxonomy(
        settings.path(settings.taxonomy) if settings.taxonomy else None,
        extension=settings.taxonomy_extension,
    )


def settle_heap() -> None:
    """Collect, then exempt everything alive now (modules, the app, its engines) from
    later garbage collections. A full collection otherwise walks that whole heap: in the
    web worker it took 170 ms, and every webhook arriving meanwhile waited for it. (The
    service calls this once started, the applier's own process too.)"""
    gc.collect()
    gc.freeze()
