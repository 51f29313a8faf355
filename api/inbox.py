"""The inbox: every webhook delivery is kept durably before it is acknowledged, and one
applier applies what the inbox holds to the store, many events per transaction.

Label Studio waits for the webhook inside the annotator's save (1 s timeout, no retry), so
the answer must come fast and must mean "this event will be counted". Acknowledging an
event therefore costs one small committed row (:class:`Inbox`, written by the webhook's
group commit, :mod:`api.ingest`); applying it (its judgement rows, the agreement sums of
the units it touches) is the applier's work, off the request path, in batches of up to
``batch`` events (:class:`Applier`).

Where the inbox lives:

- PostgreSQL: the ``inbox`` table of the store. The applier deletes the rows it applied in
  the same transaction that applies them, so each event is applied exactly once.
- SQLite: a file of its own beside the store (``annotate.db`` -> ``annotate.inbox.db``),
  so that keeping an event never waits for the store's write lock while the applier holds
  it. Rows are deleted after the store's commit; a crash in between applies those events a
  second time, which changes nothing: the store is idempotent and order-safe (a repeated
  delivery is "not newer", a deletion is remembered), the same property that makes Label
  Studio's redeliveries and the reconciling pull safe.

One applier works at a time: service workers and their appliers elect one with a lock (an
advisory lock on PostgreSQL, a file lock on SQLite); the others wait, ready to take over.
Correctness does not depend on the election (two appliers would apply some events twice,
harmlessly); it saves the work.

Reads are consistent with what was acknowledged: :meth:`Inbox.wait_applied` waits until
every event kept before the call is applied (the read endpoints call it first), so a
client that got its 200 and then asks for agreement sees its event counted.

Run the applier in a process of its own with ``python -m api.inbox`` (the service does
this when started by uvicorn, see ``api.app``; it then uses its own core, not the web
worker's), or in a thread with :meth:`Applier.start`.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, event, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from annotate.config import Settings, load_settings, with_local_secrets
from api import privacy, store
from api.db import make_engine
from api.models import DeadLetter, InboxRow
from api.verify import Verify, verifier
from schemas.taxonomy import Taxonomy, load_taxonomy

try:  # orjson parses webhook bodies several times faster; the standard library also works
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    from json import loads as _loads

log = logging.getLogger("improv_annotate.inbox")

INBOX = InboxRow.__table__  # type: ignore[attr-defined]
MAX_BODY = 2 * 1024 * 1024  # characters of a body kept in a dead letter
ATTEMPTS = 4  # tries of one transaction on a deadlock, a conflict or a locked database
LEADER_KEY = 72702  # PostgreSQL advisory lock of the applier
MIN_POLL, MAX_POLL = 0.001, 0.02  # seconds between looks at an empty inbox
NICENESS = 10  # scheduling priority of the applier's own process, below the web workers


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
    the applier checkpoints the inbox instead (:meth:`Inbox.checkpoint`). The limit left
    here only bounds the log if no applier runs."""
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cursor.close()


BACKSTOP_PAGES = 50_000  # about 200 MB of log before a commit checkpoints by itself


