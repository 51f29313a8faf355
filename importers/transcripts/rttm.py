"""RTTM diarisation output (pyannote, NIST md-eval, DiaPer, NeMo ...).

One turn per ``SPEAKER`` line::

    SPEAKER <file> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>

Fields are separated by any whitespace; a line needs at least the first eight. Lines
starting with ``;;`` are comments; lines of other types (``SPKR-INFO``, ``LEXEME`` ...)
are skipped and counted in a warning. A file may hold several recordings (one
``<file>`` id each, as pyannote and NIST write a whole corpus into one file): with
``media_name`` (the recording's file name) the lines whose file id is that name without
its extension, or with it, compared without case, are used (the others are counted in a
warning), and none matching is an error listing the file ids found. A file of one file id
is used whatever the id; several ids without ``media_name`` are an error.

RTTM carries no words: turns have empty text unless a companion text is given
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
from functools import partial
from pathlib import Path, PurePath

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


def _lines(text: str, source: str) -> tuple[list[tuple[int, list[str]]], dict[str, int]]:
    """The SPEAKER lines (number, fields) and the counts of skipped line types."""
    lines: list[tuple[int, list[str]]] = []
    skipped: dict[str, int] = {}
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
        lines.append((number, fields))
    return lines, skipped


def _recording(
    lines: list[tuple[int, list[str]]], source: str, media_name: str | None
) -> tuple[str | None, int]:
    """The file id whose lines to use (None: all, one id), and how many lines are others'."""
    ids = list(dict.fromkeys(fields[1] for _, fields in lines))
    if len(ids) <= 1:
        return None, 0
    if media_name is None:
        first = {fields[1]: number for number, fields in reversed(lines)}
        a, b = ids[0], ids[1]
        raise TranscriptError(
            f"{source}:{first[b]}: turn of recording {b!r}, but line {first[a]} is of "
            f"{a!r}; expected one recording per file"
        )
    name = PurePath(media_name).name
    wanted = {name.lower(), PurePath(name).stem.lower()}
    matching = [i for i in ids if i.lower() in wanted]
    if not matching:
        raise TranscriptError(
            f"{source}: no lines of recording {PurePath(name).stem!r} (from {name!r}); the "
            f"file ids are {ids}; expected the recording's file name without extension"
        )
    chosen = matching[0]
    return chosen, sum(1 for _, fields in lines if fields[1] != chosen)


def parse_rttm(
    text: str, source: str, *, media_name: str | None = None
) -> tuple[list[Segment], list[str]]:
    """The turns of an RTTM document in file order (pure form of :func:`read_rttm`).

    Raises
    ------
    TranscriptError
        Naming the line: too few fields, a start or duration that is not a number, a
        speaker ``<NA>``; turns of more than one recording without ``media_name``, or none
        of ``media_name``'s (listing the file ids).
    """
    lines, skipped = _lines(text, source)
    chosen, others = _recording(lines, source, media_name)
    segments: list[Segment] = []
    for number, fields in lines:
        if chosen is not None and fields[1] != chosen:
            continue
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
    if others:
        warnings.append(
            f"{source}: used the {len(segments)} line(s) of recording {chosen!r}; skipped "
            f"{others} line(s) of other recordings"
        )
    return segments, warnings


def read_rttm(
    path: str | Path, *, text: str | Path | None = None, media_name: str | None = None
) -> Transcript:
    """Read an RTTM file into a :class:`Transcript` (format ``"rttm"``).

    Parameters
    ----------
    path : str or Path
        The RTTM file.
    text : str or Path, optional
        A companion transcript with the words (WhisperX JSON with word times is best;
        SRT, VTT, CSV ... without speakers work too). Its words are placed in the turn
        they overlap most; see :func:`importers.transcripts.align.attach_text`.
    media_name : str, optional
        The recording's file name: picks its lines when the file holds several recordings.

    Raises
    ------
    TranscriptError
        Naming the file and line; see :func:`parse_rttm`.
    """
    transcript = read_with(partial(parse_rttm, media_name=media_name), path, "rttm")
    return transcript if text is None else attach_text(transcript, text)
