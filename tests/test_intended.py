"""Intended emotions stay out of Label Studio's tasks: kept by the service, joined at export.

Unit level (no Label Studio): the tasks the importer builds, the store's table on SQLite and
PostgreSQL, the push that refuses to lose them, and both export paths joining them. The
test against a real Label Studio, read as an annotator account, is tests/test_blind.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from annotate.labelstudio import LabelStudioError, intended_turns, session_pusher
from api import store
from api.intended import IntendedError, intended_map, put_intended
from exporters import ExportOptions, export_dataset, export_label_studio_file, read_jsonl
from importers import load_session
from importers.clips import build_task, make_clips
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()


def _keys(value: Any) -> Iterator[str]:
    """Every key of every mapping in a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_tasks_carry_no_intended_emotion() -> None:
    session = load_session(EXAMPLE)
    assert session.intended, "the example session declares its intended arc"
    clips = make_clips(session, 40.0)
    for clip in clips:
        built = build_task(session, clip, "/data/x.wav", TAX, len(clips))
        assert not [k for k in _keys(built) if "intended" in k.lower()]
        for line in built["data"]["dialogue"]:
            assert set(line) <= {
                "speaker", "performer", "text", "start", "end", "turn_id", "turn_index",
                "prosody",
            }  # fmt: skip
    # what the push hands to the service instead: one entry per turn the arc names
    arc = {item.turn: item.emotion for item in session.intended}
    expected = {t.id: arc[t.index] for t in session.turns if t.index in arc}
    assert {t["turn_id"]: t["emotion"] for t in intended_turns(session)} == expected


def test_a_push_without_a_keeper_refuses_a_session_with_intended_emotions() -> None:
    session = load_session(EXAMPLE)
    push = session_pusher(None, 1, Path("/nonexistent"))  # type: ignore[arg-type]
    with pytest.raises(LabelStudioError, match="declares intended emotions"):
        push(session, [])
    kept: list[tuple[int, str, int]] = []
    push = session_pusher(
        None,  # type: ignore[arg-type]
        7,
        Path("/nonexistent"),
        keep_intended=lambda p, s, turns: kept.append((p, s, len(turns))),
    )
    with pytest.raises(AttributeError):  # the keeper ran first; then Label Studio (None)
        push(session, [])
    assert kept == [(7, session.id, len(session.intended))]


def test_the_store_keeps_a_session_s_intended_emotions_and_replaces_them(engine: Engine) -> None:
    with Session(engine) as db:
        turns = [
            {"turn_id": "a-t0", "turn_index": 0, "emotion": "joy"},
            {"turn_id": "a-t1", "turn_index": 1, "emotion": "anger"},
        ]
        assert put_intended(db, 1, "a", turns) == 2
        put_intended(db, 1, "b", [{"turn_id": "b-t0", "turn_index": 0, "emotion": "fear"}])
        put_intended(db, 2, "a", [{"turn_id": "a-t0", "turn_index": 0, "emotion": "sadness"}])
        db.commit()
        assert intended_map(db, 1) == {"a-t0": "joy", "a-t1": "anger", "b-t0": "fear"}
        # a re-import replaces the session's entries (a turn left out is gone)
        put_intended(db, 1, "a", [{"turn_id": "a-t1", "turn_index": 1, "emotion": "neutral"}])
        db.commit()
        assert intended_map(db, 1) == {"a-t1": "neutral", "b-t0": "fear"}
        assert intended_map(db, 2) == {"a-t0": "sadness"}
        for bad, where in (
            ([{"turn_id": "x", "turn_index": -1, "emotion": "joy"}], r"turns\[0\]\.turn_index"),
            ([{"turn_id": "", "turn_index": 0, "emotion": "joy"}], r"turns\[0\]\.turn_id"),
            ([{"turn_id": "x", "turn_index": 0, "emotion": 3}], r"turns\[0\]\.emotion"),
            (
                [
                    {"turn_id": "x", "turn_index": 0, "emotion": "joy"},
                    {"turn_id": "x", "turn_index": 1, "emotion": "joy"},
                ],
                r"turns\[1\]\.turn_id: 'x' is given twice",
            ),
        ):
            with pytest.raises(IntendedError, match=where):
                put_intended(db, 1, "a", bad)
            db.rollback()
        assert intended_map(db, 1) == {"a-t1": "neutral", "b-t0": "fear"}


def _events() -> list[dict[str, Any]]:
    """One clip of three turns, without intended emotions in its data, two annotators."""
    lines = dialogue(3, session_id="s0", clip=0)
    t = task(5, lines, session_id="s0")
    return [
        annotation_event(TAX, k, t, k, {i: {"emotion": "joy"} for i in range(3)}) for k in (1, 2)
    ]


def test_both_export_paths_join_the_intended_emotions(engine: Engine, tmp_path: Path) -> None:
    events = _events()
    turn_ids = [line["turn_id"] for line in events[0]["task"]["data"]["dialogue"]]
    arc = {turn_ids[0]: "joy", turn_ids[2]: "anger"}  # turn 1: none declared
    options = ExportOptions(real_ids=True)
    with Session(engine) as db:
        store.apply_events(db, [store.parse_event(e, TAX) for e in events])
        put_intended(
            db,
            1,
            "s0",
            [{"turn_id": t, "turn_index": i, "emotion": e} for i, (t, e) in enumerate(arc.items())],
        )
        db.commit()
        live = export_dataset(db, 1, TAX, tmp_path / "live", options=options, n_boot=20)
        rows = {r["turn_id"]: r for r in read_jsonl(live.files["jsonl"])}
        assert {t: r["intended_emotion"] for t, r in rows.items()} == {
            turn_ids[0]: "joy",
            turn_ids[1]: None,
            turn_ids[2]: "anger",
        }
        # offline: Label Studio's JSON export (no intended there), joined from the store
        source = tmp_path / "ls-export.json"
        data = events[0]["task"]["data"]
        annotations = [e["annotation"] for e in events]
        source.write_text(json.dumps([{"id": 5, "project": 1, "data": data,
                                       "annotations": annotations}]))  # fmt: skip
        offline = export_label_studio_file(
            source, TAX, tmp_path / "offline", intended_from=db, options=options, n_boot=20
        )
        alone = export_label_studio_file(
            source, TAX, tmp_path / "alone", options=options, n_boot=20
        )
    got = {r["turn_id"]: r["intended_emotion"] for r in read_jsonl(offline.files["jsonl"])}
    assert got == {t: r["intended_emotion"] for t, r in rows.items()}
    assert {r["intended_emotion"] for r in read_jsonl(alone.files["jsonl"])} == {None}
