"""Trigger links: a shift span linked to the turn that caused it, from the labeling
screen's relation to the store, the exports and agreement among matched shifts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from annotate.agreement.links import link_agreement
from annotate.simulate import simulate_values
from api import reports, store
from api.models import ShiftEventRow
from schemas.codec import decode_annotation, encode_annotation
from schemas.errors import CodecError
from schemas.label_config import TRIGGER_RELATION, label_config
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
LINES = dialogue(4)  # turn ids s1-t00000 .. s1-t00003
DATA = task(5, LINES)["data"]  # audio_offset 10 s


def _span(region: str, start: float = 1.0, end: float = 2.0) -> dict[str, Any]:
    return {
        "id": region,
        "from_name": "shift",
        "to_name": "audio",
        "type": "labels",
        "value": {"start": start, "end": end, "channel": 0, "labels": [TAX.shift.title]},
    }


def _relation(a: str, b: str, **extra: Any) -> dict[str, Any]:
    return {"from_id": a, "to_id": b, "type": "relation", "direction": "right", **extra}


def _decode(result: list[dict[str, Any]]) -> Any:
    return decode_annotation({"id": 1, "task": 5, "completed_by": 9, "result": result}, DATA, TAX)


# --- the label config ----------------------------------------------------------------------


def test_config_declares_the_trigger_relation_and_validates() -> None:
    xml = label_config(TAX)
    relations = ET.fromstring(xml).findall("Relations")
    assert len(relations) == 1
    assert [r.get("value") for r in relations[0]] == [TRIGGER_RELATION] == ["caused by"]
    LabelInterface(xml)  # the SDK's parser (the server's own check runs in the browser test)


# --- the codec -----------------------------------------------------------------------------


def test_encoded_cause_decodes_to_the_turn_id() -> None:
    result = encode_annotation(
        LINES, {}, TAX, [{"start": 3.0, "end": 4.0, "from": "joy", "to": "anger", "cause": 1}]
    )
    relation = [i for i in result if i["type"] == "relation"]
    assert relation == [
        {
            "from_id": "shift0",
            "to_id": "turn1",
            "type": "relation",
            "direction": "right",
            "labels": ["caused by"],
        }
    ]
    decoded = _decode(result)
    assert decoded.skipped == {}
    (shift,) = decoded.shifts
    assert (shift.start, shift.end, shift.trigger_turn) == (13.0, 14.0, "s1-t00001")


def test_encode_refuses_a_cause_outside_the_clip() -> None:
    with pytest.raises(CodecError, match="cause 4"):
        encode_annotation(LINES, {}, TAX, [{"start": 0.0, "end": 1.0, "cause": 4}])


def test_a_span_without_a_link_has_no_trigger_turn() -> None:
    (shift,) = _decode([*encode_annotation(LINES, {}, TAX), _span("a")]).shifts
    assert shift.trigger_turn is None


def test_the_ui_relation_drawn_either_way_and_without_label() -> None:
    # as Label Studio 1.23.2 serialized it in the browser: no labels, direction right
    turns = encode_annotation(LINES, {}, TAX)
    result = [*turns, _span("7byL2"), _relation("7byL2", "turn0")]
    assert [s.trigger_turn for s in _decode(result).shifts] == ["s1-t00000"]
    # drawn from the turn to the span, the turn is still the cause
    result = [*turns, _span("k"), _relation("turn3", "k", direction="left")]
    assert [s.trigger_turn for s in _decode(result).shifts] == ["s1-t00003"]


def test_bad_links_are_counted_and_leave_the_span() -> None:
    turns = encode_annotation(LINES, {}, TAX)
    outside = {**turns[0], "id": "far", "value": {**turns[0]["value"], "start": "9"}}
    result = [
        *turns,
        outside,
        _span("a", 1.0, 2.0),
        _span("b", 5.0, 6.0),
        _relation("a", "nowhere"),  # a region the annotation does not hold
        _relation("a", "b"),  # two spans
        _relation("turn0", "turn1"),  # two turns
        _relation("a", "a"),  # a span to itself
        _relation("b", "far"),  # a turn region outside the task
        _relation("a", "turn2", labels=["contradicts"]),  # not the trigger relation
        _relation("b", "turn1"),  # the one good link of b
        _relation("b", "turn2"),  # a second cause for b
        _relation("b", "turn1"),  # the same link again: nothing new
    ]
    decoded = _decode(result)
    assert decoded.skipped == {
        "trigger link not between a shift and a turn": 4,
        "turn outside the task": 1,
        "unknown relation label": 1,
        "second trigger link for a shift": 1,
    }
    assert sorted((s.start, s.trigger_turn) for s in decoded.shifts) == [
        (11.0, None),
        (15.0, "s1-t00001"),
    ]


# --- the store and agreement ---------------------------------------------------------------


def _apply(engine: Engine, annotation_id: int, annotator: int, shifts: list[dict]) -> None:
    payload = annotation_event(TAX, annotation_id, task(5, LINES), annotator, {}, shifts=shifts)
    with Session(engine) as db:
        store.apply_event(db, payload, TAX)


def test_the_store_keeps_the_link_and_replaces_it_on_update(engine: Engine) -> None:
    _apply(engine, 10, 7, [{"start": 2.0, "end": 3.0, "cause": 0}, {"start": 5.0, "end": 6.0}])
    with Session(engine) as db:
        rows = db.exec(select(ShiftEventRow).order_by(ShiftEventRow.start)).all()
    assert [(r.start, r.trigger_turn) for r in rows] == [(12.0, "s1-t00000"), (15.0, None)]
    update = annotation_event(
        TAX,
        10,
        task(5, LINES),
        7,
        {},
        shifts=[{"start": 2.0, "end": 3.0, "cause": 2}],
        action="ANNOTATION_UPDATED",
        updated_at="2026-11-26T11:00:00.000000Z",
    )
    with Session(engine) as db:
        store.apply_event(db, update, TAX)
        rows = db.exec(select(ShiftEventRow)).all()
    assert [(r.start, r.trigger_turn) for r in rows] == [(12.0, "s1-t00002")]


def test_link_agreement_by_hand() -> None:
    pairs = [
        ("t1", "t1"),
        ("t1", "t1"),
        ("t2", "t2"),
        ("t2", "t1"),
        ("t3", None),
        (None, "t2"),
        (None, None),
    ]
    r = link_agreement(pairs)
    # four pairs with both links, three the same turn
    assert (r.n, r.same, r.one_linked, r.none_linked) == (4, 3, 2, 1)
    assert r.share == 0.75
    # first rater: t1 x2, t2 x2; second: t1 x3, t2 x1 -> chance (2*3 + 2*1) / 16 = 0.5
    assert r.kappa == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    assert link_agreement([]).share is None
    assert link_agreement([("t1", "t1")]).kappa is None  # chance agreement 1


def test_the_service_report_counts_links_among_matched_shifts(engine: Engine) -> None:
    # three annotators; times in clip seconds (the 10 s offset adds to all alike)
    _apply(
        engine,
        1,
        1,
        [
            {"start": 1.0, "end": 2.0, "cause": 0},  # s1
            {"start": 4.0, "end": 5.0, "cause": 1},  # s2
            {"start": 20.0, "end": 21.0, "cause": 3},  # matches nobody
        ],
    )
    _apply(
        engine,
        2,
        2,
        [
            {"start": 1.2, "end": 2.2, "cause": 0},  # s1, same turn as annotator 1
            {"start": 4.3, "end": 5.3, "cause": 2},  # s2, another turn
        ],
    )
    _apply(
        engine,
        3,
        3,
        [
            {"start": 0.9, "end": 1.9},  # s1, no link
            {"start": 4.1, "end": 5.1, "cause": 1},  # s2
        ],
    )
    with Session(engine) as db:
        figures = reports.shifts(db, 1, tolerance=1.0)
    # matched pairs, by hand: s1 and s2 for each of the pairs (1,2), (1,3), (2,3)
    # s1: (t0,t0) (t0,-) (t0,-); s2: (t1,t2) (t1,t1) (t2,t1)
    assert figures["matched_pairs"] == 6
    links = figures["trigger_links"]
    assert (links["n"], links["same_turn"], links["one_linked"], links["none_linked"]) == (
        4,
        2,
        2,
        0,
    )
    assert links["share"] == 0.5
    # first rater t0, t1, t1, t2; second t0, t2, t1, t1 -> chance (1 + 2*2 + 1*1) / 16
    chance = (1 * 1 + 2 * 2 + 1 * 1) / 16
    assert links["kappa"] == pytest.approx((0.5 - chance) / (1 - chance))


def test_simulated_annotators_link_partner_induced_shifts_to_the_partners_turn() -> None:
    lines = dialogue(4)
    for line, performer in zip(lines, ("p01", "p02", "p01", "p01"), strict=True):
        line["performer"] = performer
    intended = {0: "neutral", 1: "joy", 2: "anger", 3: "sadness"}
    # p01 shifts at turn 2 (neutral -> anger) and turn 3 (anger -> sadness); the partner's
    # last turn before either is turn 1
    seen = set()
    for seed in range(20):
        _, shifts = simulate_values(lines, intended, TAX, np.random.default_rng(seed), noise=0.0)
        assert [(s["from"], s["to"]) for s in shifts] == [
            ("neutral", "anger"),
            ("anger", "sadness"),
        ]
        for s in shifts:
            assert s["cause"] == (1 if s["trigger"] == "partner-induced" else None)
            seen.add(s["cause"])
    assert seen == {1, None}
