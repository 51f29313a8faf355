"""Transcripts as tables: CSV (``.csv``, comma or semicolon) and TSV (``.tsv``, tab).

The first row names the columns; names are matched without case, spaces, ``_``, ``-``,
``.`` or a unit suffix (``start_ms``, ``Start (s)``), the first name of each list that is
a column winning::

    start   start, start time, begin, begin time, onset, segment_onset, from, tmin
    end     end, end time, stop, stop time, offset, segment_offset, to, tmax
            (or duration, dur)
    speaker speaker, speaker_id, speaker name, speaker label, spk, participant, name,
            speaker_type, role
    text    text, transcription, transcript, utterance, sentence, content, caption, words

so our layout (``start,end,speaker,text``), MELD's (``Sr No., Utterance, Speaker, ...,
StartTime, EndTime``), ChildProject's (``segment_onset, segment_offset, speaker_id,
speaker_type, transcription, words``: its ``words`` holds counts, not text) and OpenAI
Whisper's TSV (``start, end, text``) read as they are. Other columns are ignored. A row of
empty fields is skipped. Without a speaker column, or where the speaker is empty or
pandas' ``NA``, a turn has no speaker.

One turn per row with text; rows whose text is empty (or ``NA``) are not turns and are
counted in a warning. A text column empty in every row (ChildProject writes ``NA`` there)
is no text column: then every row with times is a turn, without text.

Time units (one for the table's plain numbers, unless the header names one per column):

1. a clock time (``00:16:16,059``, ``0:01:02.5``, ``1:02.5``) is read as such;
2. the header: a ``_ms`` / ``(ms)`` / ``msec`` suffix means milliseconds, a ``_s`` /
   ``(s)`` / ``sec`` suffix seconds; a time column without a suffix takes the unit the
   others name;
3. the values: a number with decimals, or clock times, anywhere in the time columns mean
   seconds (ChildProject's ACLEW conversion writes seconds with decimals under its
   millisecond column names);
4. whole numbers under ChildProject's ``segment_onset``/``segment_offset``, or in
   Whisper's TSV (header exactly ``start``, ``end``, ``text``), are milliseconds;
5. other whole numbers are told apart by the recording's duration (``media_duration``): a
   reading fits when the last time lies within the recording and reaches at least
   :data:`PLAUSIBLE_SHARE` of it; exactly one reading must fit. Without a duration, or
   when neither fits, it is an error naming the column and both readings, never a guess.

Example
-------
>>> doc = (
...     "Sr No.,Utterance,Speaker,StartTime,EndTime\\n"
...     '1,Hi there.,Maya,"00:00:00,500","00:00:02,000"\\n'
... )
>>> parse_csv(doc, "s.csv")[0]
[Segment(speaker='Maya', start=0.5, end=2.0, text='Hi there.', where='2')]
>>> parse_tsv("start\\tend\\ttext\\n0\\t11000\\tAsk not.\\n", "w.tsv")[0]
[Segment(speaker=None, start=0.0, end=11.0, text='Ask not.', where='2')]
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from importers.textio import read_text
from importers.transcripts.records import Segment, Transcript, clean, parse_clock, sort_segments
from schemas.errors import TranscriptError

__all__ = ["PLAUSIBLE_SHARE", "parse_csv", "parse_tsv", "read_csv", "read_tsv"]

PLAUSIBLE_SHARE = 0.01
"""The least share of the recording the last time of a table must reach for a reading of
its whole numbers (seconds or milliseconds) to fit."""

_COLUMNS = {
    "start": ("start", "starttime", "begin", "begintime", "onset", "segmentonset", "from", "tmin"),
    "end": ("end", "endtime", "stop", "stoptime", "offset", "segmentoffset", "to", "tmax"),
    "duration": ("duration", "dur"),
    "speaker": (
        "speaker",
        "speakerid",
        "speakername",
        "speakerlabel",
        "spk",
        "participant",
        "name",
        "speakertype",
        "role",
    ),
    "text": (
        "text",
        "transcription",
        "transcript",
        "utterance",
        "sentence",
        "content",
        "caption",
        "words",
    ),
}
_TIMES = ("start", "end", "duration")
_MS = re.compile(r"[\s_\-(\[]*(?:ms|msec|millisec(?:ond)?s?)[)\]]?$", re.IGNORECASE)
_SEC = re.compile(r"[\s_\-(\[]+(?:s|sec|secs|seconds?)[)\]]?$", re.IGNORECASE)
_CHILDPROJECT = ("segmentonset", "segmentoffset")
_MISSING = ("", "NA", "<NA>", "NaN", "nan")
_WHOLE = re.compile(r"^[+-]?\d+$")
# Speaker columns that name a class of speaker (VTC's FEM, MAL, KCHI, OCH), not a person.
_CLASS_COLUMNS = ("speakertype", "role")


@dataclass(frozen=True)
class _Column:
    index: int
    name: str
    unit: str | None  # "s" or "ms" from the header, else None


def _key(name: str) -> tuple[str, str | None]:
    """A header name without case, separators or unit suffix, and the unit it names."""
    raw = name.strip().lstrip("\ufeff")
    unit = None
    for pattern, found in ((_MS, "ms"), (_SEC, "s")):
        bare = pattern.sub("", raw)
        if bare != raw and bare:
            raw, unit = bare, found
            break
    return re.sub(r"[\s_\-.()\[\]]+", "", raw.lower()), unit


def _columns(header: list[str], source: str) -> dict[str, _Column]:
    keys = [_key(h) for h in header]
    found: dict[str, _Column] = {}
    for role, names in _COLUMNS.items():
        for name in names:
            k = next(
                (k for k, (key, _) in enumerate(keys) if name in (key, key.removesuffix("s"))),
                None,
            )
            if k is not None and all(c.index != k for c in found.values()):
                found[role] = _Column(k, header[k], keys[k][1])
                break
    missing = [r for r in ("start",) if r not in found]
    if "end" not in found and "duration" not in found:
        missing.append("end")
    if missing:
        raise TranscriptError(
            f"{source}:1: no {' or '.join(repr(m) for m in missing)} column among {header}; "
            f"expected columns start, end, speaker, text (or MELD's StartTime, EndTime, "
            "Speaker, Utterance, or ChildProject's segment_onset, segment_offset)"
        )
    return found


def _field(row: list[str], column: _Column, header: list[str], source: str, where: str) -> str:
    if column.index >= len(row):
        raise TranscriptError(
            f"{source}:{where}: {len(row)} fields, no {column.name!r}; expected "
            f"{len(header)} fields as in the header"
        )
    return row[column.index].strip()


def _units(
    rows: list[tuple[str, list[str]]],
    header: list[str],
    columns: dict[str, _Column],
    source: str,
    whisper: bool,
    media_duration: float | None,
) -> dict[str, str]:
    """The unit ("s" or "ms") of each time column's plain numbers (module doc, rules 2-5)."""
    values: dict[str, list[str]] = {}
    for role in _TIMES:
        if role in columns:
            column = columns[role]
            values[role] = [
                v
                for where, row in rows
                if (v := _field(row, column, header, source, where)) not in _MISSING
            ]
    named = {columns[r].unit for r in values} - {None}
    plain = [v for vs in values.values() for v in vs]
    if len(named) == 1:  # one unit in the header names the table's unit
        table_unit: str | None = named.pop()
    elif named or not all(_WHOLE.match(v) for v in plain):  # decimals, clock times
        table_unit = "s"
    elif whisper or any(_key(columns[r].name)[0] in _CHILDPROJECT for r in values):
        table_unit = "ms"
    else:
        table_unit = None
    units = {r: columns[r].unit or table_unit or "" for r in values}
    undecided = {r: [float(v) for v in values[r]] for r in values if not units[r]}
    if not any(undecided.values()):
        return {r: unit or "s" for r, unit in units.items()}
    reach = max(max(v, default=0.0) for v in undecided.values())
    if reach == 0:  # zero is zero in either unit
        return {r: unit or "s" for r, unit in units.items()}
    names = ", ".join(repr(columns[r].name) for r in undecided)
    what = f"column {names} holds" if len(undecided) == 1 else f"columns {names} hold"
    readings = f"as seconds they reach {reach:g} s, as milliseconds {reach / 1000:g} s"
    if media_duration is not None:

        def fits(seconds: float) -> bool:
            return PLAUSIBLE_SHARE * media_duration <= seconds <= media_duration + 0.0015

        fitting = [unit for unit, s in (("s", reach), ("ms", reach / 1000)) if fits(s)]
        if len(fitting) == 1:
            return {r: unit or fitting[0] for r, unit in units.items()}
        why = f"neither fits the recording's {media_duration:.3f} s"
    else:
        why = "the recording's duration is not known"
    raise TranscriptError(
        f"{source}: {what} whole numbers that may be seconds or milliseconds ({readings}) "
        f"and {why}; expected the unit in the header ('start_ms', 'start (s)'), decimal "
        "seconds or clock times"
    )


