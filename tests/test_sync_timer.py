"""The periodic pull's full-pull timer, kept in the store (SQLite and PostgreSQL) so that
every service process shares it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from annotate.config import Settings
from api import sync
from api.models import SyncState


def _state(engine: Engine, every: float) -> SimpleNamespace:
    settings = Settings().model_copy(
        update={"service": Settings().service.model_copy(update={"full_pull_seconds": every})}
    )
    return SimpleNamespace(settings=settings, engine=engine, writer=engine)


def _claims(engine: Engine) -> dict[int, datetime | None]:
    with Session(engine) as db:
        return {r.project_id: r.full_pull_claimed_at for r in db.exec(select(SyncState)).all()}


def test_a_project_is_pulled_in_full_once_its_last_full_pull_is_old(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as db:
        db.add(SyncState(project_id=1, last_full_pull=now - timedelta(hours=2)))
        db.add(SyncState(project_id=2, last_full_pull=now - timedelta(minutes=5)))
        db.add(SyncState(project_id=3))  # checked, never pulled in full
        db.commit()
    assert sync._full_pull_due(_state(engine, 0)) == set()  # off
    assert sync._full_pull_due(_state(engine, 3600)) == {1, 3}
    # claimed: another process asking now gets none of them, only what is due for it
    assert sync._full_pull_due(_state(engine, 3600)) == set()
    assert sync._full_pull_due(_state(engine, 60)) == {2}
    # a claim left by a process that died before pulling lapses after the period
    with Session(engine) as db:
        for p in (1, 3):
            row = db.get(SyncState, p)
            assert row is not None and row.full_pull_claimed_at is not None
            row.full_pull_claimed_at = now - timedelta(hours=2)
            db.add(row)
        db.commit()
    assert sync._full_pull_due(_state(engine, 3600)) == {1, 3}


def test_several_processes_claim_each_full_pull_once(engine: Engine) -> None:
    """Eight threads with a connection each ask at once: every due project is claimed by
    exactly one of them."""
    with Session(engine) as db:
        for p in range(1, 7):
            db.add(SyncState(project_id=p))
        db.commit()
    state = _state(engine, 3600)
    barrier = threading.Barrier(8)

    def ask(_: int) -> set[int]:
        barrier.wait()
        for _attempt in range(50):
            try:
                return sync._full_pull_due(state)
            except OperationalError:  # SQLite: the write lock was busy past its timeout
                time.sleep(0.05)
        raise AssertionError("never got the store")

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(8)))
    claimed = [p for g in got for p in g]
    assert sorted(claimed) == list(range(1, 7)), got
    assert all(when is not None for when in _claims(engine).values())
