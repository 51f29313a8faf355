"""Exports from the store (SQLite and PostgreSQL): rows, formats, filters, splits, data card."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api import store
from api.db import init_db, make_engine
from exporters import ExportOptions, export_dataset, export_label_studio_file, read_jsonl
from exporters.schema import hf_features
from schemas.taxonomy import load_taxonomy
from tests.conftest import missing
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
EMOTIONS = ["neutral", "joy", "sadness", "anger", "fear"]


def _events() -> list[dict]:
    """Four sessions with their own performers, 3 annotators; one clip disagrees a lot."""
    events = []
    ids = 0
    for k in range(4):
        session = f"s{k}"
        lines = dialogue(5, session_id=session, clip=k)
        for line in lines:
            line["performer"] = f"{line['performer']}-{session}"
        lines[0]["text"] = "=SUM(A1) said nobody"
        lines[1]["intended"] = "joy"
        t = task(k + 1, lines, session_id=session)
        for annotator in (1, 2, 3):
            values = {}
            for i in range(5):
                label = EMOTIONS[(i + k) % 5]
                if k == 3 and annotator == 3:
                    label = EMOTIONS[(i + 2) % 5]
                values[i] = {"emotion": label, "intensity": 1 + (i + annotator) % 5}
            ids += 1
            shifts = (
                [
                    {
                        "start": 2.0,
                        "end": 2.6,
                        "from": "neutral",
                        "to": "joy",
                        "trigger": "partner-induced",
                        "onset": "abrupt",
                        "cause": 0,  # linked to the clip's first turn
                    }
                ]
                if annotator < 3
                else []
            )
            events.append(
                annotation_event(
                    TAX,
                    ids,
                    t,
                    annotator,
                    values,
                    shifts=shifts,
                    updated_at=f"2026-11-2{k}T10:00:00Z",
                )
            )
    return events


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    init_db(eng)
    with Session(eng) as db:
        for payload in _events():
            store.apply_event(db, payload, TAX)
    yield eng
    eng.dispose()


def _export(engine: Engine, folder: Path, **kwargs) -> object:
    kwargs.setdefault("options", ExportOptions(salt="test salt"))
    with Session(engine) as db:
        return export_dataset(db, 1, TAX, folder, n_boot=50, **kwargs)


def test_all_formats_hold_the_same_rows(engine: Engine, tmp_path: Path) -> None:
    report = _export(engine, tmp_path / "out", formats=["jsonl", "csv", "parquet", "flat-csv"])
    acc = report.accounting
    assert acc.read == acc.exported == 4 * 3 * 5 * 2 and not acc.skipped
    rows = list(read_jsonl(report.files["jsonl"]))
    assert len(rows) == acc.turns == 20
    # JSONL loads with pandas, and back into the same records
    frame = pd.read_json(report.files["jsonl"], lines=True)
    assert list(frame["turn_id"]) == [r["turn_id"] for r in rows]
    # Parquet holds the same rows with native types (labels as a list of structs, missing
    # values as null, exported_at a timestamp); CSV holds nested values as JSON text
    parquet = pq.read_table(report.files["parquet"]).to_pylist()
    assert [_from_parquet(r) for r in parquet] == [_without_nulls(r) for r in rows]
    with open(report.files["csv"], newline="", encoding="utf-8") as handle:
        from_csv = list(csv.DictReader(handle))
    assert [r["turn_id"] for r in from_csv] == [r["turn_id"] for r in rows]
    assert from_csv[0]["text"] == "'=SUM(A1) said nobody"  # formula injection guarded
    assert json.loads(from_csv[3]["labels"]) == rows[3]["labels"]
    with open(report.files["flat-csv"], newline="", encoding="utf-8") as handle:
        flat_rows = list(csv.DictReader(handle))
    assert len(flat_rows) == 20 * 3
    assert {r["emotion"] for r in flat_rows} <= set(EMOTIONS)
    # the data card and the row schema, which every row satisfies
    folder = report.folder
    assert (folder / "README.md").read_text().startswith("# improv-emotion-shift 1.0.0")
    # annotators 1 and 2 mark one span per clip, both linked to the clip's first turn: 4
    # matched pairs, 4 the same turn; 4 turns on each side once -> chance 4/16, kappa 1
    card = " ".join((folder / "README.md").read_text().split())
    assert (
        "4 of 4 matched pairs with both links set name the same turn (1.000; Cohen's kappa "
        "over the turns 1.000); 0 matched pairs have one link only, 0 none." in card
    )
    assert (folder / "labels.png").exists() and (folder / "agreement.png").exists()
    schema = json.loads((folder / "schema.json").read_text())
    for row in rows:
        jsonschema.validate(row, schema)


def _without_nulls(value: object) -> object:
    """The value with null entries of its mappings left out, recursively."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _from_parquet(row: dict) -> object:
    """A Parquet row as its JSON line reads: labels keyed by annotator, the time as text."""
    row = dict(row)
    row["labels"] = {d.pop("annotator"): d for d in (dict(x) for x in row["labels"])}
    row["exported_at"] = row["exported_at"].isoformat(timespec="seconds")
    return _without_nulls(row)


