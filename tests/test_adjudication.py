"""Adjudication in the store (SQLite and PostgreSQL): the queue, the task an adjudicator
gets, the links, which decisions count, and ``adjudicated`` in every export format.

Expected values are counted from the events the test builds (which turns split, who gave
what) and alpha comes from the ``krippendorff`` package, never from the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import krippendorff
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from annotate.adjudicate import MARK, adjudication_task
from api import adjudication, store
from api.db import init_db, make_engine
from api.members import record_users
from api.models import Annotation
from exporters import ExportOptions, export_dataset, read_jsonl
from schemas.codec import decode_rows
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
ADJ = 99  # the adjudication project's id
SPLIT_TURN = 1
PANEL = {  # annotator -> emotions of the split clip's 4 turns
    1: ["joy", "anger", "neutral", "fear"],
    2: ["joy", "sadness", "neutral", "fear"],
    3: ["joy", "fear", "neutral", "fear"],
}
AGREED = ["neutral", "joy", "joy", "sadness"]
EMPTY = {d.name: None for d in TAX.dimensions}  # an adjudicated turn's dimensions left empty


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    init_db(eng)
    split, agreed = task(1, dialogue(4, "s1", 0), "s1"), task(2, dialogue(4, "s1", 1), "s1")
    with Session(eng) as db:
        ids = 0
        for annotator, emotions in PANEL.items():
            for t, labels in ((split, emotions), (agreed, AGREED)):
                ids += 1
                values = {i: {"emotion": e, "intensity": 3} for i, e in enumerate(labels)}
                store.upsert_task(db, 1, t)
                store.apply_event(db, annotation_event(TAX, ids, t, annotator, values), TAX)
        db.commit()
    yield eng
    eng.dispose()


def _alpha(rows: list[list[str]]) -> float:
    codes = {v: i for i, v in enumerate(TAX.emotion.values)}
    data = np.array([[codes[v] for v in r] for r in rows], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def test_the_queue_holds_the_split_clip_with_its_split_turn(engine: Engine) -> None:
    with Session(engine) as db:
        queue = adjudication.queue(db, 1, TAX, {"emotion": 0.8})
    assert [c["clip"] for c in queue] == ["s1-c001"]
    entry = queue[0]
    assert entry["alpha"] == pytest.approx(_alpha(list(PANEL.values())))
    assert entry["disagreeing_turns"] == [dialogue(4, "s1", 0)[SPLIT_TURN]["turn_id"]]
    assert entry["annotators"] == 3 and entry["sent"] is None
    assert entry["why"] == ["emotion alpha below 0.80"]
    with Session(engine) as db, pytest.raises(ValueError, match="unknown dimension"):
        adjudication.queue(db, 1, TAX, {"mood": 0.5})
    # a panel not complete yet is held back from automatic sending
    with Session(engine) as db:
        assert adjudication.queue(db, 1, TAX, {"emotion": 0.8}, settled=lambda t, n: n >= 4) == []


def test_the_adjudication_task_shows_every_label_and_leaves_the_split_turn_open(
    engine: Engine,
) -> None:
    with Session(engine) as db:
        entry = adjudication.queue(db, 1, TAX, {"emotion": 0.8})[0]
        judgements = db.exec(store.live_judgements(1)).all()
        source = task(1, dialogue(4, "s1", 0), "s1")["data"]
    made = adjudication_task(
        source,
        [j for j in judgements if j.task_id == 1],
        TAX,
        entry["disagreeing_turns"],
        entry["why"],
    )
    data = made["data"]
    # the dialogue keeps the turn ids; only the split turn is marked
    assert [line["turn_id"] for line in data["dialogue"]] == [
        line["turn_id"] for line in source["dialogue"]
    ]
    marked = [i for i, line in enumerate(data["dialogue"]) if line["speaker"].startswith(MARK)]
    assert marked == [SPLIT_TURN]
    panel = data["panel"].splitlines()
    # each annotator's label of the split turn side by side, under a pseudonym
    split_line = next(line for line in panel if line.startswith(f"{MARK} Turn {SPLIT_TURN + 1}"))
    shown = panel[panel.index(split_line) + 1]
    for k, emotions in enumerate(PANEL.values(), start=1):
        assert f"A{k} {emotions[SPLIT_TURN]}" in shown
    assert "intended" not in data
    # the pre-annotation: every turn region, unanimous values on the others, none on the split
    result = made["predictions"][0]["result"]
    decoded = decode_rows(
        {"id": 1, "task": 1, "completed_by": 1, "result": result}, data, TAX
    ).judgements
    prefilled = {(r[3], r[4]): r[5] for r in decoded}  # (turn, dimension) -> value
    turns = [line["turn_id"] for line in source["dialogue"]]
    unanimous = {
        (turns[i], "emotion"): PANEL[1][i]
        for i in range(4)
        if len({e[i] for e in PANEL.values()}) == 1
    }
    unanimous |= {(t, "intensity"): "3" for t in turns if t != turns[SPLIT_TURN]}
    assert prefilled == unanimous


def _link(db: Session, turns: list[str], **extra: object) -> None:
    adjudication.record_links(
        db,
        1,
        [
            {
                "clip": "s1-c001",
                "task": 1,
                "adjudication_project": ADJ,
                "adjudication_task": 500,
                "turns": turns,
                "disagreeing": [turns[SPLIT_TURN]],
                "why": ["emotion alpha below 0.80"],
                **extra,
            }
        ],
    )


def _decide(
    db: Session, annotation_id: int, who: int, emotions: list[str], when: str, **kw: object
) -> None:
    lines = kw.pop("lines", None) or dialogue(4, "s1", 0)
    task_id = int(kw.pop("task_id", 500))  # type: ignore[call-overload]
    extra = kw.pop("extra_turn", False)
    if extra:  # a member edited the task's data: a turn the clip never had
        lines = [*lines, {**lines[0], "turn_id": "forged-turn", "text": "forged"}]
        emotions = [*emotions, "joy"]
    t = {**task(task_id, lines, "s1"), "project": ADJ}
    values = {i: {"emotion": e} for i, e in enumerate(emotions)}
    payload = annotation_event(
        TAX, annotation_id, t, who, values, project_id=ADJ, updated_at=when, **kw
    )
    store.upsert_task(db, ADJ, t)
    store.apply_event(db, payload, TAX)
    db.commit()


def test_only_the_adjudicators_latest_decision_counts(engine: Engine) -> None:
    turns = [line["turn_id"] for line in dialogue(4, "s1", 0)]
    with Session(engine) as db:
        _link(db, turns)
        _link(db, turns)  # a second sender at the same moment: one link
        assert len(adjudication.links(db, 1)) == 1
        record_users(db, [{"id": 7, "email": "Judge@Example.org"}])
        db.commit()
        first = ["joy", "anger", "neutral", "fear"]
        final = ["joy", "sadness", "neutral", "fear"]
        _decide(db, 900, 7, first, "2026-12-01T10:00:00Z")
        _decide(db, 901, 8, ["fear"] * 4, "2026-12-01T12:00:00Z")  # not an adjudicator
        _decide(db, 902, 7, final, "2026-12-01T11:00:00Z", extra_turn=True)
        _decide(db, 903, 7, ["fear"] * 4, "2026-12-01T13:00:00Z", was_cancelled=True)
        for who in (["judge@example.org"], ["7"]):
            got = adjudication.decisions(db, 1, who)
            assert {t: v["emotion"] for t, v in got.turns.items()} == dict(
                zip(turns, final, strict=True)
            )
            assert got.clips["s1-c001"]["annotation"] == 902
            assert got.ignored == {
                "annotation by someone not in adjudication.adjudicators": 1,
                "older decision on the same clip": 1,
                "annotation skipped by the adjudicator": 1,
                "value on a turn the clip did not have when sent": 1,
            }
        nobody = adjudication.decisions(db, 1, [])
        assert (
            nobody.turns == {}
            and nobody.ignored["annotation by someone not in adjudication.adjudicators"] == 4
        )
        status = adjudication.status(db, 1, ["judge@example.org", "late@example.org"], _url)
        assert (status["sent"], status["decided"], status["waiting"]) == (1, 1, 0)
        assert status["adjudicators"] == [
            {"configured": "judge@example.org", "user": "7", "ambiguous": False},
            {"configured": "late@example.org", "user": None, "ambiguous": False},
        ]
        assert status["data"][0]["turns"][turns[SPLIT_TURN]] == {"emotion": "sadness"}


def test_a_member_cannot_decide_in_an_adjudicators_name(engine: Engine) -> None:
    """Label Studio takes ``completed_by`` from the caller and lets any member edit a
    task's data: a decision counts only when Label Studio recorded the adjudicator as the
    one who last saved it, while the task's data is what was sent, and with a value on
    the clip's turns; an e-mail two accounts hold resolves to no one."""
    lines = dialogue(4, "s1", 0)
    turns = [line["turn_id"] for line in lines]
    sent = {**task(500, lines, "s1")["data"]}
    with Session(engine) as db:
        _link(db, turns, hash=adjudication.data_hash(sent))
        record_users(db, [{"id": 7, "email": "judge@example.org"}])
        db.commit()
        honest = ["joy", "sadness", "neutral", "fear"]
        _decide(db, 910, 7, honest, "2026-12-01T10:00:00Z")
        # newer, in the judge's name, saved by member 8 (a POST with completed_by=7, or a
        # PATCH of the judge's own annotation: either way Label Studio's updated_by is 8)
        _decide(db, 911, 7, ["anger"] * 4, "2026-12-01T11:00:00Z", updated_by=8)
        _decide(db, 912, 7, ["anger"] * 4, "2026-12-01T12:00:00Z", updated_by=None)
        got = adjudication.decisions(db, 1, ["judge@example.org"])
        assert [got.turns[t]["emotion"] for t in turns] == honest
        assert got.clips["s1-c001"]["annotation"] == 910
        assert got.ignored == {
            "annotation in an adjudicator's name last saved by someone else "
            "(Label Studio's updated_by)": 2
        }

        # a member swaps two turn ids in the task's data; the judge's next save is decoded
        # with the swapped ids: not taken, and the earlier decision is not either (the task
        # no longer holds what was sent)
        swapped = [dict(line) for line in lines]
        swapped[0]["turn_id"], swapped[1]["turn_id"] = turns[1], turns[0]
        _decide(db, 913, 7, honest, "2026-12-01T13:00:00Z", lines=swapped)
        got = adjudication.decisions(db, 1, ["judge@example.org"])
        assert got.turns == {} and got.clips == {}
        assert got.ignored["adjudication task changed in Label Studio after it was sent"] == 1
        status = adjudication.status(db, 1, ["judge@example.org"], _url)
        assert (status["decided"], status["waiting"]) == (0, 1)

        # the data put back as sent: the task stays tainted (the judge may have decided on
        # what the member showed), whatever is saved on it later
        _decide(db, 914, 7, honest, "2026-12-01T14:00:00Z")
        got = adjudication.decisions(db, 1, ["judge@example.org"])
        assert got.clips == {}
        assert got.ignored["adjudication task changed in Label Studio after it was sent"] == 1
        status = adjudication.status(db, 1, ["judge@example.org"], _url)
        assert status["tampered"] == 1 and status["data"][0]["tampered_at"] is not None

        # the QA lead deletes the task; the clip is sent again as task 501
        adjudication.forget_links(db, 1, {ADJ: []})
        db.commit()
        again = task(501, lines, "s1")["data"]
        _link(db, turns, hash=adjudication.data_hash(again), adjudication_task=501)
        _decide(db, 915, 7, [], "2026-12-01T15:00:00Z", task_id=501)
        got = adjudication.decisions(db, 1, ["judge@example.org"])
        assert got.clips == {}  # a decision that gives no value: not decided
        assert got.ignored["decision with no value on the clip's turns"] == 1
        _decide(db, 916, 7, honest, "2026-12-01T16:00:00Z", task_id=501)
        assert (
            adjudication.decisions(db, 1, ["judge@example.org"]).clips["s1-c001"]["annotation"]
            == 916
        )
        assert adjudication.status(db, 1, ["judge@example.org"], _url)["tampered"] == 0

        # a second account signs up with the judge's address in other case
        record_users(db, [{"id": 9, "email": "Judge@Example.org"}])
        db.commit()
        assert adjudication.adjudicator_ids(db, ["judge@example.org"]) == {}
        assert adjudication.decisions(db, 1, ["judge@example.org"]).clips == {}
        status = adjudication.status(db, 1, ["judge@example.org", "7"], _url)
        assert status["adjudicators"] == [
            {"configured": "judge@example.org", "user": None, "ambiguous": True},
            {"configured": "7", "user": "7", "ambiguous": False},
        ]
        assert status["decided"] == 1  # named by id, the judge still counts


