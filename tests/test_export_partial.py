"""Partial labels: turns labeled by one annotator only, with values nobody else gave.

Two annotators label turns 0-5 of a clip; one of them also labels turn 8, with an emotion
and an intensity nobody used on turns 0-5. Both export paths (from the store, and offline
from a Label Studio JSON export) must write the rows and the data card together, and the
card's alpha must equal the ``krippendorff`` package's on the same judgements.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api import store
from api.db import init_db, make_engine
from exporters import ExportOptions, export_dataset, export_label_studio_file, read_jsonl
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
SHARED = ["neutral", "joy", "sadness", "joy", "anger", "neutral"]  # turns 0-5


def partial_events() -> list[dict]:
    """Annotators 1 and 2 on turns 0-5; annotator 1 also on turn 8 (fear, intensity 5)."""
    t = task(1, dialogue(9))
    events = []
    for annotator in (1, 2):
        values: dict[int, dict[str, str | int]] = {}
        for i, label in enumerate(SHARED):
            other = "sadness" if annotator == 2 and i == 4 else label
            values[i] = {"emotion": other, "intensity": 1 + (i + annotator) % 3}
        if annotator == 1:
            values[8] = {"emotion": "fear", "intensity": 5}
        events.append(annotation_event(TAX, annotator, t, annotator, values))
    return events


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    init_db(eng)
    with Session(eng) as db:
        for payload in partial_events():
            store.apply_event(db, payload, TAX)
    yield eng
    eng.dispose()


def label_studio_file(events: list[dict], path: Path) -> Path:
    """The events as Label Studio's JSON export: tasks with their annotations."""
    tasks: dict[int, dict] = {}
    for payload in events:
        t = tasks.setdefault(payload["task"]["id"], {**payload["task"], "annotations": []})
        t["annotations"].append(payload["annotation"])
    path.write_text(json.dumps(list(tasks.values())), encoding="utf-8")
    return path


def expected_alpha(events: list[dict], dimension: str, level: str) -> float:
    """Krippendorff's alpha of one dimension, by the krippendorff package, from the events."""
    codes = {v: float(i) for i, v in enumerate(TAX.emotion.values)}
    turns = [line["turn_id"] for line in events[0]["task"]["data"]["dialogue"]]
    matrix = np.full((len(events), len(turns)), np.nan)
    for r, payload in enumerate(events):
        for item in payload["annotation"]["result"]:
            if item.get("from_name") != dimension:
                continue
            index = int(item["value"]["start"])
            value = item["value"].get("choices") or item["value"].get("rating")
            raw = value[0] if isinstance(value, list) else value
            matrix[r, index] = codes[raw] if dimension == "emotion" else float(raw)
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def card_alpha(folder: Path, dimension: str) -> str:
    """The alpha the data card in ``folder`` shows for ``dimension``, as written."""
    for line in (folder / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {dimension} |"):
            return line.split("|")[3].strip()
    raise AssertionError(f"no agreement line for {dimension} in the card")


def _check(folder: Path, report: object, events: list[dict]) -> None:
    rows = list(read_jsonl(folder / "turns.jsonl"))
    assert len(rows) == 9
    assert rows[8]["n_annotators"] == 1
    assert [r["n_annotators"] for r in rows[6:8]] == [0, 0]
    assert (folder / "README.md").is_file() and (folder / "schema.json").is_file()
    for dim, level in (("emotion", "nominal"), ("intensity", "ordinal")):
        assert card_alpha(folder, dim) == f"{expected_alpha(events, dim, level):.3f}"


def test_export_from_the_store_with_partial_labels(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as db:
        report = export_dataset(
            db, 1, TAX, tmp_path / "out", options=ExportOptions(salt="s"), n_boot=50
        )
    _check(tmp_path / "out", report, partial_events())


def test_offline_export_with_partial_labels(tmp_path: Path) -> None:
    events = partial_events()
    source = label_studio_file(events, tmp_path / "export.json")
    report = export_label_studio_file(
        source, TAX, tmp_path / "out", options=ExportOptions(salt="s"), n_boot=50
    )
    _check(tmp_path / "out", report, events)


def test_a_failing_card_leaves_no_rows_behind(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows, the other formats and the card are published together or not at all; an
    earlier export in the folder stays as it was."""
    import exporters

    folder = tmp_path / "out"
    with Session(engine) as db:
        export_dataset(db, 1, TAX, folder, options=ExportOptions(salt="s"), n_boot=20)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the card could not be written")

    monkeypatch.setattr(exporters, "write_card", broken)
    with Session(engine) as db, pytest.raises(RuntimeError, match="the card could not"):
        export_dataset(
            db, 1, TAX, folder, formats=["jsonl", "parquet"], options=ExportOptions(salt="t")
        )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert "turns.parquet" not in before