def test_rows_keep_the_disagreement(engine: Engine, tmp_path: Path) -> None:
    report = _export(engine, tmp_path / "out", options=ExportOptions(real_ids=True))
    rows = {r["turn_id"]: r for r in read_jsonl(report.files["jsonl"])}
    agreed = rows["s0-t00000"]
    assert agreed["labels"] == {
        a: {"emotion": "neutral", "intensity": 1 + a_ % 5}
        for a, a_ in (("1", 1), ("2", 2), ("3", 3))
    }
    emotion = agreed["aggregates"]["emotion"]
    assert (emotion["majority"], emotion["n"], emotion["tied"]) == ("neutral", 3, [])
    assert emotion["soft"]["neutral"] == 1.0 and sum(emotion["soft"].values()) == 1.0
    assert emotion["dawid_skene"] == "neutral"
    intensity = agreed["aggregates"]["intensity"]
    assert (intensity["mean"], intensity["majority"]) == (3.0, None)  # 2, 3, 4: a tie
    assert intensity["std"] == pytest.approx(1.0)
    split = rows["s3-t00300"]  # annotator 3 disagrees on session s3
    assert split["aggregates"]["emotion"]["soft"] == pytest.approx(
        {**dict.fromkeys(TAX.emotion.values, 0.0), "anger": 2 / 3, "sadness": 1 / 3}
    )
    assert split["agreement"]["turn"]["emotion"] == pytest.approx(1 / 3)
    assert split["agreement"]["clip"]["emotion"] < agreed["agreement"]["clip"]["emotion"]
    assert rows["s0-t00001"]["intended_emotion"] == "joy"
    # shift fields: both definitions and the marked events
    second = rows["s0-t00001"]  # p02 after p01: adjacent differs, no same-speaker turn yet
    assert second["shift"]["shift_adjacent"] is True
    assert second["shift"]["shift_speaker"] is False
    third = rows["s0-t00002"]  # p01 again: neutral -> sadness
    assert third["shift"]["previous_same_speaker"] == "neutral"
    assert (third["shift"]["shift_speaker"], third["shift"]["from"], third["shift"]["to"]) == (
        True,
        "neutral",
        "sadness",
    )
    marked = rows["s0-t00000"]["shift"]["marked"] + rows["s0-t00001"]["shift"]["marked"]
    assert {
        "from": "neutral",
        "to": "joy",
        "trigger": "partner-induced",
        "onset": "abrupt",
        "trigger_turn": "s0-t00000",
        "annotators": 2,
    } in marked
    # both annotators who marked the span linked it to the first turn, none to the second
    assert rows["s0-t00000"]["shift"]["triggered"] == 2
    assert rows["s0-t00001"]["shift"]["triggered"] == 0


