"""Seeded builders of test inputs: session folders on disk and in-memory sessions.

Every builder takes an ``rng`` (``numpy.random.Generator``); without one it uses a fixed
seed, so the same call always writes the same bytes.

Example
-------
>>> import tempfile
>>> from importers.session import load_session
>>> folder = write_session(Path(tempfile.mkdtemp()) / "demo", n_turns=3)
>>> s = load_session(folder)
>>> s.id, len(s.turns), [p.name for p in s.performers]
('demo', 3, ['Maya', 'Theo'])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from schemas.records import Performer, Session, Turn

SEED = 440
RATE = 16_000
# The core emotions of the default taxonomy, used for the intended arc.
EMOTIONS = ("neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust")
WORDS = ("yes", "no", "coffee", "bus", "job", "really", "sorry", "wait", "what", "great")


def default_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """``rng`` itself, or a generator seeded with :data:`SEED`."""
    return rng if rng is not None else np.random.default_rng(SEED)


def vtt_time(seconds: float) -> str:
    """``seconds`` as a WebVTT timestamp ``HH:MM:SS.mmm``."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def turn_spans(n_turns: int, rng: np.random.Generator | None = None) -> list[tuple[float, float]]:
    """``n_turns`` consecutive (start, end) spans in seconds: 1-2 s turns, 0.2-0.6 s gaps."""
    rng = default_rng(rng)
    spans, t = [], 0.5
    for _ in range(n_turns):
        start = round(t, 3)
        end = round(start + float(rng.uniform(1.0, 2.0)), 3)
        spans.append((start, end))
        t = end + float(rng.uniform(0.2, 0.6))
    return spans


def write_wav(path: Path, seconds: float, rng: np.random.Generator | None = None) -> Path:
    """A 16 kHz mono PCM_16 WAV of ``seconds``: a quiet tone plus a little noise."""
    rng = default_rng(rng)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    samples = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(n)
    sf.write(path, samples.astype(np.float32), RATE, subtype="PCM_16")
    return path


def write_meta(folder: Path, meta: dict[str, Any]) -> Path:
    """Write ``meta`` as the folder's session.yaml."""
    path = Path(folder) / "session.yaml"
    path.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def edit_meta(folder: Path, **changes: Any) -> Path:
    """Change keys of the folder's session.yaml (a value of ``None`` removes the key)."""
    path = Path(folder) / "session.yaml"
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return write_meta(folder, meta)


def write_session(
    folder: str | Path,
    n_turns: int = 6,
    rng: np.random.Generator | None = None,
    *,
    transcript_text: str | None = None,
    media_seconds: float | None = None,
    speakers: Sequence[str] = ("Maya", "Theo"),
) -> Path:
    """Write a valid session folder (session.yaml, audio.wav, transcript.vtt); return it.

    Parameters
    ----------
    folder : path
        Created if missing; its name is the session id.
    n_turns : int
        Cues in the transcript, speakers alternating in the order of ``speakers``.
    rng : numpy.random.Generator, optional
        Source of turn lengths, gaps, words, intended emotions and noise (seeded by default).
    transcript_text : str, optional
        Written verbatim as transcript.vtt instead of the generated one (for bad inputs).
    media_seconds : float, optional
        Length of audio.wav; by default the last cue's end plus 0.5 s.
    speakers : sequence of str
        Display names of the performers, whose ids are ``p01``, ``p02``, ...
    """
    rng = default_rng(rng)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spans = turn_spans(n_turns, rng)
    ids = [f"p{i + 1:02d}" for i in range(len(speakers))]
    cues, intended = ["WEBVTT", ""], []
    for i, (start, end) in enumerate(spans):
        k = i % len(speakers)
        words = " ".join(str(w) for w in rng.choice(WORDS, size=3))
        cues += [
            f"turn-{i}",
            f"{vtt_time(start)} --> {vtt_time(end)}",
            f"<v {speakers[k]}>{words}.",
        ]
        cues.append("")
        emotion = str(rng.choice(EMOTIONS))
        intended.append(
            {"turn": i, "performer": ids[k], "start": start, "end": end, "emotion": emotion}
        )
    text = transcript_text if transcript_text is not None else "\n".join(cues)
    (folder / "transcript.vtt").write_text(text, encoding="utf-8")
    seconds = media_seconds if media_seconds is not None else (spans[-1][1] if spans else 0) + 0.5
    write_wav(folder / "audio.wav", seconds, rng)
    write_meta(
        folder,
        {
            "id": folder.name,
            "title": f"Test scene {folder.name}",
            "prompt": "Two friends meet at a cafe.",
            "media": "audio.wav",
            "transcript": "transcript.vtt",
            "performers": [
                {"id": pid, "name": name} for pid, name in zip(ids, speakers, strict=True)
            ],
            "synthetic": True,
            "intended": intended,
        },
    )
    return folder


def make_session(
    spans: Sequence[tuple[float, float]],
    *,
    session_id: str = "s",
    duration: float | None = None,
    media: str = "missing.wav",
) -> Session:
    """An in-memory session with one turn per (start, end) span, two alternating performers."""
    performers = (Performer("p01", "Maya"), Performer("p02", "Theo"))
    turns = tuple(
        Turn.make(session_id, i, performers[i % 2].id, start, end, f"line {i}")
        for i, (start, end) in enumerate(spans)
    )
    end = max((e for _, e in spans), default=0.0)
    return Session(
        id=session_id,
        title=f"Scene {session_id}",
        prompt="",
        media=media,
        duration=duration if duration is not None else end + 0.5,
        performers=performers,
        turns=turns,
    )
