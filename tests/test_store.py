"""The service's store on SQLite and PostgreSQL: events applied exactly, agreement right."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from annotate.agreement import krippendorff_alpha
from api import store
from api.db import CACHE_KIB, make_engine
from api.models import Annotation, Judgement, ShiftEventRow
from schemas.taxonomy import Taxonomy, load_taxonomy
from tests.payloads import annotation_event, delete_event, dialogue, task

TAX = load_taxonomy()
DIMS = len(TAX.dimensions)
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders x 12 units.
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _values(emotion: str = "joy", intensity: int = 3) -> dict[str, str | int]:
    return {
        "emotion": emotion,
        "intensity": intensity,
        "valence": 4,
        "arousal": 3,
        "dominance": 3,
        "authenticity": 5,
    }


def _apply(engine: Engine, payload: dict, taxonomy: Taxonomy = TAX) -> store.Applied:
    with Session(engine) as db:
        return store.apply_event(db, payload, taxonomy)


def _judgements(engine: Engine) -> list[Judgement]:
    with Session(engine) as db:
        return list(db.exec(select(Judgement)).all())


def test_created_annotation_stores_one_judgement_per_turn_and_dimension(engine: Engine) -> None:
    t = task(1, dialogue(3))
    shift = [
        {
            "start": 2.0,
            "end": 3.0,
            "from": "neutral",
            "to": "joy",
            "trigger": "partner-induced",
            "onset": "abrupt",
        }
    ]
    applied = _apply(
        engine, annotation_event(TAX, 10, t, 7, {i: _values() for i in range(3)}, shifts=shift)
    )
    assert applied.stored == 3 * DIMS
    rows = _judgements(engine)
    assert {(j.turn_id, j.dimension) for j in rows} == {
        (f"s1-t{i:05d}", d.name) for i in range(3) for d in TAX.dimensions
    }
    assert {j.annotator for j in rows} == {"7"}
    assert {j.taxonomy_version for j in rows} == {TAX.version}
    with Session(engine) as db:
        (event,) = db.exec(select(ShiftEventRow)).all()
    # clip-audio seconds + the task's audio_offset (10 s) = session seconds
    assert (event.start, event.end, event.from_emotion, event.to_emotion) == (
        12.0,
        13.0,
        "neutral",
        "joy",
    )


def test_redelivered_event_changes_nothing(engine: Engine) -> None:
    payload = annotation_event(TAX, 10, task(1, dialogue(2)), 7, {0: _values(), 1: _values()})
    _apply(engine, payload)
    before = sorted((j.turn_id, j.dimension, j.value) for j in _judgements(engine))
    again = _apply(engine, payload)
    assert again.ignored == "not newer"
    assert sorted((j.turn_id, j.dimension, j.value) for j in _judgements(engine)) == before


def test_older_update_never_overwrites_newer(engine: Engine) -> None:
    t = task(1, dialogue(1))
    newer = annotation_event(
        TAX,
        10,
        t,
        7,
        {0: _values("anger")},
        action="ANNOTATION_UPDATED",
        updated_at="2026-11-26T10:05:00Z",
    )
    older = annotation_event(TAX, 10, t, 7, {0: _values("joy")}, updated_at="2026-11-26T10:00:00Z")
    _apply(engine, newer)
    assert _apply(engine, older).ignored == "not newer"
    emotion = [j.value for j in _judgements(engine) if j.dimension == "emotion"]
    assert emotion == ["anger"]
    # and a newer one does replace
    newest = annotation_event(
        TAX,
        10,
        t,
        7,
        {0: _values("sadness")},
        action="ANNOTATION_UPDATED",
        updated_at="2026-11-26T10:09:00Z",
    )
    _apply(engine, newest)
    assert [j.value for j in _judgements(engine) if j.dimension == "emotion"] == ["sadness"]


def test_delete_removes_judgements_and_a_late_create_stays_deleted(engine: Engine) -> None:
    t = task(1, dialogue(2))
    create = annotation_event(TAX, 10, t, 7, {0: _values(), 1: _values()})
    _apply(engine, create)
    other = annotation_event(TAX, 11, t, 8, {0: _values()})
    _apply(engine, other)
    applied = _apply(engine, delete_event([10]))
    assert applied.removed == 2 * DIMS
    assert {j.annotation_id for j in _judgements(engine)} == {11}
    assert _apply(engine, create).ignored == "deleted"
    assert {j.annotation_id for j in _judgements(engine)} == {11}
    # a deletion for an annotation never seen leaves a tombstone that wins over its create
    _apply(engine, delete_event([12]))
    late = annotation_event(TAX, 12, t, 9, {0: _values()})
    assert _apply(engine, late).ignored == "deleted"
    with Session(engine) as db:
        assert db.get(Annotation, 12).deleted  # type: ignore[union-attr]


def test_a_new_annotation_under_a_deleted_id_is_stored(engine: Engine) -> None:
    """Label Studio on SQLite gives a new annotation the id of the last one deleted (an
    annotator deletes theirs and labels again). Its creation time differs from the deleted
    one's, so it is stored; the deleted one delivered late (same creation time) is not."""
    t = task(1, dialogue(2))
    _apply(engine, annotation_event(TAX, 10, t, 7, {0: _values(), 1: _values()}))
    _apply(engine, delete_event([10]))
    again = annotation_event(
        TAX, 10, t, 7, {0: _values("anger")}, created_at="2026-11-26T11:00:00.000000Z",
        updated_at="2026-11-26T11:00:00.000000Z",
    )  # fmt: skip
    applied = _apply(engine, again)
    assert applied.ignored is None and applied.stored == DIMS
    assert {(j.annotation_id, j.turn_id, j.value) for j in _judgements(engine)} >= {
        (10, t["data"]["dialogue"][0]["turn_id"], "anger")
    }
    with Session(engine) as db:
        assert not db.get(Annotation, 10).deleted  # type: ignore[union-attr]
    # the first one's create delivered late now: older, so it does not overwrite
    first = annotation_event(TAX, 10, t, 7, {0: _values(), 1: _values()})
    assert _apply(engine, first).ignored == "not newer"
    assert {j.value for j in _judgements(engine) if j.dimension == "emotion"} == {"anger"}
    # deleted again: the late creates of both stay deleted
    _apply(engine, delete_event([10]))
    assert _apply(engine, again).ignored == "deleted"
    assert _judgements(engine) == []