def test_pseudonyms_are_stable_and_real_ids_on_request(engine: Engine, tmp_path: Path) -> None:
    first = _export(engine, tmp_path / "a", options=ExportOptions(salt="pepper"))
    second = _export(engine, tmp_path / "b", options=ExportOptions(salt="pepper"))
    other = _export(engine, tmp_path / "c", options=ExportOptions(salt="salt"))
    names = [set(next(read_jsonl(r.files["jsonl"]))["labels"]) for r in (first, second, other)]
    assert names[0] == names[1] != names[2]
    assert not names[0] & {"1", "2", "3"}


def test_filters_count_what_they_skip(engine: Engine, tmp_path: Path) -> None:
    only = _export(engine, tmp_path / "a", options=ExportOptions(sessions=("s1",), salt="s"))
    assert only.accounting.turns == 5
    assert only.accounting.skipped == {"session not selected": 3 * 30}
    agreeing = _export(
        engine, tmp_path / "b", options=ExportOptions(min_clip_agreement=0.9, salt="s")
    )
    assert agreeing.accounting.skipped == {"clip agreement below the minimum": 30}
    recent = _export(
        engine,
        tmp_path / "c",
        options=ExportOptions(since=datetime(2026, 11, 22, tzinfo=UTC), salt="s"),
    )
    assert recent.accounting.skipped == {"outside the date range": 60}
    many = _export(engine, tmp_path / "d", options=ExportOptions(min_annotators=4, salt="s"))
    assert many.accounting.turns == 0
    assert many.accounting.skipped == {"fewer annotators than the minimum": 120}
    for report in (only, agreeing, recent, many):
        report.accounting.check()


def test_label_space_mapping(engine: Engine, tmp_path: Path) -> None:
    report = _export(
        engine, tmp_path / "out", options=ExportOptions(label_space="iemocap", salt="s")
    )
    rows = list(read_jsonl(report.files["jsonl"]))
    emotions = {v["emotion"] for r in rows for v in r["labels"].values()}
    assert "happiness" in emotions and "joy" not in emotions
    assert "happiness" in rows[1]["aggregates"]["emotion"]["soft"]
    with pytest.raises(ValueError, match="unknown label space 'goemotions'"):
        ExportOptions(label_space="goemotions", salt="s")


def test_splits_never_leak_sessions_or_performers(engine: Engine, tmp_path: Path) -> None:
    report = _export(engine, tmp_path / "out", fractions=(0.5, 0.25, 0.25), seed=3)
    rows = list(read_jsonl(report.files["jsonl"]))
    for key in ("session_id", "speaker"):
        splits: dict[str, set[str]] = {}
        for r in rows:
            splits.setdefault(r[key], set()).add(r["split"])
        assert all(len(s) == 1 for s in splits.values()), key
    assert set(report.splits) == {"train", "dev", "test"}