def _time(value: str, unit: str, column: _Column, source: str, where: str) -> float:
    try:
        if ":" not in value and unit == "ms":
            return round(float(value) / 1000, 6)
        return parse_clock(value)
    except ValueError:
        expected = (
            "milliseconds (12500)"
            if unit == "ms"
            else "seconds (12.5) or a clock time (00:00:12,500)"
        )
        raise TranscriptError(
            f"{source}:{where}: {column.name} is {value!r}; expected {expected}"
        ) from None


def _parse(
    text: str, source: str, delimiter: str, media_duration: float | None
) -> tuple[list[Segment], list[str]]:
    segments, warnings, _ = _parse_table(text, source, delimiter, media_duration)
    return segments, warnings


def _parse_table(
    text: str, source: str, delimiter: str, media_duration: float | None
) -> tuple[list[Segment], list[str], bool]:
    """Segments, warnings, and whether the speaker column holds classes of speaker."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    rows: list[tuple[str, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise TranscriptError(f"{source}:1: empty file; expected a header row")
        line = reader.line_num + 1
        for row in reader:
            where, line = str(line), reader.line_num + 1
            if any(field.strip() for field in row):
                rows.append((where, row))
    except csv.Error as exc:
        raise TranscriptError(f"{source}:{reader.line_num}: malformed row ({exc})") from None
    columns = _columns(header, source)
    whisper = delimiter == "\t" and [h.strip().lstrip("\ufeff") for h in header] == [
        "start",
        "end",
        "text",
    ]
    units = _units(rows, header, columns, source, whisper, media_duration)
    has_text = "text" in columns and any(
        _field(row, columns["text"], header, source, where) not in _MISSING for where, row in rows
    )
    segments: list[Segment] = []
    untexted: list[str] = []
    for where, row in rows:

        def value(role: str, where: str = where, row: list[str] = row) -> str:
            return _field(row, columns[role], header, source, where)

        def time(role: str, where: str = where) -> float:
            return _time(value(role), units[role], columns[role], source, where)

        words = value("text") if has_text else ""
        if has_text and words in _MISSING:
            untexted.append(where)
            continue
        start = time("start")
        end = time("end") if "end" in columns else round(start + time("duration"), 6)
        speaker = value("speaker") if "speaker" in columns else ""
        segments.append(
            Segment(None if speaker in _MISSING else speaker, start, end, clean(words), where)
        )
    warnings = []
    if untexted:
        shown = ", ".join(untexted[:5]) + (" ..." if len(untexted) > 5 else "")
        warnings.append(
            f"{source}: {len(untexted)} row(s) without text are not turns (lines {shown})"
        )
    speaker = columns.get("speaker")
    classes = speaker is not None and _key(speaker.name)[0] in _CLASS_COLUMNS
    return segments, warnings, classes


def parse_csv(
    text: str, source: str, *, media_duration: float | None = None
) -> tuple[list[Segment], list[str]]:
    """The rows of a CSV transcript (comma, or semicolon when the header has no comma).

    ``where`` is the line the row starts on; ``media_duration`` (seconds of the recording)
    tells whole seconds from milliseconds where nothing else does (module doc).

    Raises
    ------
    TranscriptError
        Naming the line: no start/end column in the header, a row too short, or a time
        that is neither seconds nor a clock time; naming the column: whole numbers whose
        unit cannot be told.
    """
    return _parse(text, source, _delimiter(text), media_duration)


def parse_tsv(
    text: str, source: str, *, media_duration: float | None = None
) -> tuple[list[Segment], list[str]]:
    """The rows of a tab-separated transcript; see :func:`parse_csv`."""
    return _parse(text, source, "\t", media_duration)


def read_csv(path: str | Path, *, media_duration: float | None = None) -> Transcript:
    """Read a CSV transcript into a :class:`Transcript` (format ``"csv"``).

    Parameters
    ----------
    path : str or Path
        The table.
    media_duration : float, optional
        Seconds of the recording, to tell whole seconds from milliseconds.

    Raises
    ------
    TranscriptError
        Naming the file and line or column; see :func:`parse_csv`.
    """
    text, encoding, warnings = read_text(path)
    return _table(text, encoding, warnings, path, _delimiter(text), "csv", media_duration)


def _delimiter(text: str) -> str:
    """A semicolon when the header has one and no comma, else a comma."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


def _table(
    text: str,
    encoding: str,
    warnings: list[str],
    path: str | Path,
    delimiter: str,
    name: str,
    media_duration: float | None,
) -> Transcript:
    segments, more, classes = _parse_table(text, str(path), delimiter, media_duration)
    return Transcript(
        sort_segments(segments), tuple(warnings + more), name, encoding, str(path), classes
    )


def read_tsv(path: str | Path, *, media_duration: float | None = None) -> Transcript:
    """Read a TSV transcript into a :class:`Transcript` (format ``"tsv"``); see
    :func:`read_csv`."""
    text, encoding, warnings = read_text(path)
    return _table(text, encoding, warnings, path, "\t", "tsv", media_duration)
