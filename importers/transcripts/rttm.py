"""RTTM diarisation output (pyannote, NIST md-eval, DiaPer, NeMo ...).

One turn per ``SPEAKER`` line::

    SPEAKER <file> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>

Fields are separated by any whitespace; a line needs at least the first eight. Lines
starting with ``;;`` are comments; lines of other types (``SPKR-INFO``, ``LEXEME`` ...)
are skipped and counted in a warning. All lines must belong to one recording (one
``<file>``). RTTM carries no words: turns have empty text unless a companion text is given
(``read_rttm(path, text=words.json)``), whose words are placed in the turns by time (see
:mod:`importers.transcripts.align`).

Example
-------
>>> line = "SPEAKER scene1 1 0.500 1.250 <NA> <NA> SPEAKER_00 <NA> <NA>"
>>> parse_rttm(line, "s.rttm")[0]
[Segment(speaker='SPEAKER_00', start=0.5, end=1.75, text='', where='1')]
"""

from __future__ import annotations

import math
from pathlib import Path

from importers.textio import split_lines
from importers.transcripts.align import attach_text
from importers.transcripts.records import Segment, Transcript, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_rttm", "read_rttm"]


def _float(field: str, source: str, line: int, what: str) -> float:
    try:
        value = float(field)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TranscriptError(f"{source}:{line}: {what} is {field!r}; expected a number of seconds")
    return value


def parse_rttm(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The turns of an RTTM document in file order (pure form of :func:`read_rttm`).

    Raises
    ------
    TranscriptError
        Naming the line: too few fields, a start or duration that is not a number, a
        speaker ``<NA>``, or turns of more than one recording.
    """
    segments: list[Segment] = []
    skipped: dict[str, int] = {}
    recording: tuple[str, int] | None = None
    for number, line in enumerate(split_lines(text.lstrip("\ufeff")), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;") or fields[0].startswith("#"):
            continue
        if fields[0] != "SPEAKER":
            skipped[fields[0]] = skipped.get(fields[0], 0) + 1
            continue
        if len(fields) < 8:
            raise TranscriptError(
                f"{source}:{number}: {len(fields)} fields; expected 'SPEAKER <file> "
                "<channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>'"
            )
        if recording is None:
            recording = (fields[1], number)
        elif fields[1] != recording[0]:
            raise TranscriptError(
                f"{source}:{number}: turn of recording {fields[1]!r}, but line "
                f"{recording[1]} is of {recording[0]!r}; expected one recording per file"
            )
        start = _float(fields[3], source, number, "start")
        duration = _float(fields[4], source, number, "duration")
        speaker = fields[7]
        if speaker in ("<NA>", "NA"):
            raise TranscriptError(
                f"{source}:{number}: speaker is {speaker!r}; expected a speaker name"
            )
        segments.append(
            Segment(speaker, round(start, 6), round(start + duration, 6), "", str(number))
        )
    warnings = []
    if skipped:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        warnings.append(f"{source}: skipped lines that are not SPEAKER turns ({counts})")
    return segments, warnings


def read_rttm(path: str | Path, *, text: str | Path | None = None) -> Transcript:
    """Read an RTTM file into a :class:`Transcript` (format ``"rttm"``).

    Parameters
    ----------
    path : str or Path
        The RTTM file.
    text : str or Path, optional
        A companion transcript with the words (WhisperX JSON with word times is best;
        SRT, VTT, CSV ... without speakers work too). Its words are placed in the turn
        they overlap most; see :func:`importers.transcripts.align.attach_text`.

    Raises
    ------
    TranscriptError
        Naming the file and line; see :func:`parse_rttm`.
    """
    transcript = read_with(parse_rttm, path, "rttm")
    return transcript if text is None else attach_text(transcript, text)
