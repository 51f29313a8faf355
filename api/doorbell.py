"""Wake the applier when the web workers have kept new deliveries, so that an idle
applier sleeps instead of polling the inbox.

- SQLite (one machine): the leading applier binds a UNIX datagram socket in Linux's
  abstract namespace, named after the inbox file; a web worker sends it an empty datagram
  after each commit. Sending never blocks: when the applier is stopped and its queue is
  full, the datagram is dropped (the applier looks at the inbox anyway when it wakes).
- PostgreSQL: the webhook's transaction runs ``NOTIFY`` (:data:`CHANNEL`); the leading
  applier ``LISTEN``s on a connection of its own.

Either way the applier also looks every :data:`SAFETY_POLL` seconds, so a lost wake-up
costs at most that much delay.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import select
import socket
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger("improv_annotate.doorbell")
CHANNEL = "improv_inbox"
SAFETY_POLL = 1.0  # seconds: the applier looks at the inbox at least this often


def address(inbox_path: Path) -> str | None:
    """The abstract socket name of an inbox file (None where there are no abstract
    sockets: the applier then polls every :data:`SAFETY_POLL` seconds)."""
    if not sys.platform.startswith("linux"):
        return None
    digest = hashlib.sha256(str(inbox_path.resolve()).encode()).hexdigest()[:24]
    return f"\0improv-annotate-{digest}"


class Bell:
    """The web worker's side: :meth:`ring` after a commit (SQLite; on PostgreSQL the
    transaction's ``NOTIFY`` rings, see :meth:`api.inbox.Inbox.keep`)."""

    def __init__(self, inbox_path: Path | None) -> None:
        self.address = address(inbox_path) if inbox_path is not None else None
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    def ring(self) -> None:
        """Wake the leading applier; never blocks, never fails."""
        if self._sock is not None:
            with contextlib.suppress(OSError):  # no applier listens, or its queue is full
                self._sock.sendto(b"", self.address)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Listener:
    """The leading applier's side: :meth:`wait` returns when rung, or after ``timeout``."""

    def __init__(self, inbox_path: Path | None, store: Engine) -> None:
        self._sock: socket.socket | None = None
        self._pg: Any = None
        name = address(inbox_path) if inbox_path is not None else None
        if name is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                self._sock.bind(name)  # the name is freed when its holder's process ends
            except OSError as exc:
                log.warning("cannot listen for wake-ups (%s); polling instead", exc)
                self._sock.close()
                self._sock = None
            else:
                self._sock.setblocking(False)
        elif inbox_path is None and store.dialect.name == "postgresql":
            import psycopg

            url = store.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = psycopg.connect(url, autocommit=True)
            self._pg.execute(f"LISTEN {CHANNEL}")

    @property
    def listening(self) -> bool:
        """Whether wake-ups arrive (else :meth:`wait` simply sleeps)."""
        return self._sock is not None or self._pg is not None

    def fileno(self) -> int | None:
        """The descriptor to wait on (None when not listening)."""
        if self._sock is not None:
            return self._sock.fileno()
        if self._pg is not None:
            return int(self._pg.pgconn.socket)
        return None

    def drain(self) -> None:
        """Consume the wake-ups received so far."""
        if self._sock is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while True:
                    self._sock.recv(64)
        elif self._pg is not None:
            self._pg.pgconn.consume_input()
            while self._pg.pgconn.notifies() is not None:
                pass

    def wait(self, timeout: float) -> bool:
        """Wait until rung or ``timeout`` seconds pass; whether it was rung."""
        fd = self.fileno()
        if fd is None:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([fd], [], [], timeout)
        try:
            self.drain()
        except Exception as exc:  # e.g. PostgreSQL restarted: poll until listening again
            log.warning("wake-ups lost (%s: %s); polling instead", type(exc).__name__, exc)
            self.close()
        return bool(ready)

    def close(self) -> None:
        """Stop listening."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.close()
            self._pg = None
