"""Tasks pinned at import (SQLite and PostgreSQL): an annotation on a pinned task is read
against the data the import pushed, whatever a member made of the task's data since.

Expected turns come from the dialogue the test builds (the text the annotator labeled and
the turn id the import gave that text), never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api import store
from api.models import Judgement, PinnedTask, Task
from api.pins import changed_tasks, record_pins
from exporters import ExportOptions, export_label_studio_file, read_jsonl
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()


def _emotions(engine: Engine, task_id: int) -> dict[str, str]:
    with Session(engine) as db:
        rows = db.exec(
            select(Judgement).where(Judgement.task_id == task_id, Judgement.dimension == "emotion")
        ).all()
    return {j.turn_id: j.value for j in rows}


def _edited(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"id": 1, "project": 1, "data": {**data, **changes}}


def test_an_annotation_on_an_edited_task_lands_on_the_imported_turns(engine: Engine) -> None:
    """A member swaps the turn ids of the first two lines and moves the task to another
    clip: the annotator labels the lines they read (``line 0`` joy, ``line 1`` anger), and
    the store files each value under the turn id the import gave that line, in the clip
    the import pushed; the task is listed as changed."""
    pushed = task(1, dialogue(3))
    lines = pushed["data"]["dialogue"]
    imported = {line["text"]: line["turn_id"] for line in lines}
    with Session(engine) as db:
        assert record_pins(db, 1, {1: pushed["data"]}) == 1
        db.commit()
    swapped = [dict(line) for line in lines]
    swapped[0]["turn_id"], swapped[1]["turn_id"] = lines[1]["turn_id"], lines[0]["turn_id"]
    edited = _edited(pushed["data"], dialogue=swapped, clip_id="s1-c999")
    values = {0: {"emotion": "joy"}, 1: {"emotion": "anger"}}
    with Session(engine) as db:
        store.apply_event(db, annotation_event(TAX, 10, edited, 7, values), TAX)
    assert _emotions(engine, 1) == {imported["line 0"]: "joy", imported["line 1"]: "anger"}
    with Session(engine) as db:
        held = db.get(Task, 1)
        assert held is not None and held.clip_id == "s1-c001"
        assert held.data["dialogue"] == lines
        changed = changed_tasks(db, 1)
    assert [(c["task"], c["clip"]) for c in changed] == [(1, "s1-c001")]


def test_unedited_and_unpinned_tasks_are_read_as_they_come(engine: Engine) -> None:
    pinned, loose = task(1, dialogue(2)), task(2, dialogue(2, clip=1))
    with Session(engine) as db:
        record_pins(db, 1, {1: pinned["data"]})
        db.commit()
    values = {0: {"emotion": "fear"}}
    with Session(engine) as db:
        store.apply_event(db, annotation_event(TAX, 10, pinned, 7, values), TAX)
        # a task the import never pushed: its data, edited or not, is all there is
        odd = {**loose, "data": {**loose["data"], "clip_id": "made-by-hand"}}
        store.apply_event(db, annotation_event(TAX, 11, odd, 7, values), TAX)
        assert changed_tasks(db, 1) == []
        assert db.get(Task, 2).clip_id == "made-by-hand"  # type: ignore[union-attr]
    assert _emotions(engine, 1) == {pinned["data"]["dialogue"][0]["turn_id"]: "fear"}


def test_pushing_again_with_other_data_pins_it_anew(engine: Engine) -> None:
    """A re-import that changed the clip (new text) pins the new data and clears the
    changed mark; the same data again changes nothing."""
    first = task(1, dialogue(2))
    with Session(engine) as db:
        record_pins(db, 1, {1: first["data"]})
        db.commit()
        edited = _edited(first["data"], clip_id="elsewhere")
        store.apply_event(db, annotation_event(TAX, 10, edited, 7, {0: {"emotion": "joy"}}), TAX)
        assert len(changed_tasks(db, 1)) == 1
        assert record_pins(db, 1, {1: first["data"]}) == 0
        renewed = {**first["data"], "dialogue": [{**first["data"]["dialogue"][0], "text": "new"}]}
        assert record_pins(db, 1, {1: renewed}) == 1
        db.commit()
        assert changed_tasks(db, 1) == []


def test_a_deleted_tasks_pin_goes_with_it(engine: Engine) -> None:
    """Label Studio on SQLite gives a new task the id of the last one deleted: once task 1
    is deleted, a new task under id 1 is read as it comes, not against the old pin."""
    old, new = task(1, dialogue(2)), task(1, dialogue(2, clip=4))
    with Session(engine) as db:
        record_pins(db, 1, {1: old["data"]})
        db.commit()
        store.apply_event(
            db, {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 1}]}, TAX
        )
        store.apply_event(db, annotation_event(TAX, 10, new, 7, {0: {"emotion": "fear"}}), TAX)
        assert changed_tasks(db, 1) == []
        assert db.exec(select(PinnedTask)).all() == []
    assert _emotions(engine, 1) == {new["data"]["dialogue"][0]["turn_id"]: "fear"}


def test_the_offline_export_reads_a_label_studio_file_as_imported(
    engine: Engine, tmp_path: Path
) -> None:
    """A Label Studio JSON export of a task a member edited (two turn ids swapped, the
    clip renamed), exported offline with the service's store beside it: the rows carry
    the imported clip and each value sits on the turn id the import gave the line."""
    pushed = task(1, dialogue(3))
    lines = pushed["data"]["dialogue"]
    with Session(engine) as db:
        record_pins(db, 1, {1: pushed["data"]})
        db.commit()
    swapped = [dict(line) for line in lines]
    swapped[0]["turn_id"], swapped[1]["turn_id"] = lines[1]["turn_id"], lines[0]["turn_id"]
    edited = _edited(pushed["data"], dialogue=swapped, clip_id="s1-c999")
    values = {0: {"emotion": "joy"}, 1: {"emotion": "anger"}}
    annotations = [
        annotation_event(TAX, 10 + k, edited, who, values)["annotation"]
        for k, who in enumerate((7, 8))
    ]
    source = tmp_path / "export.json"
    source.write_text(json.dumps([{**edited, "annotations": annotations}]), encoding="utf-8")
    with Session(engine) as db:
        report = export_label_studio_file(
            source, TAX, tmp_path / "out", intended_from=db, options=ExportOptions(salt="s")
        )
    rows = {r["turn_id"]: r for r in read_jsonl(report.folder / "turns.jsonl")}
    assert {r["clip_id"] for r in rows.values()} == {"s1-c001"}
    assert rows[lines[0]["turn_id"]]["text"] == "line 0"
    assert rows[lines[0]["turn_id"]]["aggregates"]["emotion"]["majority"] == "joy"
    assert rows[lines[1]["turn_id"]]["aggregates"]["emotion"]["majority"] == "anger"