def test_a_task_decides_one_clip(engine: Engine) -> None:
    """Two clips linked to one adjudication task (a member made a task under another
    clip's key): the second link is refused."""
    turns = [line["turn_id"] for line in dialogue(4, "s1", 0)]
    with Session(engine) as db:
        _link(db, turns)
        new = adjudication.record_links(
            db,
            1,
            [
                {
                    "clip": "s1-c002",
                    "task": 2,
                    "adjudication_project": ADJ,
                    "adjudication_task": 500,
                    "turns": turns,
                    "disagreeing": [],
                    "why": ["emotion alpha below 0.80"],
                }
            ],
        )
        assert new == 0
        assert [r.clip_id for r in adjudication.links(db, 1)] == ["s1-c001"]


def _url(project: int, task_id: int) -> str:
    return f"https://ls.example.org/projects/{project}/data?task={task_id}"


def test_exports_carry_adjudicated_beside_the_majority(engine: Engine, tmp_path: Path) -> None:
    turns = [line["turn_id"] for line in dialogue(4, "s1", 0)]
    final = ["joy", "sadness", "neutral", "fear"]
    with Session(engine) as db:
        _link(db, turns)
        _decide(db, 900, 7, final, datetime(2026, 12, 1, tzinfo=UTC).isoformat())
        report = export_dataset(
            db,
            1,
            TAX,
            tmp_path / "out",
            formats=["jsonl", "parquet", "csv"],
            options=ExportOptions(salt="s", adjudicators=("7",)),
            n_boot=50,
        )
    rows = list(read_jsonl(report.files["jsonl"]))
    by_turn = {r["turn_id"]: r for r in rows}
    for turn, emotion in zip(turns, final, strict=True):
        assert by_turn[turn]["adjudicated"] == EMPTY | {"emotion": emotion}
    split = by_turn[turns[SPLIT_TURN]]
    assert split["aggregates"]["emotion"]["majority"] is None  # three different labels
    assert all(r["adjudicated"] is None for r in rows if r["clip_id"] == "s1-c002")
    table = pq.read_table(report.files["parquet"])
    kind = table.schema.field("adjudicated").type
    assert pa.types.is_struct(kind)
    assert kind.field("intensity").type == pa.int64()
    assert kind.field("emotion").type == pa.string()
    parquet = {r["turn_id"]: r["adjudicated"] for r in table.to_pylist()}
    assert parquet[turns[SPLIT_TURN]] == EMPTY | {"emotion": "sadness"}
    csv_text = report.files["csv"].read_text(encoding="utf-8")
    assert '""emotion"": ""sadness""' in csv_text
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "Adjudicated: 4 turns of 1 clips carry `adjudicated`" in card
    schema = json.loads((tmp_path / "out" / "schema.json").read_text(encoding="utf-8"))
    assert "adjudicated" in schema["properties"]
    # without the adjudicator in the settings, nothing is taken
    with Session(engine) as db:
        plain = export_dataset(
            db, 1, TAX, tmp_path / "plain", options=ExportOptions(salt="s"), n_boot=50
        )
    assert all(r["adjudicated"] is None for r in read_jsonl(plain.files["jsonl"]))