def test_offline_export_from_a_label_studio_json_export(engine: Engine, tmp_path: Path) -> None:
    tasks: dict[int, dict] = {}
    for payload in _events():
        t = tasks.setdefault(payload["task"]["id"], {**payload["task"], "annotations": []})
        t["annotations"].append(payload["annotation"])
    source = tmp_path / "project-1-export.json"
    source.write_text(json.dumps(list(tasks.values())))
    offline = export_label_studio_file(
        source, TAX, tmp_path / "offline", n_boot=50, options=ExportOptions(salt="x")
    )
    online = _export(engine, tmp_path / "online", options=ExportOptions(salt="x"))
    strip = ("exported_at",)

    def load(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in strip} for r in read_jsonl(path)]

    assert load(offline.files["jsonl"]) == load(online.files["jsonl"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": 1}]))
    with pytest.raises(ValueError, match="item 0 is not a task with an id and data"):
        export_label_studio_file(bad, TAX, tmp_path / "x", options=ExportOptions(salt="x"))


def _datasets() -> object:
    try:
        import datasets
    except ImportError:
        missing("the datasets package is not installed (pip install -e '.[dev]')")
    return datasets


def test_hugging_face_datasets_loads_jsonl_and_parquet_typed(
    engine: Engine, tmp_path: Path
) -> None:
    datasets = _datasets()
    from datasets import List, Value

    report = _export(engine, tmp_path / "out", formats=["jsonl", "parquet"])
    rows = list(read_jsonl(report.files["jsonl"]))
    cache = str(tmp_path / "hf-cache")
    jsonl = datasets.load_dataset(
        "json",
        data_files=str(report.files["jsonl"]),
        split="train",
        cache_dir=cache,
        features=hf_features(TAX, jsonl=True),
    )
    parquet = datasets.load_dataset(
        "parquet", data_files=str(report.files["parquet"]), split="train", cache_dir=cache
    )
    assert len(jsonl) == len(parquet) == 20
    for loaded in (jsonl, parquet):
        features = loaded.features
        assert features["start"] == Value("float64")
        assert features["n_annotators"] == Value("int64")
        assert features["aggregates"]["intensity"]["majority"] == Value("int64")
        assert features["aggregates"]["emotion"]["soft"]["joy"] == Value("float64")
        assert features["shift"]["types"] == List(Value("string"))
        assert features["shift"]["shift_speaker"] == Value("bool")
    labels = parquet.features["labels"]
    assert labels.feature["annotator"] == Value("string")
    assert labels.feature["intensity"] == Value("int64")
    assert parquet.features["exported_at"] == Value("timestamp[ms, tz=UTC]")
    first = parquet[0]
    assert {x["annotator"]: x["intensity"] for x in first["labels"]} == {
        a: v["intensity"] for a, v in rows[0]["labels"].items()
    }
    assert first["intended_emotion"] is None and first["labels"][0]["valence"] is None
    assert jsonl[0]["labels"] == rows[0]["labels"]
    assert jsonl[0]["aggregates"]["intensity"]["mean"] == rows[0]["aggregates"]["intensity"]["mean"]


def test_duckdb_and_pandas_read_the_parquet_without_parsing(engine: Engine, tmp_path: Path) -> None:
    try:
        import duckdb
    except ImportError:
        missing("the duckdb package is not installed (pip install -e '.[dev]')")
    report = _export(engine, tmp_path / "out", formats=["jsonl", "parquet"])
    rows = list(read_jsonl(report.files["jsonl"]))
    path = str(report.files["parquet"])
    con = duckdb.connect()
    kinds = dict(
        con.execute(f"select column_name, column_type from (describe '{path}')").fetchall()
    )
    assert kinds["labels"].startswith("STRUCT(annotator VARCHAR, emotion VARCHAR, intensity BIGINT")
    assert kinds["labels"].endswith("[]")
    assert kinds["exported_at"] == "TIMESTAMP WITH TIME ZONE"
    assert kinds["aggregates"].startswith("STRUCT(emotion STRUCT(n BIGINT")
    ((total, joy),) = con.execute(
        f"select sum(l.intensity), sum(aggregates.emotion.soft.joy) "
        f"from (select unnest(labels) as l, aggregates from '{path}')"
    ).fetchall()
    assert total == sum(v["intensity"] for r in rows for v in r["labels"].values())
    assert joy == pytest.approx(
        sum(r["aggregates"]["emotion"]["soft"]["joy"] for r in rows) * 3  # once per label
    )
    frame = pd.read_parquet(path)
    assert str(frame["n_annotators"].dtype) == "int64"
    assert str(frame["exported_at"].dtype).startswith("datetime64") and "UTC" in str(
        frame["exported_at"].dtype
    )
    cell = frame["aggregates"].iloc[0]
    assert isinstance(cell, dict) and cell["intensity"]["majority"] is None  # a tie
    assert [x["intensity"] for x in frame["labels"].iloc[0]] == [
        v["intensity"] for v in rows[0]["labels"].values()
    ]
    for column in frame.columns:
        texts = [v for v in frame[column] if isinstance(v, str)]
        assert not any(t.startswith(("{", "[")) for t in texts), column


def test_workers_write_the_same_bytes(engine: Engine, tmp_path: Path) -> None:
    options = ExportOptions(salt="w", include_cancelled=True)
    one = _export(engine, tmp_path / "one", options=options, formats=["jsonl", "csv"])
    two = _export(engine, tmp_path / "two", options=options, formats=["jsonl", "csv"], workers=2)

    def text(report: object, name: str) -> str:
        stamp = '"exported_at": "'
        lines = report.files[name].read_text(encoding="utf-8").splitlines()
        return "\n".join(line.split(stamp)[0] if stamp in line else line for line in lines)

    assert text(two, "jsonl") == text(one, "jsonl")
    assert text(two, "csv").count("\n") == text(one, "csv").count("\n") == 20
    assert two.accounting == one.accounting and two.splits == one.splits
    card_one = (one.folder / "README.md").read_text().splitlines()[4:]
    assert (two.folder / "README.md").read_text().splitlines()[4:] == card_one


@pytest.fixture
def recorded(database_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Path, Path]]:
    """A store of two generated sessions imported for real: clips cut into a media root."""
    from importers import ImportOptions, prepare_session
    from tests.builders import write_session

    sessions, media = tmp_path / "sessions", tmp_path / "media"
    eng = make_engine(database_url)
    init_db(eng)
    task_id = annotation_id = 0
    with Session(eng) as db:
        for k, name in enumerate(("cafe", "bus")):
            folder = write_session(sessions / name, n_turns=6, rng=np.random.default_rng(k))
            _, tasks = prepare_session(folder, media, TAX, ImportOptions(max_seconds=5.0))
            for built in tasks:
                task_id += 1
                t = {"id": task_id, "data": built["data"], "project": 1}
                for annotator in (1, 2):
                    annotation_id += 1
                    values = {
                        i: {"emotion": EMOTIONS[(i + annotator) % 2]}
                        for i in range(len(t["data"]["dialogue"]))
                    }
                    store.apply_event(
                        db, annotation_event(TAX, annotation_id, t, annotator, values), TAX
                    )
    yield eng, sessions, media
    eng.dispose()


def test_turn_audio_from_the_session_recording_or_the_clip(
    recorded: tuple[Engine, Path, Path], tmp_path: Path
) -> None:
    engine, sessions, media = recorded
    options = ExportOptions(salt="a", turn_audio=True, media_root=media, sessions_root=sessions)
    report = _export(engine, tmp_path / "a", options=options, formats=["jsonl", "csv", "parquet"])
    rows = list(read_jsonl(report.files["jsonl"]))
    assert len(rows) == 12 and report.accounting.audio_written == 12
    assert not report.accounting.audio_skipped
    assert list(rows[0])[list(rows[0]).index("media_end") + 1] == "turn_audio"
    for row in rows:
        assert row["turn_audio"] == f"audio/{row['session_id']}/{row['turn_id']}.wav"
        info = sf.info(report.folder / row["turn_audio"])
        assert (info.channels, info.samplerate, info.subtype) == (1, 16_000, "PCM_16")
        assert info.frames == round(row["end"] * 16_000) - round(row["start"] * 16_000)
        # the very samples of the session's recording over [start, end)
        recording, rate = sf.read(sessions / row["session_id"] / "audio.wav", dtype="int16")
        cut, _ = sf.read(report.folder / row["turn_audio"], dtype="int16")
        assert np.array_equal(cut, recording[round(row["start"] * rate) : round(row["end"] * rate)])
    assert pq.read_table(report.files["parquet"]).column("turn_audio").to_pylist() == [
        r["turn_audio"] for r in rows
    ]
    assert (
        "Turn audio (`audio/<session>/<turn>.wav`, mono 16-bit): 12 files"
        in (report.folder / "README.md").read_text()
    )

    # without the session folders: cut from the clips Label Studio serves, same audio
    from_clips = _export(
        engine, tmp_path / "b", options=ExportOptions(salt="a", turn_audio=True, media_root=media)
    )
    assert from_clips.accounting.audio_written == 12
    for row in rows:
        a, _ = sf.read(report.folder / row["turn_audio"], dtype="int16")
        b, _ = sf.read(from_clips.folder / row["turn_audio"], dtype="int16")
        assert abs(len(a) - len(b)) <= 1  # clip offsets are rounded to the sample
        n = min(len(a), len(b))
        assert np.abs(a[:n].astype(int) - b[:n].astype(int)).max() <= 1 or any(
            np.array_equal(a[s : n - 1 + s], b[: n - 1]) for s in (0, 1)
        )

    # media missing: rows stay, without a file, and the reason is counted
    (media / "bus").rename(media / "elsewhere")
    missing = _export(
        engine, tmp_path / "c", options=ExportOptions(salt="a", turn_audio=True, media_root=media)
    )
    got = list(read_jsonl(missing.files["jsonl"]))
    assert len(got) == 12 and missing.accounting.audio_written == 6
    assert missing.accounting.audio_skipped == {"turn audio: media not found": 6}
    assert {r["session_id"] for r in got if r["turn_audio"] is None} == {"bus"}
    missing.accounting.check()


def test_turn_audio_needs_a_media_folder() -> None:
    with pytest.raises(ValueError, match="turn_audio needs media_root="):
        ExportOptions(salt="a", turn_audio=True)


def test_cli_export_with_turn_audio_offline(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from annotate import cli
    from annotate.config import load_settings
    from importers import ImportOptions, prepare_session
    from tests.builders import write_session
    from tests.conftest import write_config

    config = write_config(tmp_path)
    media = load_settings(config).media_path
    folder = write_session(tmp_path / "sessions" / "cafe", n_turns=5)
    _, built = prepare_session(folder, media, TAX, ImportOptions(max_seconds=60.0))
    tasks = []
    for task_id, b in enumerate(built, start=1):
        t = {"id": task_id, "data": b["data"], "project": 7}
        values = {i: {"emotion": "joy"} for i in range(len(t["data"]["dialogue"]))}
        annotation = annotation_event(TAX, task_id, t, 1, values, project_id=7)["annotation"]
        tasks.append({**t, "annotations": [annotation]})
    source = tmp_path / "export.json"
    source.write_text(json.dumps(tasks))
    out = tmp_path / "out"
    cli.state._settings = None  # a fresh command line
    result = CliRunner().invoke(
        cli.app,
        [
            "--config",
            str(config),
            "export",
            "--from-label-studio",
            str(source),
            "--out",
            str(out),
            "--turn-audio",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "turn audio files 5; without one: none" in result.output
    rows = list(read_jsonl(out / "turns.jsonl"))
    assert [(out / r["turn_audio"]).is_file() for r in rows] == [True] * 5


def test_cli_export_says_what_the_service_has_not_applied_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events kept in the inbox and not applied (no applier runs here) are waited for,
    then reported as left out; the export still has everything applied."""
    from sqlmodel import Session
    from typer.testing import CliRunner

    from annotate import cli
    from api import store
    from api.db import init_db, make_engine
    from api.inbox import Inbox, transaction
    from tests.conftest import write_config

    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = write_config(tmp_path, service={"database_url": url})
    engine = make_engine(url, immediate=True)
    init_db(engine)
    t = task(1, dialogue(3))
    with Session(engine) as db:
        for annotator in (1, 2):
            values = {i: {"emotion": "joy"} for i in range(3)}
            store.apply_event(db, annotation_event(TAX, annotator, t, annotator, values), TAX)
    late = annotation_event(TAX, 3, t, 3, {i: {"emotion": "anger"} for i in range(3)})
    inbox = Inbox(engine)
    transaction(inbox.engine, lambda db: inbox.keep(db, [(json.dumps(late).encode(), None)]))
    inbox.dispose()
    engine.dispose()
    monkeypatch.setattr(cli, "EXPORT_WAIT", 0.2)
    cli.state._settings = None  # a fresh command line
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.app, ["--config", str(config), "export", "--project", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "1 events the service acknowledged are not applied yet" in said
    card = " ".join((out / "README.md").read_text(encoding="utf-8").split())
    assert "Freshness: 1 events the agreement service had acknowledged were not applied" in card
    rows = list(read_jsonl(out / "turns.jsonl"))
    assert len(rows) == 3
    assert [r["n_annotators"] for r in rows] == [2, 2, 2]  # the late one is not applied
    assert all(r["annotation_ids"] == [1, 2] for r in rows)
