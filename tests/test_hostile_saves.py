"""A member's saves in another's name (SQLite and PostgreSQL): over an adjudicator's
decision, over an annotator's gold annotation, or posted and deleted to strip a score;
and the re-send limit that keeps tampering from throwing adjudicators' work away forever.

Label Studio records whoever saved an annotation last as its ``updated_by``, whatever the
request claimed as ``completed_by``; the events here are built with both set, as Label
Studio sends them. Expected values are counted from the events the test builds.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from annotate.adjudicate import send
from annotate.adjudication_guard import guard, saved_over
from annotate.config import Settings
from api import adjudication, resends, store
from api.db import held_lock
from api.events import Event
from api.gold import mark_gold
from api.models import Annotation
from api.models import saved_over as saved_over_model
from api.scorecards import annotators
from tests.payloads import annotation_event, delete_event, dialogue, task
from tests.test_adjudication import ADJ, AGREED, TAX, _decide, _link, engine

__all__ = ["engine"]  # the store with the 3-annotator panel of test_adjudication

LINES = dialogue(4, "s1", 0)
TURNS = [line["turn_id"] for line in LINES]
HONEST = ["joy", "sadness", "neutral", "fear"]


def _own_saved(engine: Engine) -> dict[int, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, own_saved_by FROM annotation")).all()
    return {int(a): o for a, o in rows}


def test_a_save_over_an_adjudicators_decision_marks_its_task(engine: Engine) -> None:
    """The judge decides; a member saves the judge's annotation unchanged (Label Studio:
    updated_by = the member), as starring it or pressing Update does: the decision stands.
    The member then saves it with other values: the decision stops counting, and the link
    is found for the sender to mark tampered and send again; the judge's own save stays
    on record."""
    with Session(engine) as db:
        _link(db, TURNS, hash=adjudication.data_hash(task(500, LINES, "s1")["data"]))
        _decide(db, 920, 7, HONEST, "2026-12-01T10:00:00Z")
        link = adjudication.links(db, 1)[0]
        assert saved_over(db, [link]) == {}
        assert adjudication.decisions(db, 1, ["7"]).clips["s1-c001"]["annotation"] == 920
        _decide(db, 920, 7, HONEST, "2026-12-01T11:00:00Z", updated_by=8)
        assert adjudication.decisions(db, 1, ["7"]).clips["s1-c001"]["annotation"] == 920
        assert saved_over(db, [link]) == {}
        _decide(db, 920, 7, ["anger"] * 4, "2026-12-01T12:00:00Z", updated_by=8)
        assert adjudication.decisions(db, 1, ["7"]).clips == {}
        found = saved_over(db, [link])
    assert list(found) == [link.id]
    assert "annotation 920 in user 7's name changed by user 8" in found[link.id]
    assert _own_saved(engine)[920] == "7"


def test_a_decision_given_to_another_annotator_stops_counting(engine: Engine) -> None:
    """The judge decides; a member gives the annotation to themselves or to another
    adjudicator (Label Studio lets ``completed_by`` be changed): it is nobody's decision
    now, and the link is found. The annotator named on it afterwards never saved it."""
    with Session(engine) as db:
        _link(db, TURNS, hash=adjudication.data_hash(task(500, LINES, "s1")["data"]))
        _decide(db, 940, 7, HONEST, "2026-12-01T10:00:00Z")
        link = adjudication.links(db, 1)[0]
        for new_owner in (8, 9):  # the member, then a second adjudicator
            _decide(db, 940, new_owner, HONEST, f"2026-12-01T1{new_owner}:00:00Z", updated_by=8)
            got = adjudication.decisions(db, 1, ["7", "9"])
            assert got.clips == {}, new_owner
            found = saved_over(db, [link], {"7", "9"})
            given = f"saved by user 7, since given to user {new_owner}"
            assert found == {link.id: f"task 500: annotation 940 {given}"}
        assert (
            got.ignored[
                "annotation given to another annotator after it was saved "
                "(Label Studio's completed_by)"
            ]
            == 1
        )
        assert adjudication.own_annotators(db, ADJ) == {}
    assert _own_saved(engine)[940] == "7"


def test_an_annotation_in_the_judges_name_hides_an_undecided_task(engine: Engine) -> None:
    """A member posts an annotation in the judge's name on an undecided task (Label
    Studio then leaves the task out of the judge's queue): found, even once the member
    saves an annotation of their own there (they are not an adjudicator: the task is
    still undecided). On a task the judge has decided, such a forgery is only ignored
    (the decision stands); one in a non-adjudicator's name hides nothing from a judge."""
    with Session(engine) as db:
        _link(db, TURNS)
        link = adjudication.links(db, 1)[0]
        _decide(db, 930, 7, ["anger"] * 4, "2026-12-01T10:00:00Z", updated_by=8)
        assert list(saved_over(db, [link], {"7"})) == [link.id]
        _decide(db, 932, 8, ["anger"] * 4, "2026-12-01T10:30:00Z")  # the member's own
        assert list(saved_over(db, [link], {"7"})) == [link.id]
        _decide(db, 931, 7, HONEST, "2026-12-01T09:00:00Z")  # the judge's own decision
        assert saved_over(db, [link], {"7"}) == {}
        got = adjudication.decisions(db, 1, ["7"])
    assert [got.turns[t]["emotion"] for t in TURNS] == HONEST
    assert _own_saved(engine)[930] is None
    with Session(engine) as db:
        _link(db, TURNS, clip="s1-c002", task=2, adjudication_task=501)
        other = next(x for x in adjudication.links(db, 1) if x.clip_id == "s1-c002")
        _decide(db, 933, 6, ["anger"] * 4, "2026-12-01T10:00:00Z", updated_by=8, task_id=501)
        assert saved_over(db, [other], {"7"}) == {}