def test_settled_check_follows_the_overlap_policy() -> None:
    from api.adjudication_routes import settled_check

    fixed = SimpleNamespace(
        overlap=SimpleNamespace(enabled=False),
        label_studio=SimpleNamespace(maximum_annotations=3),
    )
    check = settled_check(None, fixed, 1)  # type: ignore[arg-type]
    assert not check(1, 2) and check(1, 3)


# -- gold clips ----------------------------------------------------------------------------


def test_gold_is_picked_by_a_keyed_hash_and_kept_once_marked(engine: Engine) -> None:
    from api.gold import gold_clips, mark_gold, pick_gold

    keys = [f"s{k}@{k}.000-{k + 4}.000" for k in range(2000)]
    picked = pick_gold(keys, 0.3, "secret")
    # a binomial(2000, 0.3) count lies within 5 standard deviations of 600
    assert abs(len(picked) - 600) < 5 * (2000 * 0.3 * 0.7) ** 0.5
    assert picked == pick_gold(keys, 0.3, "secret")  # every machine picks the same
    assert set(pick_gold(keys, 0.1, "secret")) <= set(picked)  # a smaller share: a subset
    assert picked != pick_gold(keys, 0.3, "another key")  # unguessable without the key
    with pytest.raises(ValueError, match="gold share"):
        pick_gold(keys, 1.5, "k")
    with Session(engine) as db:
        assert mark_gold(db, 1, "s1", ["s1-c002"]) == 1
        assert mark_gold(db, 1, "s1", ["s1-c001", "s1-c002"]) == 1  # a re-import adds none
        db.commit()
        assert gold_clips(db, 1) == {"s1-c002": "s1"}