class Inbox:
    """Where acknowledged webhook deliveries wait to be applied.

    Parameters
    ----------
    store : Engine
        The engine that applies events to the store (on SQLite one whose transactions
        begin IMMEDIATE, see ``api.db.make_engine``).
    """

    def __init__(self, store: Engine) -> None:
        self.store = store
        database = store.url.database if store.dialect.name == "sqlite" else None
        if database and database != ":memory:":
            self.path: Path | None = inbox_path(database)
            self.engine = make_engine(f"sqlite:///{self.path}", immediate=True)
            event.listen(self.engine, "connect", _no_checkpoint_on_commit)
            INBOX.create(self.engine, checkfirst=True)
            # reads begin deferred: they never take the write lock the webhook commits with
            self.reader = make_engine(f"sqlite:///{self.path}")
        else:
            self.path = None
            self.engine = store
            self.reader = store
        self._applied = threading.Condition()

    @property
    def shared(self) -> bool:
        """Whether the inbox is a table of the store (PostgreSQL), not a file of its own."""
        return self.engine is self.store

    def dispose(self) -> None:
        """Close the inbox's own connections (the store's engine is its owner's)."""
        if not self.shared:
            self.engine.dispose()
            self.reader.dispose()

    # -- writing (the webhook's group commit)

    def keep(self, db: Session, deliveries: Sequence[tuple[bytes, str | None]]) -> None:
        """Add deliveries ``(body, reason)`` in the session's transaction (no commit);
        ``reason`` set: a payload that cannot be applied (it becomes a dead letter)."""
        now = datetime.now(UTC)
        db.connection().execute(
            insert(INBOX),
            [{"received_at": now, "reason": reason, "body": body} for body, reason in deliveries],
        )

    # -- reading and removing (the applier)

    def take(self, limit: int) -> list[tuple[int, str | None, bytes]]:
        """The oldest ``limit`` deliveries (id, reason, body), left in the inbox."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(INBOX.c.id, INBOX.c.reason, INBOX.c.body).order_by(INBOX.c.id).limit(limit)
            ).all()
        return [(int(i), reason, bytes(body)) for i, reason, body in rows]

    def forget(self, conn: Connection, ids: Sequence[int]) -> None:
        """Remove applied deliveries (in the connection's transaction)."""
        conn.execute(
            delete(INBOX).where(INBOX.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": list(ids)},
        )

    def checkpoint(self) -> None:
        """SQLite: copy the inbox's write-ahead log into its file without blocking writers
        (the applier does this after each batch, so that keeping an event never does)."""
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

    def notify_applied(self) -> None:
        """Wake readers of this process waiting in :meth:`wait_applied`."""
        with self._applied:
            self._applied.notify_all()

    # -- what is pending

    def newest(self) -> int | None:
        """The id of the newest delivery kept, or None when the inbox is empty."""
        with self.reader.connect() as conn:
            return conn.execute(select(func.max(INBOX.c.id))).scalar()

    def pending(self, upto: int | None = None) -> int:
        """How many deliveries wait to be applied (those up to id ``upto``)."""
        query = select(func.count()).select_from(INBOX)
        if upto is not None:
            query = query.where(INBOX.c.id <= upto)
        with self.reader.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def wait_applied(self, timeout: float = 10.0) -> int:
        """Wait until every delivery kept before this call is applied; at most ``timeout``
        seconds. Returns how many of them still wait (0: caught up)."""
        target = self.newest()
        if target is None:
            return 0
        deadline = time.monotonic() + timeout
        pause = MIN_POLL
        while True:
            left = self.pending(target)
            remaining = deadline - time.monotonic()
            if left == 0 or remaining <= 0:
                return left
            with self._applied:  # woken at once by an applier of this process
                self._applied.wait(min(pause, remaining))
            pause = min(pause * 2, MAX_POLL)


@dataclass
class Applied:
    """What an applier has done so far (for ``GET /health`` and benchmarks)."""

    events: int = 0
    transactions: int = 0
    dead_letters: int = 0


class _Leadership:
    """The lock that makes one applier work at a time (see the module's docstring)."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._file: Any = None
        self._conn: Connection | None = None

    def hold(self) -> bool:
        """Whether this applier leads (taking the lock when it is free)."""
        if self._file is not None or self._conn is not None:
            return True
        if self.inbox.path is not None:
            handle = open(self.inbox.path.with_suffix(".lock"), "a+b")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._file = handle
            return True
        if self.inbox.store.dialect.name != "postgresql":
            return True  # an in-memory store: one process only
        conn = self.inbox.store.connect()
        try:
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({LEADER_KEY})").scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        """Give the lock up (another applier may take it)."""
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None
        if self._conn is not None:
            try:
                self._conn.invalidate()  # the session ends, and with it the advisory lock
            finally:
                self._conn = None


class Applier:
    """Applies the inbox's deliveries to the store, oldest first, up to ``batch`` events
    per transaction.

    Parameters
    ----------
    inbox : Inbox
        The inbox (its ``store`` engine is the one written to).
    taxonomy : Taxonomy
        The service's taxonomy (events are decoded with it, as the webhook checked them).
    batch : int
        At most this many deliveries per transaction.
    verify : callable, optional
        Verified mode (:mod:`api.verify`): each batch's events are replaced by what Label
        Studio holds before they are applied; when Label Studio cannot be asked, ``step``
        raises and the batch stays in the inbox (``run`` retries with backoff).

    Example
    -------
    ``applier = Applier(inbox, taxonomy); applier.start()`` runs it in a thread;
    ``applier.drain()`` applies everything kept so far, in the calling thread.
    """

    def __init__(
        self, inbox: Inbox, taxonomy: Taxonomy, *, batch: int = 128, verify: Verify | None = None
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch: expected at least 1, got {batch}")
        self.inbox = inbox
        self.taxonomy = taxonomy
        self.batch = batch
        self.verify = verify
        self.done = Applied()
        self._lead = _Leadership(inbox)
        self._statistics = _Statistics(inbox.store)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running

    def start(self) -> None:
        """Run in a thread until :meth:`stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="applier", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """End the thread, after the transaction in progress."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def wake(self) -> None:
        """Look at the inbox now (the group commit calls this after each commit)."""
        self._wake.set()

    def run(self, alive: Callable[[], bool] = lambda: True) -> None:
        """Apply deliveries as they come until :meth:`stop` (or ``alive()`` is false)."""
        pause, backoff = MIN_POLL, 0.1
        try:
            while not self._stop.is_set() and alive():
                try:
                    if not self._lead.hold():
                        self._stop.wait(0.5)  # another applier leads; ready to take over
                        continue
                    taken = self.step()
                except Exception as exc:  # the store is down, say: keep everything, retry
                    log.warning("applier: %s: %s; trying again", type(exc).__name__, exc)
                    self._lead.release()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.1
                if taken:
                    pause = MIN_POLL
                    continue
                self._wake.wait(pause)
                self._wake.clear()
                pause = min(pause * 2, MAX_POLL)
        finally:
            self._lead.release()

    def drain(self) -> int:
        """Apply everything the inbox holds now, in this thread; how many deliveries."""
        total = 0
        while taken := self.step():
            total += taken
        return total

    # -- one transaction

    def step(self) -> int:
        """Apply the oldest deliveries (at most ``batch``) in one transaction; returns how
        many were taken (0: the inbox is empty). A batch the store refuses is applied again
        one delivery at a time, so one event that cannot be stored becomes a dead letter
        alone; when the store cannot be reached, the error is raised and nothing is lost."""
        rows = self.inbox.take(self.batch)
        if not rows:
            return 0
        jobs = [self._job(*row) for row in rows]
        if self.verify is not None:  # verified mode: apply what Label Studio holds
            checked = self.verify([job.event for job in jobs])  # raises: the batch waits
            jobs = [_verified(job, got) for job, got in zip(jobs, checked, strict=True)]
        try:
            self._commit(jobs)
        except Exception as exc:
            if unavailable(exc) and not retryable(exc):
                raise
            log.warning(
                "a batch of %d events failed (%s); applying them one by one", len(jobs), exc
            )
            for job in jobs:
                try:
                    self._commit([job])
                except Exception as one:
                    if unavailable(one) and not retryable(one):
                        raise
                    reason = f"not applied: {type(one).__name__}: {one}"
                    self._commit([_Job(job.id, None, reason, job.body)])
        self.inbox.notify_applied()
        return len(rows)

    def _job(self, inbox_id: int, reason: str | None, body: bytes) -> _Job:
        if reason is not None:
            return _Job(inbox_id, None, reason, body)
        try:
            event = store.parse_event(_loads(body), self.taxonomy)
        except (ValueError, RecursionError) as exc:  # e.g. the taxonomy changed meanwhile
            return _Job(inbox_id, None, f"not applied: {exc}", body)
        return _Job(inbox_id, event, "", body)

    def _commit(self, jobs: Sequence[_Job]) -> None:
        events = [job.event for job in jobs if job.event is not None]
        letters = [letter(job.reason, job.body) for job in jobs if job.event is None]
        ids = [job.id for job in jobs]

        def work(db: Session) -> int:
            applied = store.apply_events(db, events)
            if letters:
                db.connection().execute(insert(DeadLetter.__table__), letters)  # type: ignore[attr-defined]
            if self.inbox.shared:  # the same transaction: applied exactly once
                self.inbox.forget(db.connection(), ids)
            return sum(a.stored for a in applied)

        stored = transaction(self.inbox.store, work)
        self._statistics.grew(stored)
        if not self.inbox.shared:  # after the store's commit (see the module's docstring)
            with self.inbox.engine.begin() as conn:
                self.inbox.forget(conn, ids)
            self.inbox.checkpoint()
        self.done.events += len(events)
        self.done.transactions += 1
        self.done.dead_letters += len(letters)


class _Statistics:
    """Keeps PostgreSQL's statistics of the judgement table up to date while it grows.

    The applier inserts up to 24,000 judgements a second, far faster than autovacuum
    analyses (it looks once a minute, and then only past 10% growth): with statistics of
    a table 100 times smaller, PostgreSQL read the whole table to find a batch's units (100
    ms a batch instead of 15 ms). The applier therefore analyses the table once
    it has added half its size since the last time (at least ``floor`` rows): a planner
    that knows the table's size within a factor of two uses its indexes. An analysis
    samples a fixed number of rows, about 0.1 s whatever the table's size.
    """

    def __init__(self, engine: Engine, floor: int = 50_000) -> None:
        self.engine = engine
        self.on = engine.dialect.name == "postgresql"
        self.floor = floor
        self.added = 0
        self.size = 0  # judgement rows at the last analysis
        self.analysed = 0  # analyses run (benchmarks, tests)

    def grew(self, rows: int) -> None:
        """Count ``rows`` judgements added; analyse when they reach the threshold."""
        if not self.on:
            return
        self.added += rows
        if self.added < max(self.floor, self.size // 2):
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("ANALYZE judgement")
            reltuples = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'judgement'"
            ).scalar()
        self.size = max(int(reltuples or 0), 0)
        self.added = 0
        self.analysed += 1


@dataclass(slots=True)
class _Job:
    id: int
    event: store.Event | None
    reason: str
    body: bytes


def _verified(job: _Job, got: store.Event | str | None) -> _Job:
    """``job`` with the event Label Studio confirmed, or as a dead letter with the reason."""
    if isinstance(got, str):
        return _Job(job.id, None, got, job.body)
    return _Job(job.id, got, job.reason, job.body)


# ---------------------------------------------------------------------- its own process


def service_taxonomy(settings: Settings) -> Taxonomy:
    """The taxonomy the service decodes events with (``taxonomy`` of the settings)."""
    return load_taxonomy(
        settings.path(settings.taxonomy) if settings.taxonomy else None,
        extension=settings.taxonomy_extension,
    )


def spawn() -> Any:
    """Start ``python -m api.inbox`` for this process (it stops when this process ends)."""
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "api.inbox", "--parent", str(os.getpid())],
        stdin=subprocess.DEVNULL,
    )


def settle_heap() -> None:
    """Collect, then exempt everything alive now (modules, the app, its engines) from
    later garbage collections. A full collection otherwise walks that whole heap: in the
    web worker it took 170 ms, and every webhook arriving meanwhile waited for it. (The
    service calls this once started, the applier's own process too.)"""
    gc.collect()
    gc.freeze()


def _yield_cores() -> None:
    """Run this process only on what the web workers leave of the cores: the idle
    scheduling class where the system has it (a waking web worker then takes the core at
    once), a lower priority elsewhere."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(NICENESS)


def main(argv: list[str] | None = None) -> int:
    """The applier as a process of its own, configured as the service is (config file and
    environment); it ends on SIGTERM or when its parent process is gone."""
    parser = argparse.ArgumentParser(description="Apply the inbox's webhook deliveries.")
    parser.add_argument("--parent", type=int, default=0, help="end when this process ends")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    # the webhook answers Label Studio while the annotator waits; applying can wait a little:
    # the web workers get the cores first, the applier takes what they leave
    _yield_cores()
    settings = with_local_secrets(load_settings())  # the Label Studio token of verified mode
    privacy.use_salt(privacy.salt_of(settings))
    engine = make_engine(settings.database_url, immediate=True)
    inbox = Inbox(engine)
    taxonomy = service_taxonomy(settings)
    applier = Applier(inbox, taxonomy, verify=verifier(settings, taxonomy, engine))
    settle_heap()
    signal.signal(signal.SIGTERM, lambda *_: applier.stop(timeout=0))
    signal.signal(signal.SIGINT, lambda *_: applier.stop(timeout=0))

    def alive() -> bool:
        return not args.parent or os.getppid() == args.parent

    try:
        applier.run(alive)
    finally:
        inbox.dispose()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
