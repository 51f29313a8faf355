"""Group commit into the inbox (api.ingest), the applier (api.inbox) and batched events
(store.apply_events), on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import json
import math
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from annotate.config import load_settings, with_local_secrets
from api import store
from api.app import create_app
from api.applier import Applier
from api.db import init_db, make_engine
from api.inbox import Inbox, transaction
from api.ingest import GroupCommit
from api.models import AgreementSum, Annotation, DeadLetter, Judgement, ShiftEventRow, Task
from schemas.taxonomy import load_taxonomy
from tests.conftest import write_config
from tests.payloads import annotation_event, delete_event, dialogue, task

TAX = load_taxonomy()
EMOTIONS = ["neutral", "joy", "sadness", "anger", "fear"]


@pytest.fixture
def writer_engine(database_url: str) -> Iterator[Engine]:
    """The engine the service applies events with (SQLite: transactions begin IMMEDIATE)."""
    engine = make_engine(database_url, immediate=database_url.startswith("sqlite"))
    init_db(engine)
    yield engine
    engine.dispose()


def _values(rng: random.Random, turns: int) -> dict[int, dict[str, str | int]]:
    return {
        i: {"emotion": rng.choice(EMOTIONS), "intensity": rng.randint(1, 5)} for i in range(turns)
    }


def _stamp(n: int) -> str:
    return f"2026-11-26T10:{n // 60:02d}:{n % 60:02d}Z"


def _events(rng: random.Random, n: int) -> list[dict]:
    """Creates, updates, stale and repeated deliveries, deletions (also before the create),
    a shift span and a cancelled annotation, on 3 clips that share annotators."""
    tasks = [task(k + 1, dialogue(4, clip=k)) for k in range(3)]
    shift = [{"start": 1.0, "end": 2.0, "from": "neutral", "to": "joy"}]
    events: list[dict] = []
    sent: dict[int, dict] = {}
    for k in range(n):
        annotation_id = rng.randint(1, 12)
        kind = rng.choice(["create", "create", "update", "stale", "again", "delete", "tasks"])
        if kind == "delete":
            events.append(delete_event([annotation_id]))
        elif kind == "tasks" and rng.random() < 0.3:
            events.append({"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 3}]})
        elif kind in ("stale", "again") and annotation_id in sent:
            payload = sent[annotation_id]
            if kind == "stale":
                payload = {
                    **payload,
                    "annotation": {**payload["annotation"], "updated_at": _stamp(0)},
                }
            events.append(payload)
        else:
            payload = annotation_event(
                TAX,
                annotation_id,
                tasks[annotation_id % 3],
                annotation_id % 5,
                _values(rng, 4),
                updated_at=_stamp(k + 1),
                action="ANNOTATION_UPDATED" if kind == "update" else "ANNOTATION_CREATED",
                shifts=shift if annotation_id % 4 == 0 else None,
                was_cancelled=annotation_id == 7,
            )
            sent[annotation_id] = payload
            events.append(payload)
    return events


def _state(engine: Engine) -> dict[str, object]:
    """What the store holds (ids of judgements aside), comparable between two stores."""
    with Session(engine) as db:
        sums = {
            (s.project_id, s.dimension, s.key): s.value
            for s in db.exec(select(AgreementSum)).all()
            if abs(s.value) > 1e-9
        }
        return {
            "judgements": sorted(
                (
                    j.project_id,
                    j.annotation_id,
                    j.task_id,
                    j.annotator,
                    j.turn_id,
                    j.dimension,
                    j.value,
                )
                for j in db.exec(select(Judgement)).all()
            ),
            "shifts": sorted(
                (s.annotation_id, s.start, s.end, s.from_emotion, s.to_emotion)
                for s in db.exec(select(ShiftEventRow)).all()
            ),
            "annotations": sorted(
                (
                    a.id,
                    a.project_id,
                    a.task_id,
                    a.annotator,
                    a.deleted,
                    a.was_cancelled,
                    a.updated_at,
                    json.dumps(a.skipped, sort_keys=True),
                )
                for a in db.exec(select(Annotation)).all()
            ),
            "tasks": sorted((t.id, t.deleted, t.clip_id) for t in db.exec(select(Task)).all()),
            "sums": sums,
        }


def _clear(engine: Engine) -> None:
    with Session(engine) as db:
        for model in (Judgement, ShiftEventRow, Annotation, Task, AgreementSum, DeadLetter):
            for row in db.exec(select(model)).all():
                db.delete(row)
        db.commit()


def _same_sums(a: dict, b: dict) -> bool:
    keys = a.keys() | b.keys()
    return all(math.isclose(a.get(k, 0.0), b.get(k, 0.0), abs_tol=1e-9) for k in keys)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_events_in_batches_equal_the_events_one_by_one(writer_engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    payloads = _events(rng, 60)
    with Session(writer_engine) as db:
        one_by_one = [store.apply_event(db, p, TAX) for p in payloads]
    expected = _state(writer_engine)
    _clear(writer_engine)
    events = [store.parse_event(p, TAX) for p in payloads]
    batched: list[store.Applied] = []
    with Session(writer_engine) as db:
        start = 0
        while start < len(events):  # random batch sizes, TASKS_DELETED anywhere in them
            end = start + rng.randint(1, 12)
            batched += store.apply_events(db, events[start:end])
            db.commit()
            start = end
    got = _state(writer_engine)
    assert batched == one_by_one
    assert {k: v for k, v in got.items() if k != "sums"} == {
        k: v for k, v in expected.items() if k != "sums"
    }
    assert _same_sums(got["sums"], expected["sums"])  # type: ignore[arg-type]
    with Session(writer_engine) as db:
        rebuilt = store.recompute_sums(db, 1)
        for dim, sums in rebuilt.items():
            assert _same_sums(store.stored_sums(db, 1, dim), sums), dim


def test_parse_event_names_the_field_before_anything_is_stored(writer_engine: Engine) -> None:
    bad = annotation_event(TAX, 1, task(1, dialogue(2)), 7, {0: {"emotion": "joy"}})
    bad["annotation"]["created_at"] = "last week"
    with pytest.raises(store.PayloadError, match=r"annotation\.created_at: expected an ISO 8601"):
        store.parse_event(bad, TAX)
    with pytest.raises(store.PayloadError, match=r"tasks\[1\]: expected an object, got int"):
        store.parse_event(
            {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 1}, 5]}, TAX
        )


def _burst(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    tasks = [task(k + 1, dialogue(5, clip=k)) for k in range(4)]
    return [
        annotation_event(TAX, 100 + k, tasks[k % 4], k % 6, _values(rng, 5), updated_at=_stamp(k))
        for k in range(n)
    ]


def _refuse_annotator(engine: Engine, annotator: str) -> None:
    """Make the database itself refuse judgements of ``annotator`` (a constraint)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"ALTER TABLE judgement ADD CONSTRAINT refused CHECK (annotator <> '{annotator}')"
            )
        else:
            conn.exec_driver_sql(
                f"CREATE TRIGGER refused BEFORE INSERT ON judgement WHEN NEW.annotator = "
                f"'{annotator}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


def test_a_batch_with_one_bad_event_stores_the_others(writer_engine: Engine) -> None:
    """An event the store refuses fails alone: the applier applies the batch again one
    event at a time, the refused event becomes a dead letter, the others are stored, and
    the inbox is left empty."""
    _refuse_annotator(writer_engine, "999")
    payloads = _burst(12, seed=4)
    bad = annotation_event(TAX, 77, task(9, dialogue(5, clip=9)), 999, _values(random.Random(0), 5))
    payloads.insert(5, bad)
    inbox = Inbox(writer_engine)
    try:
        transaction(inbox.engine, lambda db: inbox.keep(db, [(_body(p), None) for p in payloads]))
        applier = Applier(inbox, TAX)
        assert applier.drain() == 13
        assert inbox.pending() == 0
    finally:
        inbox.dispose()
    with Session(writer_engine) as db:
        stored = {j.annotation_id for j in db.exec(select(Judgement)).all()}
        letters = db.exec(select(DeadLetter)).all()
        assert db.get(Annotation, 77) is None  # nothing of it half-applied
    assert stored == {p["annotation"]["id"] for p in payloads if p is not bad}
    assert len(letters) == 1
    assert letters[0].reason.startswith("not applied: IntegrityError")
    assert json.loads(letters[0].body)["annotation"]["id"] == 77
    # the failed batch is not counted: 12 events and 1 letter, each in a transaction of its own
    assert (applier.done.events, applier.done.dead_letters) == (12, 1)
    assert applier.done.transactions == 13


def _body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def test_queued_deliveries_are_committed_together_then_applied(writer_engine: Engine) -> None:
    payloads = _burst(30, seed=5)
    inbox = Inbox(writer_engine)
    woken: list[int] = []
    writer = GroupCommit(inbox, max_batch=8, start=False, on_commit=lambda: woken.append(1))
    try:
        futures = [writer.submit(_body(p)) for p in payloads]
        letter = writer.submit(b"{not json", "body: not JSON")
        writer.start()
        for future in [*futures, letter]:
            assert future.result(timeout=60) is None
        writer.stop()
        assert (writer.events, writer.batches, len(woken)) == (31, 4, 4)  # 8 + 8 + 8 + 7
        assert inbox.pending() == 31  # kept, not applied yet
        with Session(writer_engine) as db:
            assert store.count_judgements(db, 1) == 0
        applier = Applier(inbox, TAX, batch=16)
        assert applier.drain() == 31
        assert applier.done.transactions == 2 and inbox.pending() == 0
    finally:
        writer.stop()
        inbox.dispose()
    with Session(writer_engine) as db:
        assert store.count_judgements(db, 1) == 300
        assert [d.reason for d in db.exec(select(DeadLetter)).all()] == ["body: not JSON"]


def test_wait_applied_waits_for_what_was_kept_before_the_call(writer_engine: Engine) -> None:
    inbox = Inbox(writer_engine)
    applier = Applier(inbox, TAX)
    try:
        assert inbox.wait_applied(timeout=0.1) == 0  # an empty inbox: nothing to wait for
        deliveries = [(_body(p), None) for p in _burst(5, seed=8)]
        transaction(inbox.engine, lambda db: inbox.keep(db, deliveries))
        assert inbox.wait_applied(timeout=0.05) == 5  # no applier runs: still 5 waiting
        applier.start()
        assert inbox.wait_applied(timeout=30) == 0
        with Session(writer_engine) as db:
            assert store.count_judgements(db, 1) == 50
    finally:
        applier.stop()
        inbox.dispose()


def test_an_event_applied_twice_changes_nothing(writer_engine: Engine) -> None:
    """On SQLite the inbox rows are removed after the store's commit; a crash in between
    applies those events again. The second application changes nothing."""
    payloads = _events(random.Random(9), 40)
    inbox = Inbox(writer_engine)
    try:
        keep = [(_body(p), None) for p in payloads]
        transaction(inbox.engine, lambda db: inbox.keep(db, keep))
        Applier(inbox, TAX, batch=7).drain()
        once = _state(writer_engine)
        transaction(inbox.engine, lambda db: inbox.keep(db, keep))  # every event again
        Applier(inbox, TAX, batch=7).drain()
    finally:
        inbox.dispose()
    again = _state(writer_engine)
    assert {k: v for k, v in again.items() if k != "sums"} == {
        k: v for k, v in once.items() if k != "sums"
    }
    assert _same_sums(again["sums"], once["sums"])  # type: ignore[arg-type]


def test_concurrent_submitters_have_every_event_stored_exactly_once(writer_engine: Engine) -> None:
    """12 threads submit creates, repeated deliveries and newer versions of the same
    annotations while two appliers run at once (as if the election had failed): every
    acknowledged event is in the store once, the sums equal a rebuild."""
    rng = random.Random(6)
    tasks = [task(k + 1, dialogue(4, clip=k)) for k in range(3)]
    final: dict[int, dict] = {}
    payloads: list[dict] = []
    for k in range(40):
        versions = [
            annotation_event(
                TAX, 500 + k, tasks[k % 3], k % 7, _values(rng, 4), updated_at=_stamp(v * 50 + k)
            )
            for v in range(1 + k % 3)
        ]
        final[500 + k] = versions[-1]
        payloads += versions + versions[:1]  # a repeated delivery of the first version
    rng.shuffle(payloads)
    inbox = Inbox(writer_engine)
    appliers = [Applier(inbox, TAX, batch=5) for _ in range(2)]
    for applier in appliers:
        applier._lead.hold = lambda: True  # type: ignore[method-assign]  # both lead
        applier.start()
    writer = GroupCommit(inbox, on_commit=appliers[0].wake)
    lock = threading.Lock()
    acknowledged: list[int] = []

    def submit(payload: dict) -> None:
        writer.submit(_body(payload)).result(timeout=120)
        with lock:
            acknowledged.append(payload["annotation"]["id"])

    try:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(submit, payloads))
        assert inbox.wait_applied(timeout=60) == 0
    finally:
        writer.stop()
        for applier in appliers:
            applier.stop()
        inbox.dispose()
    assert len(acknowledged) == len(payloads)
    assert sum(a.done.events for a in appliers) >= len(payloads)
    with Session(writer_engine) as db:
        rows = sorted(
            (j.annotation_id, j.turn_id, j.dimension, j.value)
            for j in db.exec(select(Judgement)).all()
        )
        expected = sorted(
            (annotation_id, line["turn_id"], dim, str(value))
            for annotation_id, p in final.items()
            for i, line in enumerate(p["task"]["data"]["dialogue"])
            for dim, value in _sent_values(p)[i].items()
        )
        assert rows == expected  # the newest version of each, exactly once
        rebuilt = store.recompute_sums(db, 1)
        for dim, sums in rebuilt.items():
            assert _same_sums(store.stored_sums(db, 1, dim), sums), dim