def test_a_gold_clip_waits_for_its_panel_and_its_task_is_blind(engine: Engine) -> None:
    from api.gold import mark_gold

    with Session(engine) as db:
        mark_gold(db, 1, "s1", ["s1-c002", "s1-c009"])  # c009: nobody has labeled it yet
        db.commit()
        queue = adjudication.queue(
            db, 1, TAX, {"emotion": 0.8}, gold={"s1-c002": "s1", "s1-c009": "s1"}
        )
        judgements = [j for j in db.exec(store.live_judgements(1)).all() if j.task_id == 2]
    by_clip = {c["clip"]: c for c in queue}
    assert set(by_clip) == {"s1-c001", "s1-c002", "s1-c009"}
    assert by_clip["s1-c009"]["task"] is None and by_clip["s1-c009"]["gold"]
    assert by_clip["s1-c002"]["task"] == 2 and by_clip["s1-c002"]["gold"]
    assert not by_clip["s1-c001"]["gold"]
    # automatic sending waits for a complete panel, but not for gold
    with Session(engine) as db:
        held = adjudication.queue(
            db, 1, TAX, {"emotion": 0.8}, settled=lambda t, n: False, gold={"s1-c009": "s1"}
        )
    assert [c["clip"] for c in held] == ["s1-c009"]
    # the service sends gold only once the panel is complete: every member can open the
    # adjudication project, where the expert's answer will be
    for complete, expected in ((False, []), (True, ["s1-c002"])):
        with Session(engine) as db:
            got = adjudication.queue(
                db,
                1,
                TAX,
                {"emotion": 0.8},
                gold={"s1-c002": "s1", "s1-c009": "s1"},
                gold_settled=lambda t, n, c=complete: c,
            )
        assert sorted(c["clip"] for c in got if c["gold"]) == expected
    # a fourth annotator is wanted; member 8 posts an annotation in user 9's name (Label
    # Studio records 8 as its updated_by): the panel is not complete on that strength
    clip = task(2, dialogue(4, "s1", 1), "s1")
    fourth = {i: {"emotion": e} for i, e in enumerate(AGREED)}

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
        store.apply_event(db, annotation_event(TAX, 70, clip, 9, fourth, updated_by=8), TAX)
    assert gold_listed() == []
    with Session(engine) as db:  # user 9 saves one of their own
        store.apply_event(db, annotation_event(TAX, 71, clip, 9, fourth), TAX)
    assert gold_listed() == ["s1-c002"]
    made = adjudication_task(
        task(2, dialogue(4, "s1", 1), "s1")["data"],
        judgements,
        TAX,
        [],
        by_clip["s1-c002"]["why"],
        blind=True,
    )
    assert "A1" not in made["data"]["panel"] and "gold" not in repr(made).lower()
    assert not any(line["speaker"].startswith(MARK) for line in made["data"]["dialogue"])
    kinds = {r["from_name"] for r in made["predictions"][0]["result"]}
    assert kinds == {"turn"}  # turn regions only: nothing pre-filled