def test_a_pull_brings_back_a_task_under_a_deleted_id(engine: Engine) -> None:
    """Label Studio on SQLite gives a new task the id of the last one deleted: a pull that
    began after the deletion and lists the task brings it back into the store (and so
    into exports); one that began before does not."""
    from datetime import UTC, datetime, timedelta

    from api.reconcile import reconcile

    old = task(1, dialogue(1))
    _apply(engine, annotation_event(TAX, 10, old, 7, {0: _values()}))
    _apply(engine, {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 1}]})
    new = task(1, dialogue(1, clip=3))
    payload = annotation_event(
        TAX, 11, new, 8, {0: _values("fear")}, created_at="2026-11-26T12:00:00.000000Z"
    )
    before = datetime.now(UTC) - timedelta(hours=1)
    with Session(engine) as db:
        stale = reconcile(db, 1, [(1, [payload])], TAX, full=False, started=before)
        assert stale.restored_tasks == 0
        assert [t.id for t in store.iter_tasks(db, 1)] == []
        fresh = reconcile(db, 1, [(1, [payload])], TAX, full=False)
        assert fresh.restored_tasks == 1
        assert [t.id for t in store.iter_tasks(db, 1)] == [1]
    assert {
        (j.annotation_id, j.value) for j in _judgements(engine) if j.dimension == "emotion"
    } == {(11, "fear")}


