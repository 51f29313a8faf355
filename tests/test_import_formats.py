"""Sessions in every transcript format: written with the builders, imported, turns compared.

The transcript readers have their own round-trip tests (tests/test_transcripts.py); these
go through the whole session path (session.yaml, media header, speaker matching, clips).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from importers import ImportOptions, import_sessions
from importers.session import load_session
from schemas.errors import SessionError, TranscriptError
from schemas.taxonomy import load_taxonomy
from tests.builders import edit_meta, write_session, write_wav
from tests.transcript_builders import WRITERS, make_rows

# Formats whose files carry no text (the turns come from a diariser).
NO_TEXT = {"rttm"}


def _session(folder: Path, layout: str, seed: int = 3) -> list[tuple[str, float, float, str]]:
    """A session folder whose transcript is written in ``layout``; returns its rows."""
    rows = make_rows(12, np.random.default_rng(seed))
    write_session(folder, n_turns=2)
    extension, writer = WRITERS[layout]
    (folder / "transcript.vtt").unlink()
    name = f"transcript{extension}"
    (folder / name).write_text(writer(rows), encoding="utf-8")
    write_wav(folder / "audio.wav", rows[-1][2] + 1.0)
    edit_meta(folder, transcript=name, intended=None)
    return rows


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_every_format_imports_to_the_same_turns(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "scene"
    rows = _session(folder, layout)
    session = load_session(folder)
    ids = {"Maya": "p01", "Theo": "p02"}
    got = [(t.speaker, t.start, t.end, t.text) for t in session.turns]
    want = [
        (ids[speaker], start, end, "" if layout in NO_TEXT else text)
        for speaker, start, end, text in rows
    ]
    assert got == want
    assert [t.index for t in session.turns] == list(range(len(rows)))


def test_diarised_speakers_map_through_aliases(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    rows = _session(folder, "rttm")
    rttm = folder / "transcript.rttm"
    rttm.write_text(
        rttm.read_text().replace(" Maya ", " SPEAKER_00 ").replace(" Theo ", " SPEAKER_01 ")
    )
    with pytest.raises(SessionError, match=r"speaker 'SPEAKER_00' is not a performer"):
        load_session(folder)
    edit_meta(
        folder,
        performers=[
            {"id": "p01", "name": "Maya", "aliases": ["SPEAKER_00"]},
            {"id": "p02", "name": "Theo", "aliases": ["speaker_01"]},
        ],
    )
    session = load_session(folder)
    assert [t.speaker for t in session.turns] == [
        {"Maya": "p01", "Theo": "p02"}[r[0]] for r in rows
    ]


def test_companion_text_fills_a_diarisation(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    rows = _session(folder, "rttm")
    (folder / "words.json").write_text(WRITERS["whisperx"][1](rows), encoding="utf-8")
    edit_meta(folder, transcript_text="words.json")
    session = load_session(folder)
    assert [t.text for t in session.turns] == [r[3] for r in rows]


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    rows = _session(folder, "srt")
    (folder / "transcript.srt").rename(folder / "transcript.txt")
    edit_meta(folder, transcript="transcript.txt")
    with pytest.raises(TranscriptError, match=r"transcript\.txt"):
        load_session(folder)
    assert len(load_session(folder, transcript_format="srt").turns) == len(rows)
    edit_meta(folder, transcript_format="srt")
    assert len(load_session(folder).turns) == len(rows)


def test_windows_text_is_read_with_a_warning_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    _session(folder, "csv")
    csv = folder / "transcript.csv"
    csv.write_bytes(csv.read_text(encoding="utf-8").replace("Theo", "Théo").encode("cp1252"))
    edit_meta(folder, performers=[{"id": "p01", "name": "Maya"}, {"id": "p02", "name": "Théo"}])
    report = import_sessions(
        folder,
        media_root=tmp_path / "media",
        taxonomy=load_taxonomy(),
        push=None,
        options=ImportOptions(max_seconds=10.0),
    )
    assert report.failed == {}
    (warnings,) = report.warnings.values()
    assert any("transcript.csv" in w and "1252" in w for w in warnings)
    assert {p.name for p in report.sessions[0].performers} == {"Maya", "Théo"}


def test_overlapping_turns_of_one_speaker_stop_the_session_not_the_import(
    tmp_path: Path,
) -> None:
    good = tmp_path / "all" / "good"
    _session(good, "vtt")
    bad = tmp_path / "all" / "bad"
    rows = _session(bad, "srt")
    speaker, start, end, _ = rows[0]
    rows[1] = (speaker, start + 0.1, end + 0.1, "again")
    (bad / "transcript.srt").write_text(WRITERS["srt"][1](rows), encoding="utf-8")
    report = import_sessions(
        tmp_path / "all",
        media_root=tmp_path / "media",
        taxonomy=load_taxonomy(),
        push=None,
        options=ImportOptions(max_seconds=10.0),
    )
    assert [s.id for s in report.sessions] == ["good"]
    assert "overlap" in report.failed[str(bad)]
    assert "transcript.srt" in report.failed[str(bad)]


def test_cli_dry_run_reports_every_session_and_keeps_nothing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, write_config

    batch = tmp_path / "batch"
    _session(batch / "good", "eaf")
    bad = batch / "bad"
    rows = _session(bad, "csv")
    rows[3] = (rows[3][0], -1.0, rows[3][2], rows[3][3])
    (bad / "transcript.csv").write_text(WRITERS["csv"][1](rows), encoding="utf-8")
    config = write_config(tmp_path)  # nothing listens there: a dry run needs no server
    done = subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), "import", "--dry-run",
         "--no-prosody", str(batch)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 1
    text = " ".join((done.stdout + done.stderr).split())
    assert "session good: 12 turns" in text
    assert "sessions 1 would push, failed 1; turns 12, clips" in text
    assert "skipped session" in text and "bad/transcript.csv:5" in text
    assert "-1" in text and "Traceback" not in text
    assert not (tmp_path / "data" / "media").exists()


def test_media_served_from_a_base_url(tmp_path: Path) -> None:
    from importers import media_url, prepare_session

    assert media_url("s 1", "c.wav") == "/data/local-files/?d=s 1/c.wav"
    assert media_url("s 1", "c.wav", "https://media.example.org/improv/") == (
        "https://media.example.org/improv/s%201/c.wav"
    )
    folder = tmp_path / "scene"
    _session(folder, "vtt")
    options = ImportOptions(max_seconds=10.0, media_base_url="https://media.example.org/x")
    _, tasks = prepare_session(folder, tmp_path / "media", load_taxonomy(), options)
    for task in tasks:
        name = task["data"]["audio"].rsplit("/", 1)[1]
        assert task["data"]["audio"] == f"https://media.example.org/x/scene/{name}"
        assert (tmp_path / "media" / "scene" / name).is_file()


def test_cli_reports_a_session_folder_whose_name_is_not_utf8_and_imports_the_rest(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, write_config

    batch = tmp_path / "batch"
    _session(batch / "good", "vtt")
    _session(batch / "also-good", "vtt", seed=4)
    edit_meta(batch / "also-good", id="also-good")
    _session(tmp_path / "bad", "vtt", seed=5)
    edit_meta(tmp_path / "bad", id="bad")
    os.rename(os.fsencode(tmp_path / "bad"), os.path.join(os.fsencode(batch), b"bad-\xff-name"))
    config = write_config(tmp_path)  # nothing listens there: a dry run needs no server
    done = subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), "import", "--dry-run",
         "--no-prosody", str(batch)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, text
    assert "Traceback" not in text and "UnicodeEncodeError" not in text
    assert "session good: 12 turns" in text and "session also-good: 12 turns" in text
    assert "sessions 2 would push, failed 1;" in text
    assert f"skipped session {batch}/bad-\\xff-name: " in text
    assert "name is not valid UTF-8" in text