def test_annotators_are_scored_against_the_experts_answer_on_gold_clips(engine: Engine) -> None:
    from api.gold import mark_gold
    from api.scorecards import annotators

    turns = [line["turn_id"] for line in dialogue(4, "s1", 1)]
    answer = ["neutral", "joy", "sadness", "sadness"]  # the agreed clip's panel: AGREED
    with Session(engine) as db:
        mark_gold(db, 1, "s1", ["s1-c002"])
        adjudication.record_links(
            db,
            1,
            [
                {
                    "clip": "s1-c002",
                    "task": 2,
                    "adjudication_project": ADJ,
                    "adjudication_task": 501,
                    "turns": turns,
                    "disagreeing": [],
                    "why": ["gold: an expert answers it blind"],
                }
            ],
        )
        t = {**task(501, dialogue(4, "s1", 1), "s1"), "project": ADJ}
        values = {i: {"emotion": e} for i, e in enumerate(answer)}
        store.upsert_task(db, ADJ, t)
        store.apply_event(db, annotation_event(TAX, 950, t, 7, values, project_id=ADJ), TAX)
        db.commit()
        card = annotators(db, 1, TAX, adjudicators=["7"])
        none = annotators(db, 1, TAX)
        # an annotator copies the answer after the gold clip went to the adjudication
        # project, where any member can read it: those values are left out of vs_gold
        cheat = db.exec(
            select(Annotation).where(Annotation.project_id == 1, Annotation.task_id == 2)
        ).first()
        assert cheat is not None
        cheater = str(cheat.annotator)
        copied = {i: {"emotion": e} for i, e in enumerate(answer)}
        edit = annotation_event(
            TAX,
            cheat.id,
            task(2, dialogue(4, "s1", 1), "s1"),
            int(cheater),
            copied,
            updated_at="2099-01-01T00:00:00Z",
            action="ANNOTATION_UPDATED",
        )
        store.apply_event(db, edit, TAX)
        db.commit()
        after = {
            r["annotator"]: r for r in annotators(db, 1, TAX, adjudicators=["7"])["annotators"]
        }
    late = after[cheater]["vs_gold"]
    assert (late["units"], late["edited_after_gold_shown"]) == (0, 4)
    assert all(
        r["vs_gold"]["units"] == 4 and "edited_after_gold_shown" not in r["vs_gold"]
        for who, r in after.items()
        if who != cheater
    )
    assert card["gold"] == {
        "turns": 4,
        "ground_truth": 0,
        "expert": 4,
        "ground_truth_refused": 0,
    }
    equal = sum(a == b for a, b in zip(AGREED, answer, strict=True)) / 4  # counted: 3 of 4
    for row in card["annotators"]:
        assert row["vs_gold"]["units"] == 4
        assert row["vs_gold"]["agreement"] == pytest.approx(equal)
    assert none["gold"]["expert"] == 0
    assert all(row["vs_gold"]["alpha"] is None for row in none["annotators"])


