"""The applier: applies the inbox's deliveries to the store, many events per transaction
(see :mod:`api.inbox` for the inbox, :mod:`api.progress` for the watermark it records).

One applier works at a time: service workers and their appliers elect one with a lock (an
advisory lock on PostgreSQL, a file lock on SQLite); the others wait, ready to take over.
The leader records a heartbeat in the store every :data:`HEARTBEAT` seconds, and sleeps
when there is nothing to apply until a web worker wakes it (:mod:`api.doorbell`), looking
at the inbox every :data:`api.doorbell.SAFETY_POLL` seconds anyway.

Run it in a process of its own with ``python -m api.applier`` (the service does this and
replaces it when it dies, see :mod:`api.supervise`), or in a thread with
:meth:`Applier.start`.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from annotate.config import load_settings, with_local_secrets
from api import privacy, progress, store
from api.adjudication_routes import adjudicator_of
from api.db import make_engine
from api.doorbell import SAFETY_POLL, Listener
from api.inbox import (
    MAX_POLL,
    MIN_POLL,
    Inbox,
    InboxUnavailable,
    letter,
    retryable,
    service_taxonomy,
    settle_heap,
    transaction,
    unavailable,
)
from api.models import DeadLetter
from api.overlap_keeper import OverlapKeeper, keeper_of
from api.verify import Verify, verifier
from schemas.taxonomy import Taxonomy

try:  # orjson parses webhook bodies several times faster; the standard library also works
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    from json import loads as _loads

log = logging.getLogger("improv_annotate.applier")
LEADER_KEY = 72702  # PostgreSQL advisory lock of the applier
NICENESS = 10  # scheduling priority of the applier's own process, below the web workers
HEARTBEAT = 1.0  # seconds between the leader's reports in the store when it is idle


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
    keeper : OverlapKeeper, optional
        Adaptive overlap (:mod:`api.overlap_keeper`): each batch's tasks are decided in the
        batch's transaction, and the leading applier sends Label Studio the new overlaps
        after it (failures are kept and retried; they never hold up applying).
    adjudicator : AutoAdjudicator, optional
        ``adjudication.auto`` (:mod:`api.adjudication_routes`): the leading applier sends
        settled clips below threshold to the adjudication project now and then.

    Example
    -------
    ``applier = Applier(inbox, taxonomy); applier.start()`` runs it in a thread;
    ``applier.drain()`` applies everything kept so far, in the calling thread.
    """

    def __init__(
        self,
        inbox: Inbox,
        taxonomy: Taxonomy,
        *,
        batch: int = 128,
        listen: bool = False,
        poll_only: bool = False,
        verify: Verify | None = None,
        keeper: OverlapKeeper | None = None,
        adjudicator: Any | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch: expected at least 1, got {batch}")
        self.inbox = inbox
        self.taxonomy = taxonomy
        self.batch = batch
        self.verify = verify
        self.keeper = keeper
        self.adjudicator = adjudicator  # api.adjudication_routes.AutoAdjudicator
        self._pushed = 0.0  # time.monotonic() of the keeper's last look at pending overlaps
        self.listen = listen  # a process of its own: woken by the doorbell, checks files
        self.poll_only = poll_only  # look every 1-20 ms instead (the old way; benchmarks)
        self.done = Applied()
        self.mark = 0  # the highest inbox id applied (the store's watermark, see progress)
        self._lead = _Leadership(inbox)
        self._leading = False
        self._listener: Listener | None = None
        self._beat = 0.0  # time.monotonic() of the last report in the store
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

    @property
    def running(self) -> bool:
        """Whether the thread started by :meth:`start` runs."""
        return self._thread is not None and self._thread.is_alive()

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
                    if not self._leading:
                        self._take_lead()
                    if self.listen:
                        self._check_files()
                    taken = self.step()
                    self._push(taken)
                    if self.adjudicator is not None:  # adjudication.auto: the leader sends
                        self.adjudicator.tick(self.inbox.store)
                    if not taken and time.monotonic() - self._beat >= HEARTBEAT:
                        self.heartbeat()
                except Exception as exc:  # the store is down, say: keep everything, retry
                    log.warning("applier: %s: %s; trying again", type(exc).__name__, exc)
                    self._step_down()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.1
                if taken:
                    pause = MIN_POLL
                    continue
                if self.poll_only:
                    self._wake.wait(pause)
                    pause = min(pause * 2, MAX_POLL)
                elif self._listener is not None and self._listener.listening:
                    self._listener.wait(max(0.0, HEARTBEAT - (time.monotonic() - self._beat)))
                    if not self._listener.listening:  # it broke: listen again when leading
                        self._step_down()
                else:  # a thread of the service: its writer calls wake()
                    self._wake.wait(SAFETY_POLL)
                self._wake.clear()
        finally:
            self._step_down()

    def _decide(self, db: Session, events: Sequence[store.Event]) -> None:
        """The keeper's decisions, in a savepoint of the batch's transaction: a decision
        that fails is logged and left for the task's next event, never costing the batch
        (the judgements are what must not be lost)."""
        assert self.keeper is not None
        try:
            with db.begin_nested():
                self.keeper.decide(db, events)
        except Exception as exc:
            if unavailable(exc):
                raise
            log.warning("overlap keeper: not decided: %s: %s", type(exc).__name__, exc)

    def _push(self, taken: int) -> None:
        """Let the keeper send Label Studio the overlaps it does not have yet: after a
        batch, and at least every second while idle (retries of failed sends)."""
        if self.keeper is None or (not taken and time.monotonic() - self._pushed < 1.0):
            return
        self._pushed = time.monotonic()
        try:
            with Session(self.inbox.store) as db:
                self.keeper.push(db)
        except Exception as exc:  # Label Studio or the store away: the rows wait
            log.warning("overlap keeper: %s: %s", type(exc).__name__, exc)

    def _take_lead(self) -> None:
        self.mark = progress.read(self.inbox.store).watermark
        self.inbox.watermark = max(self.inbox.watermark, self.mark)
        if self.listen and not self.poll_only:
            self._listener = Listener(self.inbox.path, self.inbox.store)
        self._leading = True
        self.heartbeat()

    def _step_down(self) -> None:
        self._lead.release()
        self._leading = False
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _check_files(self) -> None:
        """A process of its own: follow an inbox file replaced at its path (the web workers
        create the new one); stop applying when the store file is gone."""
        lost = self.inbox.lost_file()
        if lost is None:
            return
        if self.inbox.store_path is not None and str(self.inbox.store_path) in lost:
            raise InboxUnavailable(f"{lost}; not applying into a file that is gone")
        log.warning("%s; opening the inbox file now at that path", lost)
        self.inbox.dispose()
        self.inbox.open()  # raises while the web workers have not created it yet
        self._step_down()  # the lock file and the doorbell follow the new file

    def heartbeat(self) -> None:
        """Report in the store that this applier leads and is alive."""
        newest = self.inbox.newest()
        caught_up = newest is None if self.inbox.shared else (newest or 0) <= self.mark
        transaction(
            self.inbox.store,
            lambda db: progress.record(
                db.connection(), caught_up=caught_up, identity=self.inbox.identity
            ),
        )
        self._beat = time.monotonic()

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
        rows = self.inbox.take(self.batch, after=self.mark)
        if not rows:
            return 0
        jobs = [self._job(*row) for row in rows]
        if self.verify is not None:  # verified mode: apply what Label Studio holds
            checked = self.verify([job.event for job in jobs])  # raises: the batch waits
            jobs = [_verified(job, got) for job, got in zip(jobs, checked, strict=True)]
        caught_up = len(rows) < self.batch
        try:
            self._commit(jobs, caught_up)
        except (progress.Replaced, InboxUnavailable):
            raise
        except Exception as exc:
            if unavailable(exc) and not retryable(exc):
                raise
            log.warning(
                "a batch of %d events failed (%s); applying them one by one", len(jobs), exc
            )
            for job in jobs:
                try:
                    self._commit([job], caught_up)
                except (progress.Replaced, InboxUnavailable):
                    raise
                except Exception as one:
                    if unavailable(one) and not retryable(one):
                        raise
                    reason = f"not applied: {type(one).__name__}: {one}"
                    self._commit([_Job(job.id, None, reason, job.body)], caught_up)
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

    def _commit(self, jobs: Sequence[_Job], caught_up: bool = False) -> None:
        events = [job.event for job in jobs if job.event is not None]
        letters = [letter(job.reason, job.body) for job in jobs if job.event is None]
        ids = [job.id for job in jobs]
        upto = max(ids)

        def work(db: Session) -> int:
            conn: Connection = db.connection()
            # first: the watermark row, which also says whether the inbox is still the one
            # the store counts in (raises progress.Replaced otherwise)
            progress.record(conn, upto=upto, caught_up=caught_up, identity=self.inbox.identity)
            applied = store.apply_events(db, events, self.taxonomy)
            if self.keeper is not None:
                self._decide(db, events)
            if letters:
                conn.execute(insert(DeadLetter.__table__), letters)  # type: ignore[attr-defined]
            if self.inbox.shared:  # the same transaction: applied exactly once
                self.inbox.forget(conn, ids)
            return sum(a.stored for a in applied)

        stored = transaction(self.inbox.store, work)
        self.mark = max(self.mark, upto)
        self.inbox.watermark = max(self.inbox.watermark, self.mark)
        self._beat = time.monotonic()
        self._statistics.grew(stored)
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


def spawn() -> Any:
    """Start ``python -m api.applier`` for this process (it stops when this process ends)."""
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "api.applier", "--parent", str(os.getpid())],
        stdin=subprocess.DEVNULL,
    )