def test_a_save_over_a_gold_annotation_does_not_hold_the_clip_back(engine: Engine) -> None:
    """Gold goes to the adjudication project only once its panel is complete. Annotator
    9 completes it; a member then saves 9's annotation unchanged (updated_by = the
    member): the panel stays complete."""
    clip = task(2, dialogue(4, "s1", 1), "s1")
    values = {i: {"emotion": e} for i, e in enumerate(AGREED)}

    def gold_listed() -> list[str]:
        with Session(engine) as db:
            got = adjudication.queue(
                db,
                1,
                TAX,
                {"emotion": 0.8},
                gold={"s1-c002": "s1"},
                gold_settled=lambda t, n: n >= 4,
            )
        return [c["clip"] for c in got if c["gold"]]

    with Session(engine) as db:
        mark_gold(db, 1, "s1", ["s1-c002"])
        db.commit()
        store.apply_event(db, annotation_event(TAX, 80, clip, 9, values), TAX)
    assert gold_listed() == ["s1-c002"]
    later = "2026-11-27T10:00:00.000000Z"
    with Session(engine) as db:
        event = annotation_event(TAX, 80, clip, 9, values, updated_by=8, updated_at=later)
        assert store.apply_event(db, event, TAX).ignored is None
    assert gold_listed() == ["s1-c002"]
    assert _own_saved(engine)[80] == "9"


def _gold_answered(db: Session, answer: list[str]) -> None:
    """Clip s1-c002 (task 2) marked gold, and judge 7's answer to it decided."""
    lines = dialogue(4, "s1", 1)
    mark_gold(db, 1, "s1", ["s1-c002"])
    adjudication.record_links(
        db,
        1,
        [
            {
                "clip": "s1-c002",
                "task": 2,
                "adjudication_project": ADJ,
                "adjudication_task": 503,
                "turns": [line["turn_id"] for line in lines],
                "disagreeing": [],
                "why": ["gold"],
            }
        ],
    )
    t = {**task(503, lines, "s1"), "project": ADJ}
    values = {i: {"emotion": e} for i, e in enumerate(answer)}
    store.upsert_task(db, ADJ, t)
    store.apply_event(db, annotation_event(TAX, 990, t, 7, values, project_id=ADJ), TAX)


def test_a_member_cannot_strip_or_spoil_anothers_gold_score(engine: Engine) -> None:
    """Member 8 posts an annotation on the gold clip in annotator 2's name and deletes
    it (to make 2 look like a decoy maker), and saves over annotator 3's annotation with
    wrong values: 2 is scored on all 4 turns; 3's overwritten values are not scored as
    3's (``saved_by_another``). Annotator 1 is scored as before."""
    answer = AGREED  # the panel agreed on task 2; gold says the same
    lines = dialogue(4, "s1", 1)
    wrong = {i: {"emotion": "disgust"} for i in range(4)}
    with Session(engine) as db:
        _gold_answered(db, answer)
        three = db.execute(
            text("SELECT id FROM annotation WHERE task_id = 2 AND annotator = '3'")
        ).scalar_one()
        forged = annotation_event(TAX, 981, task(2, lines, "s1"), 2, wrong, updated_by=8)
        store.apply_event(db, forged, TAX)
        store.apply_event(db, delete_event([981]), TAX)
        spoiled = annotation_event(
            TAX,
            three,
            task(2, lines, "s1"),
            3,
            wrong,
            updated_by=8,
            updated_at="2026-11-27T10:00:00.000000Z",
        )
        assert store.apply_event(db, spoiled, TAX).ignored is None
        card = {r["annotator"]: r for r in annotators(db, 1, TAX, adjudicators=["7"])["annotators"]}
    assert card["2"]["vs_gold"]["units"] == 4
    assert "several_annotations" not in card["2"]["vs_gold"]
    assert (card["3"]["vs_gold"]["units"], card["3"]["vs_gold"]["saved_by_another"]) == (0, 4)
    assert card["1"]["vs_gold"]["units"] == 4