def test_a_resent_gold_clip_keeps_its_first_showing(engine: Engine) -> None:
    """A member deletes a gold clip's adjudication task after reading the answer; the clip
    is sent again (a day later here). Values they saved between the two sends are still
    left out of ``vs_gold``: the clock starts at the first showing."""
    from api.gold import mark_gold
    from api.models import AdjudicationLink, GoldClip
    from api.scorecards import annotators

    lines = dialogue(4, "s1", 1)
    turns = [line["turn_id"] for line in lines]
    answer = ["neutral", "joy", "sadness", "sadness"]

    def send(adj_task: int) -> None:
        adjudication.record_links(
            db,
            1,
            [
                {
                    "clip": "s1-c002",
                    "task": 2,
                    "adjudication_project": ADJ,
                    "adjudication_task": adj_task,
                    "turns": turns,
                    "disagreeing": [],
                    "why": ["gold"],
                }
            ],
        )

    with Session(engine) as db:
        mark_gold(db, 1, "s1", ["s1-c002"])
        send(501)
        first = db.exec(select(GoldClip.shown_at)).one()
        assert first is not None
        adjudication.forget_links(db, 1, {ADJ: []})  # the task is gone from Label Studio
        db.commit()
        send(502)
        link = db.exec(select(AdjudicationLink)).one()
        assert link.adjudication_task_id == 502
        link.sent_at = datetime(2099, 1, 2, tzinfo=UTC)
        db.add(link)
        db.commit()
        assert db.exec(select(GoldClip.shown_at)).one() == first
        t = {**task(502, lines, "s1"), "project": ADJ}
        values = {i: {"emotion": e} for i, e in enumerate(answer)}
        store.upsert_task(db, ADJ, t)
        store.apply_event(db, annotation_event(TAX, 960, t, 7, values, project_id=ADJ), TAX)
        db.commit()
        cheat = db.exec(
            select(Annotation).where(Annotation.project_id == 1, Annotation.task_id == 2)
        ).first()
        assert cheat is not None
        cheater = str(cheat.annotator)
        edit = annotation_event(
            TAX,
            cheat.id,
            task(2, lines, "s1"),
            int(cheater),
            {i: {"emotion": e} for i, e in enumerate(answer)},
            updated_at="2099-01-01T00:00:00Z",  # between the two sends
            action="ANNOTATION_UPDATED",
        )
        store.apply_event(db, edit, TAX)
        db.commit()
        rows = {r["annotator"]: r for r in annotators(db, 1, TAX, adjudicators=["7"])["annotators"]}
    late = rows[cheater]["vs_gold"]
    assert (late["units"], late["edited_after_gold_shown"]) == (0, 4)


