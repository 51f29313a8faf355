"""Import a real transcript (tests/data/real/) the way a new user would: a folder holding a
recording and the transcript, no session.yaml unless the case needs one.

The recording is silence of the length the case states (a real recording is not shipped):
mono unless ``channels`` says otherwise. Expected figures are written in the tests, read off
the files by a person (see tests/data/real/PROVENANCE.md), never produced by the reader.
"""

from __future__ import annotations

import shutil
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REAL = Path(__file__).parent / "data" / "real"
RATE = 8000


@dataclass(frozen=True)
class Imported:
    """What the import made of one real file."""

    speakers: dict[str, int]
    """Performer display name -> turns."""
    turns: int
    first_start: float
    last_end: float
    warnings: list[str]
    inferred_ids: tuple[str, ...]


def write_silence(path: Path, seconds: float, channels: int = 1, rate: int = RATE) -> Path:
    """A 16-bit PCM WAV of ``seconds`` of silence."""
    frames = round(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        chunk = b"\x00\x00" * channels * rate
        for _ in range(frames // rate):
            out.writeframes(chunk)
        out.writeframes(b"\x00\x00" * channels * (frames % rate))
    return path


def session_folder(
    tmp: Path,
    files: list[str],
    *,
    seconds: float,
    name: str = "real-session",
    session_yaml: str | None = None,
    channels: int = 1,
    media_name: str = "recording.wav",
) -> Path:
    """A session folder under ``tmp``: the real ``files`` (names under tests/data/real), a
    silent recording of ``seconds`` and, when given, a ``session.yaml`` with that text."""
    folder = tmp / name
    folder.mkdir(parents=True)
    for file in files:
        shutil.copyfile(REAL / file, folder / Path(file).name)
    write_silence(folder / media_name, seconds, channels)
    if session_yaml is not None:
        (folder / "session.yaml").write_text(session_yaml, encoding="utf-8")
    return folder


def import_real(tmp: Path, files: list[str], **kwargs: object) -> Imported:
    """Load the session folder made by :func:`session_folder` as ``import`` does."""
    from importers.session import load_session
    from importers.vad import UNKNOWN_SPEAKER

    folder = session_folder(tmp, files, **kwargs)  # type: ignore[arg-type]
    warnings: list[str] = []
    session = load_session(folder, warnings=warnings)
    # the speaker a transcript without names gets is shown by its id, `unknown`
    names = {p.id: p.id if p.id == UNKNOWN_SPEAKER else p.name for p in session.performers}
    counts = Counter(names[t.speaker] for t in session.turns)
    return Imported(
        speakers=dict(counts),
        turns=len(session.turns),
        first_start=min(t.start for t in session.turns),
        last_end=max(t.end for t in session.turns),
        warnings=warnings,
        inferred_ids=tuple(p.id for p in session.performers),
    )
