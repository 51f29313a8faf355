"""Transcripts as tables: CSV (``.csv``, comma or semicolon) and TSV (``.tsv``, tab).

The first row names the columns; names are matched without case, spaces or ``_``::

    start   start, start_time, starttime, begin, onset, from, tmin
    end     end, end_time, endtime, stop, offset, to, tmax    (or duration, dur)
    speaker speaker, speaker_id, spk, participant, name, role
    text    text, utterance, transcript, transcription, sentence, words, content

so MELD's layout (``Sr No., Utterance, Speaker, Emotion, ..., StartTime, EndTime``) reads
as is. Other columns are ignored. Times are seconds (``12.5``) or clock times
(``00:16:16,059``, ``0:01:02.5``). A row of empty fields is skipped. Without a speaker
column the segments have no speaker.

Example
-------
>>> doc = (
...     "Sr No.,Utterance,Speaker,StartTime,EndTime\\n"
...     '1,Hi there.,Maya,"00:00:00,500","00:00:02,000"\\n'
... )
>>> parse_csv(doc, "s.csv")[0]
[Segment(speaker='Maya', start=0.5, end=2.0, text='Hi there.', where='2')]
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from importers.transcripts.records import Segment, Transcript, clean, parse_clock, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_csv", "parse_tsv", "read_csv", "read_tsv"]

_COLUMNS = {
    "start": ("start", "starttime", "begin", "begintime", "onset", "from", "tmin", "startsec"),
    "end": ("end", "endtime", "stop", "stoptime", "offset", "to", "tmax", "endsec"),
    "duration": ("duration", "dur"),
    "speaker": ("speaker", "speakerid", "spk", "participant", "name", "role", "speakername"),
    "text": ("text", "utterance", "transcript", "transcription", "sentence", "words", "content"),
}


def _columns(header: list[str], source: str) -> dict[str, int]:
    keys = [re.sub(r"[\s_\-.]+", "", h.strip().lstrip("\ufeff").lower()) for h in header]
    found: dict[str, int] = {}
    for role, names in _COLUMNS.items():
        for k, key in enumerate(keys):
            if key in names or key.removesuffix("s") in names:
                found.setdefault(role, k)
    missing = [r for r in ("start", "text") if r not in found]
    if "end" not in found and "duration" not in found:
        missing.append("end")
    if missing:
        raise TranscriptError(
            f"{source}:1: no {' or '.join(repr(m) for m in missing)} column among {header}; "
            f"expected columns start, end, speaker, text (or MELD's StartTime, EndTime, "
            "Speaker, Utterance)"
        )
    return found


def _row(
    row: list[str], header: list[str], columns: dict[str, int], source: str, where: str
) -> Segment:
    def field(role: str) -> str:
        k = columns[role]
        if k >= len(row):
            raise TranscriptError(
                f"{source}:{where}: {len(row)} fields, no {header[k]!r}; expected "
                f"{len(header)} fields as in the header"
            )
        return row[k].strip()

    def time(role: str) -> float:
        value = field(role)
        try:
            return parse_clock(value)
        except ValueError:
            raise TranscriptError(
                f"{source}:{where}: {header[columns[role]]} is {value!r}; expected "
                "seconds (12.5) or a clock time (00:00:12,500)"
            ) from None

    start = time("start")
    end = time("end") if "end" in columns else round(start + time("duration"), 6)
    speaker = (field("speaker") or None) if "speaker" in columns else None
    return Segment(speaker, start, end, clean(field("text")), where)


def _parse(text: str, source: str, delimiter: str) -> tuple[list[Segment], list[str]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    segments: list[Segment] = []
    try:
        header = next(reader, None)
        if header is None:
            raise TranscriptError(f"{source}:1: empty file; expected a header row")
        columns = _columns(header, source)
        line = reader.line_num + 1
        for row in reader:
            where, line = str(line), reader.line_num + 1
            if any(field.strip() for field in row):
                segments.append(_row(row, header, columns, source, where))
    except csv.Error as exc:
        raise TranscriptError(f"{source}:{reader.line_num}: malformed row ({exc})") from None
    return segments, []


def parse_csv(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The rows of a CSV transcript (comma, or semicolon when the header has no comma).

    ``where`` is the line the row starts on.

    Raises
    ------
    TranscriptError
        Naming the line: no start/end/text column in the header, a row too short, or a
        time that is neither seconds nor a clock time.
    """
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    return _parse(text, source, delimiter)


def parse_tsv(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The rows of a tab-separated transcript; see :func:`parse_csv`."""
    return _parse(text, source, "\t")


def read_csv(path: str | Path) -> Transcript:
    """Read a CSV transcript into a :class:`Transcript` (format ``"csv"``).

    Raises
    ------
    TranscriptError
        Naming the file and line; see :func:`parse_csv`.
    """
    return read_with(parse_csv, path, "csv")


def read_tsv(path: str | Path) -> Transcript:
    """Read a TSV transcript into a :class:`Transcript` (format ``"tsv"``)."""
    return read_with(parse_tsv, path, "tsv")
