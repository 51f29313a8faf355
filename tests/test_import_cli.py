"""The ``import`` and ``init`` commands on folders without session.yaml, run as a user runs
them: ``import --dry-run --json`` parsed and checked against counts made here from the
transcripts the tests write, the human summary showing the same figures, and ``init``
writing a session.yaml that imports to the same session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from importers.session import load_session
from tests.builders import write_wav
from tests.conftest import ROOT, write_config
from tests.test_session_infer import CUES, write_vtt

SECONDS = 8.0
NAMES = {"Maya": "maya", "Théo Ng": "theo-ng", "SPEAKER_00": "speaker_00"}


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``improv-annotate --config <fresh config> ARGS`` in a new process."""
    config = tmp_path / "config.yaml"
    if not config.exists():
        write_config(tmp_path)  # nothing listens there: a dry run needs no server
    return subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},
    )


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """A folder of sessions: one without session.yaml, one with two recordings, one
    sub-folder that is not a session."""
    root = tmp_path / "batch"
    good = root / "Scene A"
    good.mkdir(parents=True)
    write_wav(good / "take.wav", SECONDS)
    write_vtt(good / "take.vtt", CUES)
    torn = root / "scene-b"
    torn.mkdir()
    write_wav(torn / "one.wav", 3.0)
    write_wav(torn / "two.wav", 3.0)
    write_vtt(torn / "b.vtt", CUES[:2])
    (root / "notes").mkdir()
    return root


def test_dry_run_json_is_one_object_with_the_figures_of_each_session(
    tmp_path: Path, batch: Path
) -> None:
    done = cli(tmp_path, "import", "--dry-run", "--json", "--no-prosody", str(batch))
    assert done.returncode == 1, done.stderr  # scene-b cannot be imported
    report = json.loads(done.stdout)  # the whole of stdout is the one object
    good, torn = report["sessions"]
    speakers = Counter(c[0] for c in CUES)  # counted from the transcript written
    assert good == {
        "id": "scene-a",
        "folder": str(batch / "Scene A"),
        "status": "ok",
        "turns": len(CUES),
        "speakers": dict(speakers),
        "duration_s": SECONDS,
        "end_s": max(c[2] for c in CUES),
        "clips": good["clips"],
        "inferred": {
            "id": "scene-a",
            "title": "Scene A",
            "media": "take.wav",
            "transcript": "take.vtt",
            "performers": [{"id": NAMES[n], "name": n} for n in speakers],
        },
        "warnings": [],
        "errors": [],
    }
    assert good["clips"] >= 1
    assert torn["status"] == "skipped" and torn["id"] == "scene-b"
    assert (torn["turns"], torn["speakers"], torn["duration_s"], torn["end_s"]) == (
        0,
        {},
        None,
        None,
    )
    assert torn["errors"] == [
        f"{batch / 'scene-b'}: 2 recordings ('one.wav', 'two.wav'); expected one, or "
        "'media: <file>' in session.yaml naming the one to use"
    ]
    assert report["skipped_folders"] == [str(batch / "notes")]
    assert not (tmp_path / "data" / "media").exists()


def test_the_human_summary_shows_the_same_figures(tmp_path: Path, batch: Path) -> None:
    done = cli(tmp_path, "import", "--dry-run", "--no-prosody", str(batch))
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1 and "Traceback" not in text
    speakers = ", ".join(f"{name} {n}" for name, n in Counter(c[0] for c in CUES).items())
    end = max(c[2] for c in CUES)
    assert (
        f"session scene-a: {len(CUES)} turns, {SECONDS:.3f} s, last turn ends at {end:.3f} s; "
        f"speakers {speakers}"
    ) in text
    assert (
        "inferred: id scene-a; title Scene A; media take.wav; transcript take.vtt; performers "
        "Maya (maya), Théo Ng (theo-ng), SPEAKER_00 (speaker_00)"
    ) in text
    assert f"sessions 1 would push, failed 1; turns {len(CUES)}, clips" in text
    assert f"skipped session {batch / 'scene-b'}: " in text and "2 recordings" in text
    assert "1 sub-folder(s) skipped, neither a session.yaml nor a recording in them: notes" in text


def test_init_writes_a_session_yaml_that_imports_to_the_same_session(
    tmp_path: Path, batch: Path
) -> None:
    folder = batch / "Scene A"
    bare = tmp_path / "copy" / "Scene A"
    shutil.copytree(folder, bare)  # the same folder, left without session.yaml
    done = cli(tmp_path, "init", str(folder))
    assert done.returncode == 0, done.stderr
    path = folder / "session.yaml"
    assert f"wrote {path}" in done.stdout
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# session.yaml written by 'improv-annotate init'")
    assert "aliases: [SPEAKER_00]" in text  # how to map a diariser's label
    assert yaml.safe_load(text) == {
        "id": "scene-a",
        "title": "Scene A",
        "prompt": "",
        "media": "take.wav",
        "transcript": "take.vtt",
        "performers": [{"id": NAMES[n], "name": n} for n in Counter(c[0] for c in CUES)],
    }
    inferred: dict[str, object] = {}
    written = load_session(folder, inferred=inferred)
    assert inferred == {}  # everything is explicit now
    without = load_session(bare)
    assert written.to_dict() | {"media": ""} == without.to_dict() | {"media": ""}
    assert Path(written.media).name == Path(without.media).name


def test_init_keeps_an_existing_file_unless_forced_and_then_keeps_its_values(
    tmp_path: Path, batch: Path
) -> None:
    folder = batch / "Scene A"
    path = folder / "session.yaml"
    path.write_text("prompt: A cafe, a secret.\n", encoding="utf-8")
    done = cli(tmp_path, "init", str(folder))
    assert done.returncode == 1
    assert "already exists; left as it is (--force" in " ".join(done.stderr.split())
    assert path.read_text(encoding="utf-8") == "prompt: A cafe, a secret.\n"
    done = cli(tmp_path, "init", "--force", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"rewrote {path}" in done.stdout
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert meta["prompt"] == "A cafe, a secret." and meta["id"] == "scene-a"


def test_init_on_a_folder_of_sessions_does_each_and_lists_the_problems(
    tmp_path: Path, batch: Path
) -> None:
    done = cli(tmp_path, "init", str(batch))
    assert done.returncode == 1  # scene-b has two recordings
    assert (batch / "Scene A" / "session.yaml").is_file()
    torn = (batch / "scene-b" / "session.yaml").read_text(encoding="utf-8")
    assert "# Problems to fix before importing:" in torn
    assert "2 recordings ('one.wav', 'two.wav')" in torn
    assert "media" not in yaml.safe_load(torn)  # nothing guessed for an ambiguous key
    assert not (batch / "notes" / "session.yaml").exists()
    errors = " ".join(done.stderr.split())
    assert "to fix before importing" in errors and "notes" in errors
