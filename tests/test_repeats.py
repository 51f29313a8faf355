"""Hidden repeats in the store (SQLite and PostgreSQL): the copy, the second passes kept
out of every figure, and each annotator's agreement with themselves.

Expected values are counted from the labels the test gives, or computed with the
``krippendorff`` package on the two passes; a store that never saw the repeats is the
reference for "left out of every figure".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from api import reconcile, repeats, reports, store
from api.db import init_db, make_engine
from api.models import Judgement
from api.scorecards import annotators
from exporters import ExportOptions, export_dataset, read_jsonl
from importers.clips import content_hash
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, delete_event, dialogue, task

TAX = load_taxonomy()
FIRST = {  # annotator -> the original clip's emotions
    1: ["joy", "anger", "neutral", "fear"],
    2: ["joy", "sadness", "neutral", "fear"],
    3: ["neutral", "anger", "neutral", "fear"],
}
SECOND = {  # the hidden repeat: annotator 1 the same, annotator 2 differs on one turn
    1: ["joy", "anger", "neutral", "fear"],
    2: ["joy", "sadness", "joy", "fear"],
}


def _original() -> dict:
    t = task(1, dialogue(4, "s1", 0), "s1")
    t["data"].update(
        clip_start=0.0, clip_end=8.0, clip_index=0, clip_key="s1@0.000-8.000", title="S: clip 1"
    )
    return t


def _copy() -> tuple[dict, dict[str, str]]:
    copy, turns = repeats.repeat_copy(
        {"data": _original()["data"], "predictions": []}, 7, 40, content_hash
    )
    return {"id": 2, "data": copy["data"], "project": 1}, turns


def _store(url: str, *, with_repeats: bool) -> Engine:
    engine = make_engine(url)
    init_db(engine)
    original = _original()
    copy, turns = _copy()
    with Session(engine) as db:
        if with_repeats:
            repeats.keep_repeats(db, 1, "s1", [(copy["data"]["clip_id"], "s1-c000", turns)])
            db.commit()
        ids = 0
        for who, emotions in FIRST.items():
            ids += 1
            values = {i: {"emotion": e} for i, e in enumerate(emotions)}
            store.apply_event(db, annotation_event(TAX, ids, original, who, values), TAX)
        if with_repeats:
            for who, emotions in SECOND.items():
                ids += 1
                values = {i: {"emotion": e} for i, e in enumerate(emotions)}
                store.apply_event(db, annotation_event(TAX, ids, copy, who, values), TAX)
    return engine


@pytest.fixture
def stores(database_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    with_repeats = _store(database_url, with_repeats=True)
    without = _store(f"sqlite:///{tmp_path / 'plain.db'}", with_repeats=False)
    yield with_repeats, without
    with_repeats.dispose()
    without.dispose()


def test_the_copy_has_ordinary_ids_and_the_same_content() -> None:
    copy, turns = _copy()
    data, original = copy["data"], _original()["data"]
    assert data["clip_id"] == "s1-c007" and data["clip_index"] == 7
    assert [line["turn_id"] for line in data["dialogue"]] == [f"s1-t{i:05d}" for i in range(40, 44)]
    assert turns == {
        f"s1-t{40 + i:05d}": line["turn_id"] for i, line in enumerate(original["dialogue"])
    }
    assert data["clip_key"] != original["clip_key"] and data["clip_key"].startswith("s1@")
    assert [line["text"] for line in data["dialogue"]] == [
        line["text"] for line in original["dialogue"]
    ]
    assert data["audio"] == original["audio"] and data["title"] == original["title"]
    assert "repeat" not in repr(data).lower()


def test_the_copy_has_a_title_and_media_files_of_its_own(tmp_path: Path) -> None:
    """Nothing on the labeling screen points back at the original: the copy is "clip 8 of
    8" (not "clip 8 of 7"), and its audio is a copy of the original's file under the copy's
    name (same bytes, another URL)."""
    original = _original()["data"]
    (tmp_path / "s1-c000_0-8000.wav").write_bytes(b"RIFF-not-really-a-wav")
    original.update(audio="/data/local-files/?d=s1/s1-c000_0-8000.wav", title="S: clip 1 of 7")
    copy, _ = repeats.repeat_copy(
        {"data": original, "predictions": []}, 7, 40, content_hash, total=8, media_dir=tmp_path
    )
    data = copy["data"]
    assert data["title"] == "S: clip 8 of 8"
    assert data["audio"] == "/data/local-files/?d=s1/s1-c007_0-8000.wav"
    assert (tmp_path / "s1-c007_0-8000.wav").read_bytes() == b"RIFF-not-really-a-wav"
    retitled = repeats.retitle("S: clip 1 of 7 (0:00.0-0:08.0)", 0, 8)
    assert retitled == "S: clip 1 of 8 (0:00.0-0:08.0)"
    assert repeats.retitle("no number here", 3, 8) == "no number here"
    # a file that is not in the media folder (served from elsewhere) keeps its URL
    far = {**original, "audio": "https://media.example.org/s1/s1-c001_0-8000.wav"}
    kept, _ = repeats.repeat_copy(
        {"data": far, "predictions": []}, 7, 40, content_hash, total=8, media_dir=tmp_path
    )
    assert kept["data"]["audio"] == far["audio"]


def test_second_passes_count_in_no_figure_and_no_export(
    stores: tuple[Engine, Engine], tmp_path: Path
) -> None:
    with_repeats, without = stores
    got = {}
    for name, engine in (("repeats", with_repeats), ("plain", without)):
        with Session(engine) as db:
            count = db.exec(
                select(func.count()).select_from(Judgement).where(Judgement.project_id == 1)
            ).one()
            agreement = store.agreement(db, 1, "emotion", TAX)
            frame = reports.load(db, 1, "emotion", TAX)
            report = export_dataset(
                db, 1, TAX, tmp_path / name, options=ExportOptions(salt="s"), n_boot=50
            )
            rows = list(read_jsonl(report.files["jsonl"]))
            got[name] = (count, agreement["alpha"], len(frame), rows, store.projects(db))
    r, p = got["repeats"], got["plain"]
    assert r[0] == p[0] == 12  # 3 annotators x 4 turns: the 8 second-pass values are apart
    assert r[1] == pytest.approx(p[1]) and r[2] == p[2]
    assert [row["turn_id"] for row in r[3]] == [row["turn_id"] for row in p[3]]
    assert [row["labels"] for row in r[3]] == [row["labels"] for row in p[3]]
    assert r[4] == p[4] == [1]  # the second passes' negated project is no project


def test_each_annotator_is_compared_with_their_own_first_pass(
    stores: tuple[Engine, Engine],
) -> None:
    with_repeats, without = stores
    with Session(with_repeats) as db:
        card = {row["annotator"]: row["self"] for row in annotators(db, 1, TAX)["annotators"]}
    codes = {v: i for i, v in enumerate(TAX.emotion.values)}
    for who in (1, 2):
        same = sum(a == b for a, b in zip(FIRST[who], SECOND[who], strict=True))
        assert card[str(who)]["units"] == 4
        assert card[str(who)]["agreement"] == pytest.approx(same / 4)
    data = np.array([[codes[v] for v in FIRST[2]], [codes[v] for v in SECOND[2]]], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert card["2"]["alpha"] == pytest.approx(expected)
    assert card["3"]["alpha"] is None and "labeled no hidden repeat twice" in card["3"]["reason"]
    with Session(without) as db:
        plain = annotators(db, 1, TAX)["annotators"][0]["self"]
    assert "no hidden repeats in this project" in plain["reason"]
    # a second pass deleted in Label Studio leaves the comparison
    with Session(with_repeats) as db:
        store.apply_event(db, delete_event([5], project_id=1), TAX)  # annotator 2's repeat
        card = {row["annotator"]: row["self"] for row in annotators(db, 1, TAX)["annotators"]}
    assert card["2"]["alpha"] is None and card["1"]["units"] == 4


def test_repeats_are_told_apart_by_task_not_by_editable_data(database_url: str) -> None:
    """Once the import noted the copy's Label Studio task, a member who edits task data
    changes nothing: the copy with its clip_id set to the original's is still a second
    pass, and a real clip given the copy's clip_id still counts."""
    engine = make_engine(database_url)
    init_db(engine)
    original, (copy, turns) = _original(), _copy()
    with Session(engine) as db:
        repeats.keep_repeats(db, 1, "s1", [(copy["data"]["clip_id"], "s1-c000", turns)])
        assert repeats.record_tasks(db, 1, {copy["data"]["clip_id"]: copy["id"]}) == 1
        db.commit()
        assert repeats.record_tasks(db, 1, {copy["data"]["clip_id"]: 999}) == 0  # kept
        disguised = {**copy, "data": {**copy["data"], "clip_id": original["data"]["clip_id"]}}
        exposed = {**original, "data": {**original["data"], "clip_id": copy["data"]["clip_id"]}}
        values = {i: {"emotion": "joy"} for i in range(4)}
        store.apply_event(db, annotation_event(TAX, 1, disguised, 1, values), TAX)
        store.apply_event(db, annotation_event(TAX, 2, exposed, 2, values), TAX)
        db.commit()
        where = dict(db.exec(select(Judgement.annotation_id, Judgement.project_id)).all())
        assert where == {1: -1, 2: 1}
    engine.dispose()


