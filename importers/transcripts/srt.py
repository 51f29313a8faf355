"""SubRip (``.srt``) subtitles whose text names the speaker.

Each block is an optional counter line, a timing line ``hh:mm:ss,mmm --> hh:mm:ss,mmm``
(a ``.`` for the ``,`` and trailing ``X1:... Y2:...`` coordinates are accepted) and one or
more text lines. A line names its speaker with one of::

    MAYA: Hi there.        Maya: Hi there.       Theo Baker: Hello.
    - Maya: Hi there.      [Maya] Hi there.      >> MAYA: Hi there.     <v Maya>Hi there.

A name is one to three words, each starting with a capital letter, so "Note: ..." and
"[Laughs]" also count as speakers, but "at 3:30 we", "1990: the year" and "[laughs]" (a
sound description) do not. A line without a name continues the current
speaker; a cue without any name has no speaker. A cue naming several speakers (dialogue
subtitles) is divided between them in proportion to their text, with a warning. ``<i>``,
``<b>``, ``<u>``, ``<font ...>`` and ``{\\an8}``-style tags are dropped.

Example
-------
>>> text = "1\\n00:00:01,000 --> 00:00:02,500\\nMAYA: Hi there.\\nHow are you?\\n"
>>> parse_srt(text, "t.srt")[0]
[Segment(speaker='MAYA', start=1.0, end=2.5, text='Hi there. How are you?', where='2')]
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from importers.textio import split_lines
from importers.transcripts.records import Segment, Transcript, clean, read_with
from importers.transcripts.vtt import divided_warnings, split_by_length
from schemas.errors import TranscriptError

__all__ = ["parse_srt", "read_srt"]

_TIME = r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{1,3})"
_TIMING = re.compile(rf"^{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_WORD = r"[A-Z\u00c0-\u00de][\w'.\-]*"
_NAME = rf"{_WORD}(?:[ _]{_WORD}){{0,2}}"
_NAMED = re.compile(
    rf"^(?:-\s*|>>\s*)?(?:(?P<colon>{_NAME}):\s+"
    rf"|\[(?P<bracket>{_NAME})\]\s*"
    r"|<v(?:\.[\w.-]+)?\s+(?P<voice>[^>]+)>)"
)
_TAG = re.compile(r"</?(?:i|b|u|font|v)(?:[\s.][^>]*)?>|\{\\[^}]*\}", re.IGNORECASE)


def _fraction(digits: str) -> float:
    return int(digits) / 10 ** len(digits)


def _seconds(groups: tuple[str, ...]) -> float:
    hours, minutes, seconds, fraction = groups
    return round(int(hours) * 3600 + int(minutes) * 60 + int(seconds) + _fraction(fraction), 3)


def _speaker_lines(lines: list[str]) -> list[tuple[str | None, str]]:
    """(speaker, text) runs of a cue's text lines; unnamed lines continue the last speaker."""
    runs: list[tuple[str | None, list[str]]] = []
    for raw in lines:
        line = _TAG.sub(lambda m: m.group(0) if m.group(0).lower().startswith("<v") else "", raw)
        line = line.strip()
        match = _NAMED.match(line)
        if match:
            name = match.group("colon") or match.group("bracket") or match.group("voice")
            runs.append((clean(name), [line[match.end() :]]))
        elif runs:
            runs[-1][1].append(line)
        else:
            runs.append((None, [line]))
    return [(speaker, clean(html.unescape(_TAG.sub("", " ".join(t))))) for speaker, t in runs]


def parse_srt(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The segments of a SubRip document in file order (pure form of :func:`read_srt`).

    ``where`` is the line of each cue's timing line. Times are not checked here.

    Raises
    ------
    TranscriptError
        Naming the line: a block without a timing line, or a malformed timing line.
    """
    lines = split_lines(text.lstrip("\ufeff"))
    segments: list[Segment] = []
    divided: list[int] = []
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        block = []
        while i < n and lines[i].strip():
            block.append(lines[i])
            i += 1
        timing_at = next((k for k, line in enumerate(block[:2]) if "-->" in line), None)
        if timing_at is None:
            raise TranscriptError(
                f"{source}:{block_start + 1}: expected a cue number or a timing line "
                f"'hh:mm:ss,mmm --> hh:mm:ss,mmm', got {block[0].strip()!r}"
            )
        line_no = block_start + timing_at + 1
        match = _TIMING.match(block[timing_at].strip())
        if not match:
            raise TranscriptError(
                f"{source}:{line_no}: malformed cue timing {block[timing_at].strip()!r}; "
                "expected 'hh:mm:ss,mmm --> hh:mm:ss,mmm'"
            )
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        runs = _speaker_lines(block[timing_at + 1 :]) or [(None, "")]
        where = str(line_no)
        if len(runs) == 1:
            segments.append(Segment(runs[0][0], start, end, runs[0][1], where))
            continue
        divided.append(line_no)
        spans = split_by_length(start, end, [t for _, t in runs])
        for (speaker, words), (a, b) in zip(runs, spans, strict=True):
            segments.append(Segment(speaker, a, b, words, where))
    return segments, divided_warnings(source, divided, "name several speakers", "speakers")


def read_srt(path: str | Path) -> Transcript:
    """Read a SubRip file into a :class:`Transcript` (format ``"srt"``); see :func:`parse_srt`.

    Raises
    ------
    TranscriptError
        Naming the file and line of a malformed block, or bytes that cannot be decoded.
    """
    return read_with(parse_srt, path, "srt")
