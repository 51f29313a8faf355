"""Group commit for webhook deliveries: one writer thread per process keeps every delivery
that is waiting in the inbox in one transaction, then answers each of them.

Label Studio delivers each webhook once and never retries, so a delivery is acknowledged
only after the transaction holding it has committed (:class:`api.inbox.Inbox`: kept
durably, applied to the store by the applier). Under load many deliveries wait at once;
the writer keeps them together, so the cost of a transaction (on SQLite its sync to disk)
is shared. When nothing else waits, a batch is one delivery: none waits for a batch to
fill.

Deliveries reach the writer already checked (:func:`api.store.parse_event`): a malformed
payload is kept with its reason and becomes a dead letter, never an event.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from api.inbox import Inbox, InboxUnavailable, transaction

log = logging.getLogger("improv_annotate.ingest")


@dataclass(slots=True)
class _Job:
    """One waiter: a body to keep, with the reason it cannot be applied (or None)."""

    body: bytes
    reason: str | None
    future: Future[None]


_STOP = object()


class GroupCommit:
    """The writer of one service process.

    Parameters
    ----------
    inbox : Inbox
        Where deliveries are kept.
    max_batch : int
        At most this many waiting deliveries go into one transaction.
    start : bool
        Start the writer thread on first use; with False only :meth:`start` does (what is
        queued before then is kept together).
    on_commit : callable, optional
        Called after each commit (the applier of this process wakes up).

    Example
    -------
    In an ``async`` route: ``await writer.keep(body)`` returns once the body is committed
    to the inbox, and raises what the database raised otherwise.
    """

    def __init__(
        self,
        inbox: Inbox,
        *,
        max_batch: int = 200,
        start: bool = True,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, got {max_batch}")
        self.inbox = inbox
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._auto = start  # start the thread on first use (else: only by start())
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self.batches = 0  # transactions committed, and the deliveries in them (benchmarks)
        self.events = 0

    # -- the waiters' side (any thread, or the event loop)

    def submit(self, body: bytes, reason: str | None = None) -> Future[None]:
        """Queue a delivery; the future resolves once it is committed (or has failed).
        ``reason`` set: a payload that cannot be applied (kept as a dead letter)."""
        job = _Job(body, reason, Future())
        if self._thread is None and self._auto:
            self.start()
        self._queue.put(job)
        return job.future

    async def keep(self, body: bytes, reason: str | None = None) -> None:
        """Keep a delivery with the others waiting; return once it is committed."""
        await asyncio.wrap_future(self.submit(body, reason))

    def start(self) -> None:
        """Start the writer thread (``submit`` does this on first use)."""
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Keep what is queued, then end the writer thread."""
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
            self._process(jobs)

    def _process(self, jobs: list[_Job]) -> None:
        for job in jobs:
            # a waiter that went away (cancelled) still has its delivery kept: it is valid
            job.future.set_running_or_notify_cancel()
        deliveries = [(job.body, job.reason) for job in jobs]
        try:
            # never acknowledge into a file that is gone (deleted, or replaced at its path)
            lost = self.inbox.lost_file()
            if lost is not None:
                raise InboxUnavailable(f"{lost}; nothing is acknowledged until it is reopened")
            transaction(self.inbox.engine, lambda db: self.inbox.keep(db, deliveries))
        except Exception as exc:  # never leave a waiter hanging, never end the thread
            log.warning("cannot keep %d deliveries: %s: %s", len(jobs), type(exc).__name__, exc)
            if not isinstance(exc, InboxUnavailable):
                self.inbox.failed(exc)
            for job in jobs:
                _settle(job.future, error=exc)
            return
        try:
            self.inbox.kept()
        except Exception as exc:  # bookkeeping only: the deliveries are committed
            log.debug("after keeping: %s", exc)
        self.batches += 1
        self.events += len(jobs)
        if self.on_commit is not None:
            self.on_commit()
        for job in jobs:
            _settle(job.future)


def _settle(future: Future[Any], *, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(None)
