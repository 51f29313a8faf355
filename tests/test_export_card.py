"""What the data card says: dropped result items, split warnings, where the data came
from, the annotator pool, and what each table leaves out."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api import store
from api.db import init_db, make_engine
from exporters import ExportOptions, export_dataset, export_label_studio_file
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task
from tests.test_export_partial import label_studio_file

TAX = load_taxonomy()
SHIFT_PARTS = {"shift", "shift_from", "shift_to", "shift_trigger", "shift_onset"}
SHIFT = {
    "start": 1.0,
    "end": 1.5,
    "from": "neutral",
    "to": "joy",
    "trigger": "partner-induced",
    "onset": "abrupt",
}


def bad_events() -> list[dict]:
    """Two clips, two annotators; annotation 1 holds an unknown label, a second value for a
    turn and a shift span without times; annotation 3 another unknown label."""
    events = []
    ids = 0
    for clip in (1, 2):
        t = task(clip, dialogue(4, clip=clip))
        for annotator in (1, 2):
            values = {i: {"emotion": "joy", "intensity": 2} for i in range(3)}
            ids += 1
            event = annotation_event(TAX, ids, t, annotator, values, shifts=[SHIFT])
            result = event["annotation"]["result"]
            emotion = next(r for r in result if r["from_name"] == "emotion")
            if ids in (1, 3):
                unknown = json.loads(json.dumps(emotion))
                unknown["value"].update(start="3", end="3", choices=["bliss"])
                result.append(unknown)
            if ids == 1:
                second = json.loads(json.dumps(emotion))
                second["value"]["choices"] = ["anger"]
                result.append(second)
                for item in result:
                    if item["from_name"] in SHIFT_PARTS:
                        item["value"].pop("start")
                        item["value"].pop("end")
            events.append(event)
    return events


def count_bad_items(path: Path) -> Counter[str]:
    """The bad items of a Label Studio JSON export, counted by reading it (not the codec)."""
    counts: Counter[str] = Counter()
    for t in json.loads(path.read_text(encoding="utf-8")):
        for annotation in t["annotations"]:
            seen: set[tuple[str, str]] = set()
            spans: dict[str, bool] = {}
            for item in annotation["result"]:
                name, value = item["from_name"], item["value"]
                if name in SHIFT_PARTS:
                    timed = "start" in value and "end" in value
                    spans[item["id"]] = spans.get(item["id"], False) or timed
                    continue
                if name != "emotion":
                    continue
                if value["choices"][0] not in TAX.emotion.values:
                    counts["unknown label"] += 1
                    continue
                if (value["start"], name) in seen:
                    counts["second value for a turn"] += 1
                seen.add((value["start"], name))
            counts["shift without times"] += sum(not timed for timed in spans.values())
    return +counts


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    init_db(eng)
    with Session(eng) as db:
        for payload in bad_events():
            store.apply_event(db, payload, TAX)
    yield eng
    eng.dispose()


def _cli_export(config: Path, source: Path, out: Path) -> object:
    """``improv-annotate export --from-label-studio`` in-process; its result (exit 0)."""
    from typer.testing import CliRunner

    from annotate import cli

    cli.state._settings = None  # a fresh command line
    result = CliRunner().invoke(
        cli.app,
        ["--config", str(config), "export", "--from-label-studio", str(source), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return result


def _card(folder: Path) -> str:
    return " ".join((folder / "README.md").read_text(encoding="utf-8").split())


def test_dropped_items_are_counted_in_both_export_paths(engine: Engine, tmp_path: Path) -> None:
    source = label_studio_file(bad_events(), tmp_path / "export.json")
    expected = count_bad_items(source)
    assert expected == {"unknown label": 2, "second value for a turn": 1, "shift without times": 1}
    with Session(engine) as db:
        live = export_dataset(
            db, 1, TAX, tmp_path / "live", options=ExportOptions(salt="s"), n_boot=20
        )
        assert store.skipped(db, 1) == expected  # what the service's /skipped says
    offline = export_label_studio_file(
        source, TAX, tmp_path / "offline", options=ExportOptions(salt="s"), n_boot=20
    )
    said = (
        "Result items dropped on the way in (gave no judgement): 4: 1 (second value for a "
        "turn), 1 (shift without times), 2 (unknown label)."
    )
    for report in (live, offline):
        assert report.accounting.dropped == expected
        assert said in _card(report.folder)
    # a window that leaves the annotations out leaves their dropped items out too
    from datetime import UTC, datetime

    with Session(engine) as db:
        early = export_dataset(
            db,
            1,
            TAX,
            tmp_path / "early",
            options=ExportOptions(salt="s", until=datetime(2020, 1, 1, tzinfo=UTC)),
            n_boot=20,
        )
    assert not early.accounting.dropped
    assert "Result items dropped on the way in (gave no judgement): none." in _card(early.folder)


def one_session_events() -> list[dict]:
    """One session, one clip of 6 turns: both annotators agree on turns 0-1, differ on
    2-3 (ties), annotator 1 alone labels turn 4, nobody labels turn 5."""
    t = task(1, dialogue(6))
    first = {i: {"emotion": "joy"} for i in range(5)}
    second = {0: {"emotion": "joy"}, 1: {"emotion": "joy"}, 2: {"emotion": "anger"}}
    second[3] = {"emotion": "fear"}
    return [
        annotation_event(TAX, 1, t, 1, first),
        annotation_event(TAX, 2, t, 2, second),
    ]


def test_a_split_that_cannot_be_met_is_said_and_left_out_turns_are_explained(
    tmp_path: Path,
) -> None:
    from tests.conftest import write_config

    source = label_studio_file(one_session_events(), tmp_path / "export.json")
    config = write_config(tmp_path)
    out = tmp_path / "out"
    result = _cli_export(config, source, out)
    warning = (
        "splits dev, test are empty: 1 session (2 performers) cannot fill 3 splits; no "
        "session or performer is put in two splits, so the split asked for (0.8, 0.1, 0.1) "
        "cannot be met"
    )
    assert f"warning: {warning}" in " ".join(result.output.split())
    card = _card(out)
    assert f"**Warning**: {warning}." in card
    # the table counts 6 train turns, 2 of them joy; the card says where the other 4 went
    assert "| train | 6 | neutral | " not in card
    assert "Turns left out of the label columns above, by reason: 1 turn without an " in card
    assert "2 turns without a majority emotion (a tie), counted in the split's turns" in card
    assert "1 turn without an emotion label, counted in the split's turns" in card
    # turn 4 (one value) is the third joy: 3 joy in the table
    row = next(line for line in card.split("| train |")[1:])
    assert row.strip().startswith("6 | 0 | 3 |")  # turns, neutral, joy
    # alpha on emotion uses turns 0-3; turn 4 has one value, turn 5 none
    assert "| emotion | 4 | 1 | 1 |" in card


def test_the_card_says_where_the_data_came_from(tmp_path: Path) -> None:
    """Licence and consent from session.yaml, else config.yaml's defaults, else "not
    given"; synthetic sessions and the annotator pool by pseudonym."""
    import yaml

    from annotate.config import load_settings
    from importers import ImportOptions, prepare_session
    from tests.builders import write_session
    from tests.conftest import write_config

    config = write_config(tmp_path, dataset={"licence": "CC BY-NC 4.0"})
    media = load_settings(config).media_path
    tasks, task_id = [], 0
    for k, name in enumerate(("cafe", "bus")):
        folder = write_session(tmp_path / "sessions" / name, n_turns=4)
        meta = yaml.safe_load((folder / "session.yaml").read_text(encoding="utf-8"))
        meta["performers"] = [{**p, "id": f"{p['id']}-{name}"} for p in meta["performers"]]
        for item in meta.get("intended") or []:
            item["performer"] = f"{item['performer']}-{name}"
        if k == 0:
            meta.update(licence="CC BY 4.0", consent="research use and publication of audio")
        else:
            meta["synthetic"] = False
        (folder / "session.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
        _, built = prepare_session(folder, media, TAX, ImportOptions(max_seconds=60.0))
        for b in built:
            task_id += 1
            t = {"id": task_id, "data": b["data"], "project": 3}
            for annotator in (1, 2, 3)[: 2 + k]:
                values = {i: {"emotion": "joy"} for i in range(len(t["data"]["dialogue"]))}
                event = annotation_event(TAX, task_id * 10 + annotator, t, annotator, values)
                t.setdefault("annotations", []).append(event["annotation"])
            tasks.append(t)
    source = tmp_path / "export.json"
    source.write_text(json.dumps(tasks), encoding="utf-8")
    out = tmp_path / "out"
    _cli_export(config, source, out)
    card = _card(out)
    assert "- Voices: 1 session synthetic: generated voices" in card
    assert "1 session recorded (session.yaml `synthetic: false`)" in card
    assert "- Annotators: people or simulated: not given" in card
    assert "| 1: cafe | yes | CC BY 4.0 | research use and publication of audio |" in card
    assert "| 1: bus | no | CC BY-NC 4.0 (config) | not given |" in card
    assert "Pool: 3 annotators over 8 turns. Turns by the number of annotators who labeled " in card
    assert "4 turns by 3, 4 turns by 2." in card
    pool = [line for line in card.split("| annotator | turns | values | |---|---|---| ")[1:]]
    assert pool and pool[0].startswith("| a_")  # pseudonyms, not Label Studio ids
    assert "**Same speaker** (`shift.shift_speaker`, as in MELD)" in card
    assert "**Adjacent turn** (`shift.shift_adjacent`, as in EmoryNLP)" in card


def test_licence_must_be_text(tmp_path: Path) -> None:
    import yaml

    from importers import load_session
    from schemas.errors import SessionError
    from tests.builders import write_session

    folder = write_session(tmp_path / "scene", n_turns=2)
    meta = yaml.safe_load((folder / "session.yaml").read_text(encoding="utf-8"))
    meta["licence"] = ["CC BY", "CC0"]
    (folder / "session.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    with pytest.raises(SessionError, match=r"session.yaml: licence must be text"):
        load_session(folder)
    meta["licence"] = "CC0 1.0"
    (folder / "session.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    assert (load_session(folder).licence, load_session(folder).consent) == ("CC0 1.0", None)


def test_the_card_says_when_annotators_are_simulated(engine: Engine, tmp_path: Path) -> None:
    options = ExportOptions(salt="s", simulated_annotators=True, consent="given in writing")
    with Session(engine) as db:
        report = export_dataset(db, 1, TAX, tmp_path / "out", options=options, n_boot=20)
    card = _card(report.folder)
    assert "- Annotators: simulated: every label was made by improv-annotate's annotator" in card
    # tasks imported without provenance: nothing invented
    assert "- Voices: 1 session without a `synthetic` key in session.yaml" in card
    assert "| 1: s1 | not given | not given | given in writing (config) |" in card
