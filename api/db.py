"""The store's engine: a SQLite file (WAL) by default, PostgreSQL through a database URL."""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from fastapi import Request
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from api import models  # noqa: F401  (registers the tables)


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


CACHE_KIB = 128 * 1024  # page cache of a SQLite connection, at most (grows as pages are read)


def make_engine(url: str, *, immediate: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and their folder created.

    ``immediate`` (SQLite only): every transaction begins IMMEDIATE, taking the write lock
    at once, so that read-then-write transactions of concurrent writers never interleave,
    and every commit is synced to disk (``synchronous=FULL``: an acknowledged event
    survives a power loss too, not only a crash of the process; the webhook's group commit
    shares that sync among the events committed together). Use it for the engine that
    applies events.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            conn.isolation_level = None  # transactions are begun below, not by the driver
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={'FULL' if immediate else 'NORMAL'}")
            cursor.execute("PRAGMA busy_timeout=30000")
            # SQLite caches 2 MB of pages by default: once the judgement table and its
            # indexes outgrow it, every row inserted re-reads index pages from the OS
            # (the applier's cost per event grew by half over its first 8,000 events)
            cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """The Alembic configuration of the store (migrations in ``api/migrations``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def init_db(engine: Engine) -> None:
    """Bring the store's schema to the newest migration (creating it when empty).

    On PostgreSQL an advisory lock makes service workers that start together migrate one
    after the other; on a SQLite file a lock file beside it does.
    """
    config = alembic_config(engine)
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(72701)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """On a SQLite file: an exclusive lock on ``<file>.migrate.lock`` for the block, so that
    processes that open a new store at once (two imports, a service starting) migrate one
    after the other. A deferred transaction cannot wait for another writer in WAL mode
    (SQLite answers "database is locked" at once); the lock file lives beside the database
    file, so every process that can open the store sees it. Nothing on other databases."""
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def request_session(request: Request) -> Iterator[Session]:
    """One database session per request, on the app's engine (a FastAPI dependency)."""
    with Session(request.app.state.engine) as db:
        yield db


def sessions(engine: Engine) -> Iterator[Session]:
    """Yield one database session (a FastAPI dependency)."""
    with Session(engine) as session:
        yield session


def lock(db: Session, keys: Iterable[str]) -> None:
    """Serialise writers on ``keys`` until the transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in sorted order (no deadlocks).
    SQLite: writers are serialised already (each transaction begins IMMEDIATE).
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    ordered = sorted(set(keys))
    if ordered:
        db.exec(  # type: ignore[call-overload]
            text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
            ),
            params={"keys": ordered},
        )


@contextmanager
def held_lock(engine: Engine, key: str) -> Iterator[None]:
    """Hold ``key`` for the whole block, on every machine, however often the block
    commits: on PostgreSQL a session-level advisory lock on a connection of its own (freed
    when the block ends, or when the process dies and its connection closes); on SQLite
    nothing (writers are serialised already, and callers keep two holders apart by unique
    keys). Transaction-level locks on the same key (``api.store.lock``) wait for it. (A
    pooler in transaction mode, such as PgBouncer's, cannot keep such a lock.)"""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": key})
        connection.commit()
        try:
            yield
        finally:
            try:
                freed = connection.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key}
                ).scalar_one()
                connection.commit()
            except Exception:  # the block's own error, if any, is the one to see
                freed = False
            if not freed:  # never back to the pool still holding it: closed instead
                connection.invalidate()