def _sent_values(payload: dict) -> dict[int, dict[str, str | int]]:
    """The values an annotation event carries, by dialogue index (read back from its result)."""
    values: dict[int, dict[str, str | int]] = {}
    for item in payload["annotation"]["result"]:
        if item["from_name"] in ("emotion", "intensity"):
            value = item["value"]
            raw = value.get("choices", [value.get("rating")])[0]
            values.setdefault(int(value["start"]), {})[item["from_name"]] = raw
    return values


def test_the_running_service_keeps_its_startup_heap_out_of_garbage_collections(
    tmp_path: Path,
) -> None:
    """A full collection walking every module, the app and its engines stalled webhooks for
    about 170 ms; while the service runs, what it loaded at start is frozen, and given back
    to the collector when it stops."""
    config = write_config(
        tmp_path,
        service={
            "database_url": f"sqlite:///{tmp_path / 'store.db'}",
            "webhook_secret": "s",
            "api_key": "k",
            "reconcile_seconds": 0,
        },
    )
    service = create_app(with_local_secrets(load_settings(config)))
    assert gc.get_freeze_count() == 0
    with TestClient(service) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000  # modules, classes, the app: all frozen
    assert gc.get_freeze_count() == 0


def test_the_applier_keeps_postgres_planner_statistics_of_the_judgements(
    writer_engine: Engine,
) -> None:
    """PostgreSQL: once the applier has added half the judgement table's size since the
    last analysis (at least ``floor`` rows), it analyses the table; SQLite: never."""
    inbox = Inbox(writer_engine)
    applier = Applier(inbox, TAX, batch=10)
    applier._statistics.floor = 100  # 10 events of 10 judgements per transaction
    try:
        transaction(
            inbox.engine, lambda db: inbox.keep(db, [(_body(p), None) for p in _burst(30, seed=8)])
        )
        assert applier.drain() == 30
    finally:
        inbox.dispose()
    if writer_engine.dialect.name != "postgresql":
        assert applier._statistics.analysed == 0
        return
    # 100 rows (floor) -> analysed at 100; then max(100, 100 // 2) -> at 200 and at 300
    assert applier._statistics.analysed == 3
    assert applier._statistics.size == 300
    with writer_engine.connect() as conn:
        analysed = conn.exec_driver_sql(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'judgement'"
        ).scalar()
    assert analysed is not None


