"""The common result of every transcript reader, and helpers the readers share.

Example
-------
>>> s = Segment("Maya", 0.5, 2.0, "Hi there.", "3")
>>> s.duration
1.5
>>> parse_clock("00:16:16,059")
976.059
>>> parse_clock("12.5"), parse_clock("1:02.5")
(12.5, 62.5)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from importers.textio import read_text
from schemas.errors import TranscriptError

__all__ = ["Parser", "Segment", "Transcript", "parse_clock", "read_with", "sort_segments"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One speaker's stretch of speech, times in seconds.

    ``speaker`` is ``None`` when the file does not say (a subtitle without a name, a
    transcript without diarisation); ``where`` names the place in the file for messages:
    a line number (``"12"``), a JSON path (``"segments[3]"``) or an XML location
    (``"tier 'Maya' annotation a17"``).
    """

    speaker: str | None
    start: float
    end: float
    text: str
    where: str

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Transcript:
    """The segments of one file, sorted by start, and what the reader had to say about it.

    ``format`` is the reader's name (``"vtt"``, ``"eaf"`` ...); ``encoding`` the codec the
    file was decoded with (see :func:`importers.textio.decode_text`); ``source`` the file
    name messages start with. ``speaker_classes`` is true when the speakers are classes of
    speaker, not people (a table's ``speaker_type`` column: VTC's ``FEM``, ``OCH``): two
    turns of one class may then overlap.
    """

    segments: tuple[Segment, ...]
    warnings: tuple[str, ...]
    format: str
    encoding: str
    source: str = ""
    speaker_classes: bool = False

    @property
    def speakers(self) -> tuple[str, ...]:
        """The distinct speakers, in order of first appearance."""
        return tuple(dict.fromkeys(s.speaker for s in self.segments if s.speaker is not None))


Parser = Callable[[str, str], tuple[list[Segment], list[str]]]
"""A pure reader: ``parse(text, source) -> (segments, warnings)``."""


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
_SECONDS = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def parse_clock(value: str) -> float:
    """Seconds from ``"12.5"``, ``"mm:ss.mmm"`` or ``"hh:mm:ss,mmm"`` / ``"hh:mm:ss.mmm"``.

    Raises ``ValueError`` for anything else (callers add the file and place); minutes and
    seconds of a clock time must be below 60.
    """
    text = value.strip()
    if _SECONDS.match(text):
        return float(text)
    match = _CLOCK.match(text)
    if not match:
        raise ValueError(f"not a time: {value!r}")
    hours, minutes, seconds = match.groups()
    sec = float(seconds.replace(",", "."))
    if (minutes is not None and int(minutes) >= 60 and hours is not None) or sec >= 60:
        raise ValueError(f"not a time: {value!r} (minutes and seconds must be below 60)")
    return round(int(hours or 0) * 3600 + int(minutes) * 60 + sec, 6)


def number(value: object, source: str, where: str, what: str) -> float:
    """A finite float from a JSON/XML value, or an error naming the place and value."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TranscriptError(f"{source}:{where}: {what} is {value!r}; expected seconds")
    try:
        result = float(value)
    except ValueError:
        raise TranscriptError(f"{source}:{where}: {what} is {value!r}; expected seconds") from None
    if not math.isfinite(result):
        raise TranscriptError(f"{source}:{where}: {what} is {value!r}; expected finite seconds")
    return result


def clean(text: str) -> str:
    """Collapse runs of whitespace (line breaks included) into single spaces."""
    return " ".join(text.split())


def sort_segments(segments: list[Segment]) -> tuple[Segment, ...]:
    """Segments by start, then end; file order breaks ties (the sort is stable)."""
    return tuple(sorted(segments, key=lambda s: (s.start, s.end)))


def read_with(parse: Parser, path: str | Path, name: str) -> Transcript:
    """Read ``path`` with :func:`~importers.textio.read_text`, parse it, sort the segments."""
    text, encoding, warnings = read_text(path)
    segments, more = parse(text, str(path))
    return Transcript(sort_segments(segments), tuple(warnings + more), name, encoding, str(path))