def test_tasks_deleted_removes_their_annotations(engine: Engine) -> None:
    _apply(engine, annotation_event(TAX, 10, task(1, dialogue(1)), 7, {0: _values()}))
    _apply(engine, annotation_event(TAX, 11, task(2, dialogue(1, clip=1)), 7, {0: _values()}))
    _apply(engine, {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 1}]})
    assert {j.task_id for j in _judgements(engine)} == {2}
    with Session(engine) as db:
        assert [t.id for t in store.iter_tasks(db, 1)] == [2]


def test_cancelled_annotation_stores_no_judgements(engine: Engine) -> None:
    payload = annotation_event(TAX, 10, task(1, dialogue(2)), 7, {0: _values()}, was_cancelled=True)
    applied = _apply(engine, payload)
    assert applied.stored == 0
    assert applied.skipped == {"cancelled": DIMS}
    assert _judgements(engine) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"project": {"id": 1}}, "action"),
        ({"action": "ANNOTATION_CREATED"}, "project"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}}, "annotation"),
        (
            {"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": "x"}]},
            r"annotations\[0\]\.id",
        ),
        (
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": 1},
                "task": {"id": 1, "data": {}},
                "annotation": {"id": 3, "completed_by": 1, "updated_at": "yesterday", "result": []},
            },
            "annotation.updated_at",
        ),
    ],
)
def test_malformed_payload_names_the_field_and_applies_nothing(
    engine: Engine, payload: dict, field: str
) -> None:
    with pytest.raises(store.PayloadError, match=field):
        _apply(engine, payload)
    assert _judgements(engine) == []
    with Session(engine) as db:
        assert db.exec(select(Annotation)).all() == []


def _k2011_events(dimension_values: dict[int, str | int], dim: str) -> Iterator[dict]:
    t = task(1, dialogue(12))
    for k, (coder, values) in enumerate(K2011.items()):
        chosen = {i: {dim: dimension_values[v]} for i, v in enumerate(values) if v is not None}
        yield annotation_event(TAX, 100 + k, t, 1 + k, chosen)
        del coder


@pytest.mark.parametrize(
    ("dimension", "mapping", "expected"),
    [
        # nominal: the five values as five emotion categories
        ("emotion", {1: "neutral", 2: "joy", 3: "sadness", 4: "anger", 5: "fear"}, 0.743),
        ("intensity", {v: v for v in range(1, 6)}, 0.815),  # ordinal
        ("valence", {v: v for v in range(1, 6)}, 0.849),  # interval
    ],
)
def test_agreement_reproduces_krippendorff_2011(
    engine: Engine, dimension: str, mapping: dict, expected: float
) -> None:
    for payload in _k2011_events(mapping, dimension):
        _apply(engine, payload)
    with Session(engine) as db:
        figures = store.agreement(db, 1, dimension, TAX)
    assert round(figures["alpha"], 3) == expected
    assert figures["units"] == 12
    assert figures["annotators"] == 4
    assert figures["judgements"] == sum(v is not None for vs in K2011.values() for v in vs)


