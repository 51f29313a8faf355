"""Choose a transcript reader by name or file extension, read, attach text, check.

Example
-------
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "scene.srt"
>>> _ = path.write_text("1\\n00:00:00,500 --> 00:00:02,000\\nMAYA: Hi there.\\n")
>>> t = read_transcript(path)
>>> t.format, t.encoding, [(s.speaker, s.start, s.end, s.text) for s in t.segments]
('srt', 'utf-8', [('MAYA', 0.5, 2.0, 'Hi there.')])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from importers.transcripts.align import attach_text
from importers.transcripts.checks import check_segments
from importers.transcripts.eaf import read_eaf
from importers.transcripts.records import Transcript
from importers.transcripts.rttm import read_rttm
from importers.transcripts.srt import read_srt
from importers.transcripts.table import read_csv, read_tsv
from importers.transcripts.textgrid import read_textgrid
from importers.transcripts.vtt import read_vtt
from importers.transcripts.whisperx import read_whisperx
from schemas.errors import TranscriptError

__all__ = ["EXTENSIONS", "READERS", "format_for", "read_transcript"]

READERS: dict[str, Callable[..., Transcript]] = {
    "vtt": read_vtt,
    "srt": read_srt,
    "rttm": read_rttm,
    "whisperx": read_whisperx,
    "eaf": read_eaf,
    "textgrid": read_textgrid,
    "csv": read_csv,
    "tsv": read_tsv,
}
"""Format name -> reader ``read_x(path, **options) -> Transcript`` (sorted, not checked)."""

EXTENSIONS: dict[str, str] = {
    ".vtt": "vtt",
    ".webvtt": "vtt",
    ".srt": "srt",
    ".rttm": "rttm",
    ".json": "whisperx",
    ".eaf": "eaf",
    ".textgrid": "textgrid",
    ".csv": "csv",
    ".tsv": "tsv",
}
"""Lower-case file extension -> format name."""

_OPTIONS: dict[str, tuple[str, ...]] = {
    "eaf": ("tiers",),
    "textgrid": ("tiers",),
    "rttm": ("media_name",),
    "csv": ("media_duration",),
    "tsv": ("media_duration",),
}
"""The keyword options each reader takes besides the path."""

_MAX_LISTED = 50  # problems listed in one error message; check=False gives them all

_SPEAKER_HINTS = {
    "vtt": "a voice '<v Name>text'",
    "srt": "a name before the text ('MAYA: text', '[Maya] text' or '- Maya: text')",
    "whisperx": "a 'speaker' on the segment or its words (run diarisation)",
    "csv": "a 'speaker' column with a name in every row",
    "tsv": "a 'speaker' column with a name in every row",
    "eaf": "a speech tier (its PARTICIPANT or id names the speaker)",
    "textgrid": "'<speaker> - words' tiers, or one interval tier per speaker",
}


def format_for(path: str | Path, format: str | None = None) -> str:
    """The format name for ``path``: ``format`` if given (checked), else by extension.

    Raises
    ------
    TranscriptError
        For an unknown format name or extension, listing the known ones.
    """
    if format is not None:
        name = format.lower().lstrip(".")
        name = EXTENSIONS.get(f".{name}", name)
        if name not in READERS:
            raise TranscriptError(
                f"{path}: unknown transcript format {format!r}; expected one of {sorted(READERS)}"
            )
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise TranscriptError(
            f"{path}: unknown transcript extension {suffix or '(none)'!r}; expected one of "
            f"{sorted(EXTENSIONS)}, or give the format (one of {sorted(READERS)})"
        )
    return EXTENSIONS[suffix]


def read_transcript(
    path: str | Path,
    format: str | None = None,
    *,
    text: str | Path | None = None,
    media_duration: float | None = None,
    check: bool = True,
    require_speaker: bool = True,
    tiers: Sequence[str] | None = None,
    media_name: str | None = None,
) -> Transcript:
    """Read a transcript of any known format, and check it.

    Parameters
    ----------
    path : str or Path
        The transcript file.
    format : str, optional
        A name of :data:`READERS` (or an extension such as ``"TextGrid"``); by default
        chosen from the file's extension by :data:`EXTENSIONS`.
    text : str or Path, optional
        A companion transcript whose words fill the turns of a diarisation without text
        (RTTM, pyannote JSON); see :func:`importers.transcripts.align.attach_text`.
    media_duration : float, optional
        Seconds of the recording; a turn ending later is an error. Tables also use it to
        tell whole seconds from milliseconds (see :mod:`importers.transcripts.table`).
    require_speaker : bool
        Whether a segment without a speaker is a problem (false: the caller gives such
        segments a speaker, e.g. from the recording's channels).
    tiers : sequence of str, optional
        The tiers that carry the speakers' speech (ELAN, TextGrid), instead of the ones the
        reader picks.
    media_name : str, optional
        The recording's file name: a file holding several recordings (RTTM) gives the
        lines of this one.
    check : bool
        Run :func:`~importers.transcripts.checks.check_segments` (speakers required) and
        raise if it finds a problem. With false, the caller checks (e.g. to list the
        problems of many files).

    Returns
    -------
    Transcript
        Segments sorted by start; warnings of decoding, reading and checking.

    Raises
    ------
    TranscriptError
        The first problem that stops reading (naming ``file:where``, the bad value and
        what was expected), or, after reading, every problem the checks found: one per
        line after a ``file: N problems`` line (a single problem alone; at most 50).
    """
    name = format_for(path, format)
    given = {
        "tiers": None if tiers is None else tuple(tiers),
        "media_name": media_name,
        "media_duration": media_duration,
    }
    options = {k: v for k, v in given.items() if v is not None and k in _OPTIONS.get(name, ())}
    transcript = READERS[name](Path(path), **options)
    if text is not None:
        transcript = attach_text(transcript, text)
    if not check:
        return transcript
    errors, warnings = check_segments(
        transcript.segments,
        str(path),
        media_duration=media_duration,
        require_speaker=require_speaker,
        speaker_hint=_SPEAKER_HINTS.get(name, "a speaker name"),
        speaker_classes=transcript.speaker_classes,
    )
    if len(errors) == 1:
        raise TranscriptError(errors[0])
    if errors:
        listed = errors[:_MAX_LISTED]
        if len(errors) > _MAX_LISTED:
            listed.append(f"... and {len(errors) - _MAX_LISTED} more")
        raise TranscriptError(f"{path}: {len(errors)} problems:\n" + "\n".join(listed))
    return replace(transcript, warnings=transcript.warnings + tuple(warnings))