def _yield_cores() -> None:
    """Run this process only on what the web workers leave of the cores: the idle
    scheduling class where the system has it (a waking web worker then takes the core at
    once), a lower priority elsewhere."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(NICENESS)


def _open_inbox(engine: Engine, stop: threading.Event) -> Inbox | None:
    """The inbox, once its file exists (the web workers create it)."""
    while not stop.is_set():
        try:
            return Inbox(engine, create=False)
        except (InboxUnavailable, OSError) as exc:
            log.warning("%s; waiting for it", exc)
            stop.wait(0.5)
    return None


def main(argv: list[str] | None = None) -> int:
    """The applier as a process of its own, configured as the service is (config file and
    environment); it ends on SIGTERM or when its parent process is gone."""
    parser = argparse.ArgumentParser(description="Apply the inbox's webhook deliveries.")
    parser.add_argument("--parent", type=int, default=0, help="end when this process ends")
    parser.add_argument(
        "--poll-only",
        action="store_true",
        help="look at the inbox every 1-20 ms instead of waiting to be woken (for comparison)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    # the webhook answers Label Studio while the annotator waits; applying can wait a little:
    # the web workers get the cores first, the applier takes what they leave
    _yield_cores()
    settings = with_local_secrets(load_settings())  # the Label Studio token of verified mode
    privacy.use_salt(privacy.salt_of(settings))
    engine = make_engine(settings.database_url, immediate=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    inbox = _open_inbox(engine, stop)
    if inbox is None:
        return 0
    taxonomy = service_taxonomy(settings)
    applier = Applier(
        inbox,
        taxonomy,
        listen=True,
        poll_only=args.poll_only,
        verify=verifier(settings, taxonomy, engine),
        keeper=keeper_of(settings),
        adjudicator=adjudicator_of(settings, taxonomy),
    )
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