def test_agreement_unknown_project_and_dimension(engine: Engine) -> None:
    _apply(engine, annotation_event(TAX, 10, task(1, dialogue(1)), 7, {0: _values()}))
    with Session(engine) as db:
        with pytest.raises(store.NotFound, match=r"unknown project 5; the store has \[1\]"):
            store.agreement(db, 5, "emotion", TAX)
        with pytest.raises(store.NotFound, match="unknown dimension 'mood'; expected one of"):
            store.agreement(db, 1, "mood", TAX)


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    keys = {
        k for k in a.keys() | b.keys() if abs(a.get(k, 0.0)) > 1e-9 or abs(b.get(k, 0.0)) > 1e-9
    }
    return all(math.isclose(a.get(k, 0.0), b.get(k, 0.0), abs_tol=1e-9) for k in keys)


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "delete", "redeliver", "stale"]),
        st.integers(0, 5),  # annotation slot
        st.lists(st.sampled_from(["joy", "anger", "neutral"]), min_size=3, max_size=3),
    ),
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=_EVENTS)
def test_incremental_sums_equal_a_full_recompute(engine: Engine, events: list) -> None:
    """Any sequence of creates, updates, deletes, re-deliveries and stale updates."""
    with Session(engine) as db:  # a fresh project per example
        project = 1000 + len(store.projects(db))
    tasks = [task(project * 10 + k, dialogue(3, session_id=f"p{project}", clip=k)) for k in (0, 1)]
    clock = 0
    last: dict[int, dict] = {}
    for action, slot, labels in events:
        annotation_id = project * 100 + slot
        t = tasks[slot % 2]
        if action == "delete":
            payload = delete_event([annotation_id], project_id=project)
        elif action in ("redeliver", "stale") and slot in last:
            payload = last[slot]
            if action == "stale":
                payload = {
                    **payload,
                    "annotation": {
                        **payload["annotation"],
                        "result": payload["annotation"]["result"][:3],
                        "updated_at": "2020-01-01T00:00:00Z",
                    },
                }
        else:
            clock += 1
            payload = annotation_event(
                TAX,
                annotation_id,
                t,
                slot,
                {i: {"emotion": e, "intensity": 1 + i} for i, e in enumerate(labels)},
                project_id=project,
                action="ANNOTATION_UPDATED" if action == "update" else "ANNOTATION_CREATED",
                updated_at=f"2026-11-26T10:{clock // 60:02d}:{clock % 60:02d}Z",
            )
            last[slot] = payload
        _apply(engine, payload)
    with Session(engine) as db:
        batch = store.recompute_sums(db, project)
        for dim in ("emotion", "intensity"):
            assert _close(store.stored_sums(db, project, dim), batch.get(dim, {})), dim
        if batch:
            live = store.agreement(db, project, "emotion", TAX)
            matrix, _, _ = store.judgement_matrix(db, project, TAX.dimension("emotion"))
            try:
                expected = krippendorff_alpha(matrix, "nominal")
            except ValueError:
                expected = None
            if expected is None:
                assert live["alpha"] is None
            else:
                assert live["alpha"] == pytest.approx(expected, abs=1e-9)


def test_sqlite_connections_get_wal_a_busy_timeout_and_a_large_page_cache(tmp_path: Path) -> None:
    """Each setting is read back from a new connection of each kind of engine."""
    for immediate, synchronous in ((False, 1), (True, 2)):  # NORMAL, FULL
        engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}", immediate=immediate)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == synchronous
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -CACHE_KIB
        finally:
            engine.dispose()


def test_a_pull_undoes_a_deletion_of_an_annotation_never_seen(engine: Engine) -> None:
    """In trusted mode a forged ANNOTATIONS_DELETED can name ids to come; the store keeps
    tombstones for them (a deletion may arrive before its creation) and the annotation,
    when it comes, is taken for deleted. A pull that began after the tombstone and finds
    the annotation in Label Studio stores it; one that began before does not."""
    from datetime import UTC, datetime, timedelta

    from api.reconcile import reconcile

    _apply(engine, delete_event([20, 21]))  # forged: neither exists yet
    t = task(1, dialogue(1))
    payload = annotation_event(TAX, 20, t, 7, {0: _values("fear")})
    assert _apply(engine, payload).ignored == "deleted"
    before = datetime.now(UTC) - timedelta(hours=1)
    with Session(engine) as db:
        stale = reconcile(db, 1, [(1, [payload])], TAX, full=False, started=before)
        assert (stale.restored_annotations, stale.stored) == (0, 0)
        fresh = reconcile(db, 1, [(1, [payload])], TAX, full=False)
        assert (fresh.restored_annotations, fresh.stored) == (1, DIMS)
        assert not db.get(Annotation, 20).deleted  # type: ignore[union-attr]
        assert db.get(Annotation, 21).deleted  # type: ignore[union-attr]
    assert {
        (j.annotation_id, j.value) for j in _judgements(engine) if j.dimension == "emotion"
    } == {(20, "fear")}
