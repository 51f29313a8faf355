"""The periodic pull's full-pull timer, kept in the store (SQLite and PostgreSQL) so that
every service process shares it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy.engine import Engine
from sqlmodel import Session

from annotate.config import Settings
from api import sync
from api.models import SyncState


def _state(engine: Engine, every: float) -> SimpleNamespace:
    settings = Settings().model_copy(
        update={"service": Settings().service.model_copy(update={"full_pull_seconds": every})}
    )
    return SimpleNamespace(settings=settings, engine=engine, writer=engine)


def test_a_project_is_pulled_in_full_once_its_last_full_pull_is_old(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as db:
        db.add(SyncState(project_id=1, last_full_pull=now - timedelta(hours=2)))
        db.add(SyncState(project_id=2, last_full_pull=now - timedelta(minutes=5)))
        db.add(SyncState(project_id=3))  # checked, never pulled in full
        db.commit()
    assert sync._full_pull_due(_state(engine, 3600)) == {1, 3}
    assert sync._full_pull_due(_state(engine, 60)) == {1, 2, 3}
    assert sync._full_pull_due(_state(engine, 0)) == set()  # off