def test_a_delivery_committed_after_a_higher_id_was_applied_is_applied(
    writer_engine: Engine,
) -> None:
    """Several web workers keep deliveries at once: on PostgreSQL a row's id comes from a
    sequence when it is inserted, so a lower id can commit after a higher one was already
    applied. It must still be applied (and reads must wait for it). On SQLite one writer
    at a time takes the ids, so the order holds by construction; the test runs on both."""
    first, second = (_body(p) for p in _burst(2, seed=21))
    inbox = Inbox(writer_engine)
    applier = Applier(inbox, TAX)
    try:
        if not inbox.shared:  # SQLite: the two keeps cannot overlap, keep them in order
            transaction(inbox.engine, lambda db: inbox.keep(db, [(first, None)]))
            transaction(inbox.engine, lambda db: inbox.keep(db, [(second, None)]))
        else:
            late = Session(inbox.engine)
            inbox.keep(late, [(first, None)])  # takes the lower id, not committed yet
            transaction(inbox.engine, lambda db: inbox.keep(db, [(second, None)]))
            assert applier.drain() == 1  # only the committed, higher id is visible
            late.commit()  # the lower id becomes visible after the higher one was applied
            late.close()
            assert inbox.pending() == 1
            assert inbox.wait_applied(timeout=0.05) == 1  # a read would say it waits
        applier.drain()
        assert inbox.pending() == 0
        assert inbox.wait_applied(timeout=0.05) == 0
    finally:
        inbox.dispose()
    with Session(writer_engine) as db:
        kept = [json.loads(b) for b in (first, second)]
        expected = {p["annotation"]["id"] for p in kept}
        stored = set(db.exec(select(Annotation.id).where(Annotation.deleted.is_(False))).all())
        assert stored == expected