def test_decoy_annotations_on_a_gold_clip_are_not_scored(engine: Engine) -> None:
    """An annotator makes a second annotation on a gold clip before its answer shows (two
    guesses), then deletes the guess that turned out wrong: their values on that clip are
    left out of ``vs_gold`` and counted; the others' are scored as before."""
    from api.gold import mark_gold
    from api.scorecards import annotators
    from tests.payloads import delete_event

    lines = dialogue(4, "s1", 1)
    answer = ["neutral", "joy", "sadness", "sadness"]
    with Session(engine) as db:
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
        store.apply_event(db, annotation_event(TAX, 970, t, 7, values, project_id=ADJ), TAX)
        first = db.exec(
            select(Annotation).where(
                Annotation.project_id == 1, Annotation.task_id == 2, Annotation.annotator == "1"
            )
        ).one()
        first_id = first.id
        # the decoy: annotator 1's second annotation of the clip, saved before it was shown
        decoy = annotation_event(
            TAX, 971, task(2, lines, "s1"), 1, values, updated_at="2000-01-01T00:00:00Z"
        )
        store.apply_event(db, decoy, TAX)
        store.apply_event(db, delete_event([first_id]), TAX)  # the wrong guess, deleted
        card = {r["annotator"]: r for r in annotators(db, 1, TAX, adjudicators=["7"])["annotators"]}
    assert (card["1"]["vs_gold"]["units"], card["1"]["vs_gold"]["several_annotations"]) == (0, 4)
    for who in ("2", "3"):
        assert card[who]["vs_gold"]["units"] == 4
        assert "several_annotations" not in card[who]["vs_gold"]


