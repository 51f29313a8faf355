"""Group commit for webhook events: one writer thread per process applies every event that
is waiting in one transaction, then answers each of them.

Label Studio delivers each webhook once and never retries, so an event is acknowledged only
after the transaction holding it has committed. Under load many events wait at once; the
writer applies them together (:func:`api.store.apply_events`: the touched rows read once,
the judgements inserted in one statement, the agreement sums upserted once, one commit), so
the cost of a transaction is shared. When nothing else waits, a batch is one event: no
event waits for a batch to fill.

Events reach the writer already checked (:func:`api.store.parse_event`), so a malformed
payload never joins a batch. If a batch still fails (the store refuses it), the writer
applies its events one by one, each in its own transaction, so one event that cannot be
stored does not fail the others; such an event is dead-lettered and its waiter gets the
error.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from api import store
from api.models import DeadLetter

log = logging.getLogger("improv_annotate.ingest")

MAX_BODY = 2 * 1024 * 1024  # characters of a body kept in a dead letter
ATTEMPTS = 4  # tries of one transaction on a deadlock, a conflict or a locked database


@dataclass(slots=True)
class _Job:
    """One waiter: an event to apply, or (``event`` None) a dead letter to keep."""

    event: store.Event | None
    body: bytes
    reason: str
    future: Future[Any]


_STOP = object()


def retryable(exc: Exception) -> bool:
    """Whether a failed transaction may simply be tried again: a deadlock, a serialization
    failure or a unique violation between concurrent writers (PostgreSQL), or a locked
    database (SQLite). The transaction was rolled back, so a retry is clean."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40P01", "40001", "23505"} or "database is locked" in str(exc).lower()


def _letter(reason: str, body: bytes) -> DeadLetter:
    return DeadLetter(
        received_at=datetime.now(UTC),
        reason=reason,
        body=body[:MAX_BODY].decode("utf-8", "replace"),
    )


class GroupCommit:
    """The writer of one service process.

    Parameters
    ----------
    engine : Engine
        The engine that applies events (on SQLite one whose transactions begin IMMEDIATE).
    max_batch : int
        At most this many waiting events go into one transaction.
    start : bool
        Start the writer thread on first use; with False only :meth:`start` does (what is
        queued before then is applied together).

    Example
    -------
    In an ``async`` route: ``applied = await writer.apply(store.parse_event(payload, tax),
    body)``; the call returns once the event is committed, and raises what the store
    raised otherwise (the event is then dead-lettered).
    """

    def __init__(self, engine: Engine, *, max_batch: int = 100, start: bool = True) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        self._auto = start  # start the thread on first use (else: only by start())
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self.batches = 0  # transactions committed, and the events in them (for benchmarks)
        self.events = 0

    # -- the waiters' side (any thread, or the event loop)

    def submit(self, event: store.Event, body: bytes) -> Future[store.Applied]:
        """Queue an event; the future resolves once it is committed (or has failed)."""
        return self._put(_Job(event, body, "", Future()))

    def submit_dead_letter(self, reason: str, body: bytes) -> Future[None]:
        """Queue a dead letter (a payload that cannot be applied, with the reason)."""
        return self._put(_Job(None, body, reason, Future()))

    async def apply(self, event: store.Event, body: bytes) -> store.Applied:
        """Apply an event with the others waiting; return once it is committed."""
        return await asyncio.wrap_future(self.submit(event, body))

    async def dead_letter(self, reason: str, body: bytes) -> None:
        """Keep a payload that cannot be applied; return once it is committed."""
        await asyncio.wrap_future(self.submit_dead_letter(reason, body))

    def _put(self, job: _Job) -> Future[Any]:
        if self._thread is None and self._auto:
            self.start()
        self._queue.put(job)
        return job.future

    def start(self) -> None:
        """Start the writer thread (``submit`` does this on first use)."""
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Apply what is queued, then end the writer thread."""
        with self._started:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    # -- the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                jobs.append(job)
            try:
                self._process(jobs)
            except Exception as exc:  # never leave a waiter hanging, never end the thread
                log.exception("group commit failed")
                for job in jobs:
                    _settle(job.future, error=exc)

    def _process(self, jobs: list[_Job]) -> None:
        for job in jobs:
            # a waiter that went away (cancelled) still has its event stored: it is valid
            job.future.set_running_or_notify_cancel()
        try:
            results = self._commit(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                self._failed(jobs[0], exc)
                return
            log.warning(
                "a batch of %d events failed (%s); applying them one by one", len(jobs), exc
            )
            for job in jobs:
                try:
                    (result,) = self._commit([job])
                except Exception as one:
                    self._failed(job, one)
                else:
                    _settle(job.future, result=result)
            return
        for job, result in zip(jobs, results, strict=True):
            _settle(job.future, result=result)

    def _failed(self, job: _Job, exc: Exception) -> None:
        """An event (or dead letter) that could not be stored: keep it for inspection and a
        later pull when the store lets us, and hand the error to its waiter."""
        if job.event is not None:
            reason = f"not applied: {type(exc).__name__}: {exc}"[:2000]
            try:
                self._transaction(lambda db: db.add(_letter(reason, job.body)))
            except Exception as again:
                log.warning("cannot dead-letter an event that was not applied: %s", again)
        _settle(job.future, error=exc)

    def _commit(self, jobs: Sequence[_Job]) -> list[store.Applied | None]:
        """Apply the jobs in one transaction (retried when the store says so)."""
        events = [job.event for job in jobs if job.event is not None]

        def work(db: Session) -> list[store.Applied | None]:
            applied = iter(store.apply_events(db, events))
            results: list[store.Applied | None] = []
            for job in jobs:
                if job.event is None:
                    db.add(_letter(job.reason, job.body))
                    results.append(None)
                else:
                    results.append(next(applied))
            return results

        results = self._transaction(work)
        self.batches += 1
        self.events += len(events)
        return results

    def _transaction(self, work: Callable[[Session], Any]) -> Any:
        for attempt in range(ATTEMPTS):
            with Session(self.engine) as db:
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


def _settle(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
