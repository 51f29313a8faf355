"""Each web worker's supervisor: keeps an applier running, and says in ``/health`` what is
wrong with the path from webhook to store.

A thread of every web worker looks, every :data:`EVERY` seconds:

- at the applier process it started (``python -m api.applier``): when it has ended (killed,
  crashed), a new one is started at once. With several web workers each has its applier,
  and their lock elects the one that works (see :mod:`api.applier`), so whichever dies,
  another applier takes over within a second or two.
- at the store's record of the applier (:mod:`api.progress`): the watermark (the web
  worker's writer deletes the inbox rows at or below it) and the leader's heartbeat.
- at the SQLite files: an inbox file deleted or replaced at its path is reopened (a new
  one, whose ids continue above the watermark); the store records the replacement and
  from when acknowledged events may be lost, and when Label Studio is configured a full
  pull of every known project brings them back (:func:`recover`). Meanwhile webhooks
  answer 503 (``api.ingest`` checks the files before each commit).
- it checkpoints the inbox's write-ahead log (PASSIVE, never blocking a writer), so that
  neither the applier nor a webhook's commit has to.

:func:`health` turns all this into the body of ``GET /health`` and its status: 503 with
``"status": "degraded"`` and the reasons (``"starting"`` until the first applier
reports after the service started, at most that bound) when no applier has reported for longer than
``service.applier_timeout_seconds``, when events have waited longer than
``service.max_backlog_seconds``, when a file is missing or replaced, when acknowledged
events may be lost, when the data folder has less than ``service.min_free_mb`` free, or
when the last write of the inbox failed (disk full, say).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api import progress, sync
from api.applier import spawn
from api.inbox import Inbox, InboxUnavailable, Lag
from api.overlap_keeper import overlap_health
from api.sync import webhook_health

log = logging.getLogger("improv_annotate.supervise")
EVERY = 0.5  # seconds between the supervisor's looks


class Supervisor:
    """The supervising thread of one web worker (see the module's docstring).

    Parameters
    ----------
    state : Any
        The app's state (``inbox``, ``engine``, ``writer``, ``settings``, ``ingest``).
    process : bool
        Start and watch an applier process (else the applier is a thread, or none).
    """

    def __init__(self, state: Any, *, process: bool) -> None:
        self.state = state
        self.inbox: Inbox = state.inbox
        self.process = process
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started = time.monotonic()
        self.since = datetime.now(UTC)  # when this worker started
        self.pulling: threading.Thread | None = None
        self.pulled: str | None = None  # how the last recovery pull ended
        self._commits = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the applier process (if asked) and the supervising thread."""
        if self.process:
            self.child = spawn()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking, and stop the applier process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        child, self.child = self.child, None
        if child is not None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            try:
                self.tick()
            except Exception as exc:  # e.g. the store is down: look again next time
                log.warning("supervisor: %s: %s", type(exc).__name__, exc)

    def tick(self) -> None:
        """One look (see the module's docstring)."""
        child = self.child
        if child is not None and child.poll() is not None:
            log.error(
                "the applier process %d ended (exit status %s); starting a new one",
                child.pid,
                child.returncode,
            )
            self.child = spawn()
            self.restarts += 1
        lost = self.inbox.lost_file()
        if lost is not None and self.inbox.path is not None and str(self.inbox.path) in lost:
            log.error("%s; opening a new inbox", lost)
            self.inbox.reopen()  # the store records the replacement (progress.claim)
        record = progress.read(self.state.engine)
        self.inbox.watermark = max(self.inbox.watermark, record.watermark)
        mine = self.inbox.identity
        if mine and record.inbox_identity != mine and self.inbox.lost_file() is None:
            # the claim of a reopened inbox did not make it to the store (it was busy)
            progress.claim(self.inbox.store, self.inbox.identity)
        writer = self.state.ingest
        if writer.batches != self._commits:  # the writer committed since the last look
            self._commits = writer.batches
            self.inbox.checkpoint()
        self._recover_if_needed(record)

    def _recover_if_needed(self, record: progress.Progress) -> None:
        if record.lost_since is None or not can_pull(self.state):
            return
        if self.pulling is not None and self.pulling.is_alive():
            return
        if self.pulled == str(record.replaced_at):
            return  # tried for this replacement; a failed pull is retried by hand
        self.pulled = str(record.replaced_at)
        self.pulling = threading.Thread(
            target=recover, args=(self.state, record.replaced_at), name="recover", daemon=True
        )
        self.pulling.start()


def can_pull(state: Any) -> bool:
    """Whether Label Studio is configured (a token), so that lost events can be pulled."""
    return bool(state.settings.label_studio.token)


def recover(state: Any, replaced_at: datetime | None) -> None:
    """A full pull of every project the store knows (and the configured one) from Label
    Studio, after an inbox was replaced; clears the store's "may be lost" when every
    project was pulled."""
    log.error("an inbox was replaced: pulling every project from Label Studio")
    try:
        failed = []
        for project_id in sync.projects_to_pull(state):
            try:
                sync.reconcile_project(state, project_id, full=True)
            except Exception as exc:
                failed.append(f"{project_id}: {type(exc).__name__}: {exc}")
        if failed:
            log.error("the full pull after the inbox was replaced failed for %s", failed)
            return
        if progress.recovered(state.writer, replaced_at):
            log.warning("the full pull after the inbox was replaced is done")
    except Exception as exc:
        log.error("the full pull after the inbox was replaced failed: %s", exc)


def free_bytes(folder: Path) -> int | None:
    """Bytes free for this user in ``folder``'s file system (None if it cannot be read)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _data_folder(state: Any) -> Path | None:
    inbox: Inbox = state.inbox
    if inbox.path is not None:
        return inbox.path.parent
    folder = state.settings.data_path
    return folder if folder.exists() else None


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else "an unknown time"


def health(state: Any) -> tuple[int, dict[str, Any]]:
    """The status code and body of ``GET /health`` (see the module's docstring)."""
    service = state.settings.service
    inbox: Inbox = state.inbox
    supervisor: Supervisor | None = getattr(state, "supervisor", None)
    now = datetime.now(UTC)
    reasons: list[str] = []

    record = progress.read(state.engine)
    age = record.heartbeat_age(now)
    bound = service.applier_timeout_seconds
    applier = state.applier
    alive = age is not None and age <= bound
    if applier is not None:  # a thread of this process (tests, embedding)
        alive = alive or applier.running
    elif supervisor is not None and (
        record.heartbeat_at is None or record.heartbeat_at < supervisor.since
    ):
        # starting: until an applier reports after this worker started (a heartbeat
        # left by an earlier run does not count), the service is not ready
        alive = False
    starting = False
    if not alive:
        since = f"for {age:.0f} s" if age is not None else "since the store was created"
        if supervisor is not None and time.monotonic() - supervisor.started <= bound:
            since, starting = "since the service started", True
        reasons.append(f"no applier has reported {since} (bound: {bound:g} s)")

    try:
        lag: Lag | None = inbox.lag()
    except InboxUnavailable as exc:  # the file is gone: see lost_file below
        lag = None
        log.debug("health: %s", exc)
    if lag is not None and lag.oldest_age_s > service.max_backlog_seconds:
        reasons.append(
            f"{lag.pending} acknowledged events wait to be applied, the oldest for "
            f"{lag.oldest_age_s:.0f} s (bound: service.max_backlog_seconds = "
            f"{service.max_backlog_seconds:g} s)"
        )

    lost_file = inbox.lost_file()
    if lost_file is not None:
        reasons.append(f"{lost_file}; webhooks answer 503 until it is reopened")
    if record.lost_since is not None:
        if not can_pull(state):
            then = "no Label Studio is configured to pull them back from"
        elif supervisor is not None and supervisor.pulling is not None:
            alive_pull = supervisor.pulling.is_alive()
            then = "a full pull from Label Studio was started" + (
                "" if alive_pull else " and did not finish; see the service's log"
            )
        else:
            then = "a full pull from Label Studio is about to start"
        reasons.append(
            f"inbox replaced at {_when(record.replaced_at)}: events acknowledged since "
            f"{_when(record.lost_since)} may be lost; {then}"
        )

    folder = _data_folder(state)
    free = free_bytes(folder) if folder is not None else None
    floor = service.min_free_mb * 1024 * 1024
    if free is not None and free < floor:
        reasons.append(
            f"{folder}: {free / 2**20:.0f} MB free, below service.min_free_mb = "
            f"{service.min_free_mb:g} MB"
        )
    if inbox.failure is not None and (inbox.written is None or inbox.failure[0] > inbox.written):
        reasons.append(
            f"the last write of the inbox failed at {_when(inbox.failure[0])}: {inbox.failure[1]}"
        )

    overlap = None
    if state.settings.overlap.enabled:
        overlap, why = overlap_health(state.engine, service.max_backlog_seconds)
        if why is not None:
            reasons.append(why)

    webhooks, why_hooks = webhook_health(state.engine, service.reconcile_seconds)
    reasons += why_hooks

    writer = state.ingest
    body = {
        # "starting": not ready yet (until an applier reports, at most the bound)
        "status": ("starting" if starting else "degraded") if reasons else "ok",
        "reasons": reasons,
        "taxonomy": state.taxonomy.name,
        "version": state.taxonomy.version,
        # this worker process's group commit so far (deliveries per transaction)
        "ingest": {"pid": os.getpid(), "events": writer.events, "transactions": writer.batches},
        # deliveries acknowledged and not yet applied to the store
        "inbox": {
            "pending": None if lag is None else lag.pending,
            "oldest_age_s": None if lag is None else round(lag.oldest_age_s, 3),
        },
        "applier": {
            "alive": alive,
            "heartbeat_age_s": None if age is None else round(age, 3),
            "pid": record.pid,
            "host": record.host,
            "watermark": record.watermark,
            # the applier process this worker watches, and how often it was replaced
            "process": supervisor.child.pid if supervisor and supervisor.child else None,
            "restarts": supervisor.restarts if supervisor else 0,
            # this process's applier thread, when it runs one
            "thread": None
            if applier is None
            else {
                "events": applier.done.events,
                "transactions": applier.done.transactions,
                "dead_letters": applier.done.dead_letters,
            },
        },
        "disk": {
            "free_mb": None if free is None else round(free / 2**20, 1),
            "min_free_mb": service.min_free_mb,
        },
        # adaptive overlap (when enabled): decisions Label Studio does not have yet
        "overlap": overlap,
        # the service's webhook per project: checked, put back where a member changed it
        "webhooks": webhooks,
    }
    return (503 if reasons else 200), body