def test_a_full_pull_removes_a_deleted_repeat_task(database_url: str) -> None:
    """A hidden repeat's task deleted in Label Studio while no webhook arrived: the full
    pull finds it gone (its rows are under the negated project) and deletes its second
    passes; the original's judgements stay."""
    engine = _store(database_url, with_repeats=True)
    original, (copy, _) = _original(), _copy()
    with Session(engine) as db:
        repeats.record_tasks(db, 1, {copy["data"]["clip_id"]: copy["id"]})
        db.commit()
        stored = db.exec(select(Judgement.project_id, func.count()).group_by(Judgement.project_id))
        assert dict(stored.all()) == {1: 12, -1: 8}
        # the original's annotations, as Label Studio would list them
        payloads = [
            annotation_event(TAX, i, original, who, {k: {"emotion": e} for k, e in enumerate(v)})
            for i, (who, v) in enumerate(FIRST.items(), start=1)
        ]
        live = [(original["id"], payloads)]
        report = reconcile.reconcile(db, 1, live, TAX, full=True, started=datetime.now(UTC))
        assert report.deleted_tasks == 1
        left = db.exec(select(Judgement.project_id, func.count()).group_by(Judgement.project_id))
        assert dict(left.all()) == {1: 12}
    engine.dispose()


def test_a_reimport_keeps_the_copies_it_made_whatever_share_or_key(database_url: str) -> None:
    """The store's turn map and Label Studio's copy must stay one: a re-import with another
    pick (another share or key) remakes exactly the stored copies under their ids; a
    session that grew into a copy's ids leaves that copy out with a warning."""
    engine = make_engine(database_url)
    init_db(engine)
    tasks = []
    for c in range(5):
        t = task(c + 1, dialogue(3, "s1", c), "s1")
        t["data"].update(
            clip_index=c,
            clip_id=f"s1-c{c:03d}",
            clip_start=8.0 * c,
            clip_end=8.0 * c + 8,
            title=f"clip {c + 1} of 5",
        )
        tasks.append(t)
    with Session(engine) as db:
        first, warnings = repeats.plan_copies(
            db, 1, "s1", tasks, [tasks[3], tasks[1]], 15, content_hash
        )
        assert warnings == []
        assert [(c["data"]["clip_id"], o) for c, o, _ in first] == [
            ("s1-c005", "s1-c003"),
            ("s1-c006", "s1-c001"),
        ]
        assert [sorted(m) for _, _, m in first] == [
            [f"s1-t{i:05d}" for i in range(15, 18)],
            [f"s1-t{i:05d}" for i in range(18, 21)],
        ]
        assert {c["data"]["title"] for c, _, _ in first} == {"clip 6 of 7", "clip 7 of 7"}
        repeats.keep_repeats(db, 1, "s1", [(c["data"]["clip_id"], o, m) for c, o, m in first])
        db.commit()
        again, warnings = repeats.plan_copies(db, 1, "s1", tasks, [tasks[0]], 15, content_hash)
        assert warnings == []
        assert [(c["data"], o, m) for c, o, m in again] == [(c["data"], o, m) for c, o, m in first]
        grown = [*tasks, task(9, dialogue(3, "s1", 5), "s1")]
        grown[-1]["data"].update(clip_index=5, clip_id="s1-c005")
        left, warnings = repeats.plan_copies(db, 1, "s1", grown, [], 18, content_hash)
        assert [c["data"]["clip_id"] for c, _, _ in left] == ["s1-c006"]
        assert any("s1-c005" in w and "grown" in w for w in warnings), warnings
    engine.dispose()