def test_automatic_sending_never_holds_up_the_applier(tmp_path: Path, engine: Engine) -> None:
    """A Label Studio that takes the connection and never answers: ``tick`` returns while
    the round still waits on its own thread, and no second round starts meanwhile."""
    import socket

    from annotate.config import load_settings, with_local_secrets
    from api.adjudication_routes import AutoAdjudicator
    from tests.conftest import write_config

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # connections complete in the kernel's backlog; nothing ever answers
    try:
        config = write_config(
            tmp_path,
            label_studio={"url": f"http://127.0.0.1:{hung.getsockname()[1]}", "token": "t"},
            adjudication={"auto": True, "every_seconds": 0.01},
        )
        auto = AutoAdjudicator(with_local_secrets(load_settings(config)), TAX)
        assert auto.tick(engine) is True
        assert auto._thread is not None and auto._thread.is_alive()
        assert auto.tick(engine) is False  # the first round is still waiting
    finally:
        hung.close()
    auto._thread.join(timeout=120)
    assert not auto._thread.is_alive() and auto.last_error is not None


def test_ground_truth_counts_as_gold_only_from_an_adjudicator(engine: Engine) -> None:
    """Any member can mark an annotation ground truth in Label Studio: with adjudicators
    configured, only an adjudicator's own (and last saved by them) is gold."""
    from api.scorecards import annotators

    lines = dialogue(4, "s1", 0)
    answer = ["joy", "anger", "neutral", "fear"]
    with Session(engine) as db:
        for annotation_id, who, saver in ((960, 8, 8), (961, 7, 8), (962, 7, 7)):
            t = {**task(1, lines, "s1"), "project": 1}
            values = {i: {"emotion": e} for i, e in enumerate(answer)}
            payload = annotation_event(TAX, annotation_id, t, who, values, updated_by=saver)
            payload["annotation"]["ground_truth"] = True
            store.apply_event(db, payload, TAX)
            db.commit()
            card = annotators(db, 1, TAX, adjudicators=["7"])
            trusting = annotators(db, 1, TAX)
            # the member's own, then one in the adjudicator's name saved by the member:
            # refused; the adjudicator's own: gold
            counted = 4 if annotation_id == 962 else 0
            assert card["gold"]["ground_truth"] == counted, annotation_id
            assert card["gold"]["ground_truth_refused"] == 4 * (annotation_id - 959) - counted
            assert trusting["gold"]["ground_truth"] == 4  # no adjudicators: trusted as before


def test_task_keys_need_the_services_secret(tmp_path: Path) -> None:
    """Adjudication task keys are an HMAC (sha256) of the project and the clip key with
    ``service.api_key``, checked against :mod:`hmac` directly; with no key set, sending
    refuses rather than key tasks anyone could compute."""
    import hashlib
    import hmac

    from annotate.adjudicate import task_key
    from annotate.config import ConfigError, load_settings
    from tests.conftest import write_config

    def _settings(root: Path, name: str, key: str) -> Any:
        (root / name).mkdir()
        return load_settings(write_config(root / name, service={"api_key": key}))

    keyed = _settings(tmp_path, "a", "k-1")
    expected = hmac.new(b"k-1", b"adjudication|7|s1-c001", hashlib.sha256).hexdigest()
    assert task_key(keyed, 7, "s1-c001") == f"adj-{expected[:24]}"
    other = _settings(tmp_path, "b", "k-2")
    assert task_key(other, 7, "s1-c001") != task_key(keyed, 7, "s1-c001")
    bare = _settings(tmp_path, "c", "")
    with pytest.raises(ConfigError, match=r"service\.api_key"):
        task_key(bare, 7, "s1-c001")