def test_a_clip_resent_too_often_is_held_until_released(engine: Engine) -> None:
    limit = 2
    with Session(engine) as db:
        for _ in range(limit):
            resends.count(db, 1, ["s1-c001"])
        db.commit()
        assert resends.held(db, 1, limit) == {}
        assert not resends.release(db, 1, "s1-c001", limit)
        resends.count(db, 1, ["s1-c001", "s1-c002"])
        db.commit()
        assert resends.held(db, 1, limit) == {"s1-c001": limit + 1}
        assert resends.held(db, 2, limit) == {}
        assert resends.release(db, 1, "s1-c001", limit)
        assert resends.held(db, 1, limit) == {}
        resends.count(db, 1, ["s1-c001"])  # tampered with again after the release
        db.commit()
        assert resends.held(db, 1, limit) == {"s1-c001": limit + 2}
        for _ in range(limit + 1):
            resends.count(db, 1, ["s1-c003"])
        db.commit()
        assert sorted(resends.held(db, 1, limit)) == ["s1-c001", "s1-c003"]
        assert resends.release_all(db, 1, limit) == ["s1-c001", "s1-c003"]
        assert resends.held(db, 1, limit) == {} and resends.release_all(db, 1, limit) == []


def test_project_updates_of_the_adjudication_project_are_kept_for_the_sender(
    engine: Engine,
) -> None:
    """Label Studio's PROJECT_UPDATED webhook: for the adjudication project its settings
    are kept (a data password as set, never itself) until the sender's next check; for
    any other project it changes nothing."""
    from sqlmodel import select

    from api.models import ProjectReport

    project = {
        "id": ADJ,
        "label_config": "<View><Header value='Pick joy'/></View>",
        "model_version": "x",
        "task_data_password": "hunter2",
        "task_number": 4,
    }
    with Session(engine) as db:
        adjudication.record_project(db, 1, ADJ)
        for pid in (ADJ, 1):
            payload = {"action": "PROJECT_UPDATED", "project": {**project, "id": pid}}
            store.apply_event(db, payload, TAX)
        rows = db.exec(select(ProjectReport)).all()
    assert [(r.project_id, r.fields) for r in rows] == [
        (
            ADJ,
            {
                "label_config": project["label_config"],
                "model_version": "x",
                "task_data_password": "(set)",
            },
        )
    ]


def test_own_saves_are_kept_the_same_in_one_batch_as_one_by_one(engine: Engine) -> None:
    """The applier stores a batch of events at once: the judge's save, a member's
    unchanged save, the judge's new save and a member's change to it give what applying
    them one by one gives (compared on a second annotation id, applied singly)."""
    t = {**task(500, LINES, "s1"), "project": ADJ}

    def event(aid: int, who: int, saver: int, emotions: list[str], hour: int) -> Event:
        values = {i: {"emotion": e} for i, e in enumerate(emotions)}
        payload = annotation_event(
            TAX,
            aid,
            t,
            who,
            values,
            project_id=ADJ,
            updated_by=saver,
            updated_at=f"2026-12-01T1{hour}:00:00Z",
        )
        return store.parse_event(payload, TAX)

    steps = [(7, 7, HONEST), (7, 8, HONEST), (7, 7, AGREED), (7, 8, ["anger"] * 4)]
    with Session(engine) as db:
        store.upsert_task(db, ADJ, t)
        store.apply_events(db, [event(950, *s, hour) for hour, s in enumerate(steps)], TAX)
        db.commit()
        for hour, s in enumerate(steps):
            store.apply_events(db, [event(951, *s, hour)], TAX)
            db.commit()
        rows = {a.id: a for a in db.exec(select(Annotation)).all()}
    batch, single = rows[950], rows[951]
    assert (batch.own_saved_by, batch.own_hash) == (single.own_saved_by, single.own_hash)
    assert batch.own_saved_by == "7" and batch.own_hash != batch.result_hash
    assert saved_over_model(batch) and saved_over_model(single)


