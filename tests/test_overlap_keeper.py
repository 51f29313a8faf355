"""The overlap keeper's store side and its faults, on SQLite and PostgreSQL.

Decisions are checked against the policy worked out by hand for the votes the test sends;
Label Studio away is a closed loopback port (nothing listens: connection refused), so the
PATCH fails as it does when Label Studio is down, and /health says so; a keeper whose
decision raises must not cost the batch its judgements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from annotate.config import load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER
from annotate.overlap import OverlapPolicy
from api import store
from api.app import create_app
from api.applier import Applier
from api.dashboard_pages import adjudication_queue
from api.db import init_db, make_engine
from api.inbox import Inbox, transaction
from api.models import Judgement, TaskOverlapRow
from api.overlap_keeper import OverlapKeeper, decide_tasks, overlap_status
from schemas.taxonomy import load_taxonomy
from tests.conftest import free_port, write_config
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
POLICY = OverlapPolicy(min_annotators=2, max_annotators=4, lead=2)


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    init_db(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _apply(db: Session, annotation_id: int, task_id: int, who: int, labels: list[str]) -> None:
    t = task(task_id, dialogue(len(labels), clip=task_id))
    values = {i: {"emotion": e} for i, e in enumerate(labels)}
    store.apply_event(db, annotation_event(TAX, annotation_id, t, who, values), TAX)


def test_decisions_follow_the_votes(db: Session) -> None:
    _apply(db, 1, 1, 1, ["joy", "anger"])
    _apply(db, 2, 1, 2, ["joy", "fear"])  # turn 1 split 1-1
    _apply(db, 3, 2, 1, ["joy", "anger"])
    _apply(db, 4, 2, 2, ["joy", "anger"])  # both turns 2-0
    _apply(db, 5, 3, 1, ["joy", "anger"])  # one annotator: too few
    decide_tasks(db, [(1, 1), (1, 2), (1, 3)], POLICY)
    db.commit()
    rows = {r.task_id: r for r in db.exec(select(TaskOverlapRow)).all()}
    assert (rows[1].annotators, rows[1].target, rows[1].unsettled) == (2, 3, 1)
    assert (rows[2].annotators, rows[2].target, rows[2].reason) == (2, 2, "agreed")
    assert (rows[3].annotators, rows[3].target, rows[3].reason) == (1, 2, "too_few")
    status = overlap_status(db, 1)
    assert (status["need_more"], status["settled"], status["pending"]) == (2, 1, 3)


def test_label_studio_away_keeps_the_decision_pending_and_backs_off(db: Session) -> None:
    _apply(db, 1, 1, 1, ["joy"])
    _apply(db, 2, 1, 2, ["fear"])
    decide_tasks(db, [(1, 1)], POLICY)
    db.commit()
    keeper = OverlapKeeper(POLICY, f"http://127.0.0.1:{free_port()}", "token", timeout=1.0)
    try:
        assert keeper.push(db) == 1
        row = db.get(TaskOverlapRow, 1)
        assert row is not None and row.applied is None and row.attempts == 1
        assert "ConnectError" in (row.error or "")
        assert keeper.push(db) == 0  # within the backoff: not tried again yet
        status = overlap_status(db, 1)
        assert status["pending"] == 1 and status["failing"] == 1
    finally:
        keeper.close()
    # the judgements are untouched
    assert len(db.exec(select(Judgement)).all()) == 2


class _Broken(OverlapKeeper):
    def decide(self, db: Session, events: object) -> int:  # type: ignore[override]
        raise RuntimeError("a decision that fails")


def test_a_failing_decision_never_costs_the_batch_its_judgements(database_url: str) -> None:
    engine = make_engine(database_url)
    init_db(engine)
    inbox = Inbox(engine)
    try:
        t = task(1, dialogue(2))
        event = annotation_event(TAX, 1, t, 1, {0: {"emotion": "joy"}, 1: {"emotion": "fear"}})
        transaction(inbox.engine, lambda db: inbox.keep(db, [(json.dumps(event).encode(), None)]))
        keeper = _Broken(POLICY, f"http://127.0.0.1:{free_port()}", "token")
        applier = Applier(inbox, TAX, keeper=keeper)
        assert applier.drain() == 1
        assert applier.done.dead_letters == 0
        with Session(engine) as db:
            assert len(db.exec(select(Judgement)).all()) == 2
        keeper.close()
    finally:
        inbox.dispose()
        engine.dispose()


def test_health_says_when_label_studio_does_not_get_the_overlaps(tmp_path: Path) -> None:
    """The real app with its applier thread and adaptive overlap on, Label Studio away (a
    closed port): the judgements are applied, the decision waits, and /health turns
    degraded once it has waited past the bound, naming the error."""
    config = write_config(
        tmp_path,
        label_studio={"url": f"http://127.0.0.1:{free_port()}", "token": "t", "password": "p"},
        service={
            "database_url": f"sqlite:///{tmp_path / 'store.db'}",
            "webhook_secret": "s",
            "api_key": "k",
            "reconcile_seconds": 0,
            "max_backlog_seconds": 1,
        },
        overlap={"enabled": True},
    )
    app = create_app(with_local_secrets(load_settings(config)))
    t = task(1, dialogue(2))
    with TestClient(app) as client:
        for annotation, who, label in ((1, 1, "joy"), (2, 2, "fear")):
            values = {0: {"emotion": label}, 1: {"emotion": "joy"}}
            event = annotation_event(TAX, annotation, t, who, values)
            answer = client.post("/webhooks/label-studio", json=event, headers={SECRET_HEADER: "s"})
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = client.get("/health")
            if health.status_code == 503:
                break
            time.sleep(0.3)
        body = health.json()
        assert health.status_code == 503, body
        assert any("task overlaps not sent to Label Studio" in r for r in body["reasons"])
        assert body["overlap"]["failing"] == 1 and body["overlap"]["pending"] == 1
        got = client.get("/projects/1/overlap", headers={"X-API-Key": "k"}).json()
        assert got["tasks"][0]["target"] == 3 and got["tasks"][0]["error"]
        judgements = client.get("/projects/1/judgements", headers={"X-API-Key": "k"}).json()
        assert judgements["count"] == 4  # nothing of the batch lost


def test_the_adjudication_queue_holds_exhausted_clips_with_their_split_turns(
    db: Session,
) -> None:
    _apply(db, 1, 1, 1, ["joy", "anger", "fear"])
    _apply(db, 2, 1, 2, ["joy", "sadness", "neutral"])  # turns 1 and 2 split
    _apply(db, 3, 2, 1, ["joy", "anger", "fear"])
    _apply(db, 4, 2, 2, ["joy", "anger", "fear"])  # all agreed
    decide_tasks(db, [(1, 1), (1, 2)], OverlapPolicy(max_annotators=2))
    db.commit()
    # threshold -1: no clip is below it; only the policy's exhausted clip is queued
    queue = adjudication_queue(db, 1, TAX, -1.0, "http://ls.example")
    assert [c["task"] for c in queue] == [1]
    assert queue[0]["why"] == ["overlap exhausted"]
    lines = dialogue(3, clip=1)
    assert queue[0]["disagreeing_turns"] == sorted([lines[1]["turn_id"], lines[2]["turn_id"]])
    assert queue[0]["url"] == "http://ls.example/projects/1/data?task=1"


def test_the_keeper_leaves_hidden_repeats_and_adjudication_tasks_alone(db: Session) -> None:
    """A hidden repeat keeps the overlap it was imported with (its events are filed under
    the negated project before the keeper looks), and an adjudication task keeps its one
    annotator; the main project's task beside them is decided as usual."""
    from api import adjudication, repeats

    repeats.keep_repeats(db, 1, "s1", [("s1-c009", "s1-c001", {})])
    repeats.record_tasks(db, 1, {"s1-c009": 9})
    adjudication.record_links(
        db,
        1,
        [
            {
                "clip": "s1-c001",
                "task": 1,
                "adjudication_project": 50,
                "adjudication_task": 70,
                "turns": [],
                "disagreeing": [],
                "why": ["test"],
            }
        ],
    )
    # a second adjudication project, noted when the sender made it: no link yet (a task
    # there may be annotated before the sender links it)
    adjudication.record_project(db, 1, 51)
    keeper = OverlapKeeper(POLICY, f"http://127.0.0.1:{free_port()}", "token", timeout=1.0)
    events = []
    for annotation_id, (task_id, project) in enumerate(
        [(1, 1), (9, 1), (70, 50), (71, 51)], start=1
    ):
        t = task(task_id, dialogue(2, clip=task_id))
        values = {i: {"emotion": "joy"} for i in range(2)}
        payload = annotation_event(TAX, annotation_id, t, 1, values, project_id=project)
        events.append(store.parse_event(payload, TAX))
    store.apply_events(db, events)
    keeper.decide(db, events)
    db.commit()
    assert [r.task_id for r in db.exec(select(TaskOverlapRow)).all()] == [1]