def _lock_free(engine: Engine) -> bool:
    """Whether another connection could take the sender's lock of project 1 now."""
    with engine.connect() as other:
        return bool(
            other.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtextextended('adjudicate1', 0))")
            ).scalar_one()
        )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_sender_holds_its_lock_through_its_commits(engine: Engine) -> None:
    """On PostgreSQL (SQLite serialises writers without advisory locks) one sender per
    project runs at a time, on every machine. The sender
    commits as it goes (the project check's findings before it deletes tasks in Label
    Studio; on SQLite, before every call to Label Studio), so its lock must outlast its
    transactions: while it works, and after the project check committed, another
    connection cannot take it; once it is done, it can. (Label Studio is stood in for by
    an object that answers the project as made and no predictions: what is tested is the
    store's lock, not Label Studio.)"""
    options = {"label_config": "<View/>", "maximum_annotations": 1}

    class Projects:
        def get(self, id: int) -> dict[str, object]:
            return dict(options)

    class Predictions:
        def list(self, project: int) -> list[object]:
            return []

    client = type("Client", (), {"projects": Projects(), "predictions": Predictions()})()
    with Session(engine) as db:
        adjudication.record_project(db, 1, ADJ)
        _link(db, TURNS)
        db.commit()
    with Session(engine) as db, held_lock(engine, "adjudicate1"):
        assert guard(db, client, 1, options, lambda: None) == []  # it commits
        assert not _lock_free(engine)
    assert _lock_free(engine)
    seen: list[bool] = []

    def settled(task: int, annotators: int) -> bool:
        seen.append(_lock_free(engine))
        return False

    with Session(engine) as db:
        db.exec(text("DELETE FROM adjudication_link"))  # type: ignore[call-overload]
        db.commit()
        strict = Settings().adjudication.model_copy(update={"thresholds": {"emotion": 0.99}})
        settings = Settings().model_copy(update={"adjudication": strict})
        send(db, None, settings, TAX, 1, dry_run=True, settled=settled)
    assert seen and not any(seen)
    assert _lock_free(engine)


def test_a_star_on_an_older_decision_does_not_make_it_the_latest(engine: Engine) -> None:
    """Judge 7 decides at 10:00, judge 9 at 11:00; at 12:00 a member saves 7's decision
    unchanged (a star): 9's decision is still the latest, and the guard's clock of the
    task still reads 9's own save."""
    from annotate.adjudication_guard import _received

    with Session(engine) as db:
        _link(db, TURNS, hash=adjudication.data_hash(task(500, LINES, "s1")["data"]))
        _decide(db, 970, 7, HONEST, "2026-12-01T10:00:00Z")
        _decide(db, 971, 9, AGREED, "2026-12-01T11:00:00Z")
        before = _received(db, [500])
        assert adjudication.decisions(db, 1, ["7", "9"]).clips["s1-c001"]["annotation"] == 971
        _decide(db, 970, 7, HONEST, "2026-12-01T12:00:00Z", updated_by=8)
        got = adjudication.decisions(db, 1, ["7", "9"])
        assert got.clips["s1-c001"]["annotation"] == 971
        assert [got.turns[t]["emotion"] for t in TURNS] == AGREED
        assert _received(db, [500]) == before


def test_an_id_reused_in_one_batch_starts_afresh(engine: Engine) -> None:
    """Label Studio on SQLite gives a new annotation the id of the last one deleted. When
    the judge's decision is deleted and a member's annotation in the judge's name gets
    its id in the same batch, the new one is live and is not the judge's own save."""
    t = {**task(500, LINES, "s1"), "project": ADJ}
    values = {i: {"emotion": e} for i, e in enumerate(HONEST)}
    first = annotation_event(TAX, 980, t, 7, values, project_id=ADJ)
    again = annotation_event(
        TAX,
        980,
        t,
        7,
        values,
        project_id=ADJ,
        updated_by=8,
        created_at="2026-11-27T09:00:00.000000Z",
        updated_at="2026-11-27T09:00:00.000000Z",
    )
    gone = {**delete_event([980]), "project": {"id": ADJ}}
    with Session(engine) as db:
        _link(db, TURNS, hash=adjudication.data_hash(t["data"]))
        store.upsert_task(db, ADJ, t)
        events = [store.parse_event(p, TAX) for p in (first, gone, again)]
        store.apply_events(db, events, TAX)
        db.commit()
        row = db.get(Annotation, 980)
        assert row is not None and not row.deleted
        assert (row.annotator, row.updated_by, row.own_saved_by) == ("7", "8", None)
        assert adjudication.decisions(db, 1, ["7"]).clips == {}
