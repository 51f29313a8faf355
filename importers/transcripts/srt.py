"""SubRip (``.srt``) subtitles, with the speaker conventions of :mod:`.speakers`.

Each cue is an optional number line, a timing line ``hh:mm:ss,mmm --> hh:mm:ss,mmm`` and
text lines. Accepted as real writers produce them: a ``.`` for the ``,``, one to three
decimals (``00:00:01,5`` is 1.5 s), hours left out, trailing ``X1:... Y2:...``
coordinates, numbers out of sequence or missing, a byte-order mark, CRLF or CR line ends, no
final newline, no empty line before the next cue's number and timing. A block with neither
number nor timing continues the cue before it (some writers put empty lines inside a cue's
text), counted in a warning. ``<i>``, ``<b>``, ``<u>``, ``<font ...>`` and ``{\\an8}``-style
tags are removed and character references decoded.

Speakers (:mod:`.speakers`): ``Name: text`` and ``[SPEAKER_00]: text`` prefixes, bracketed
labels (``[Theo]``, Deepgram's ``[speaker 0]`` line), ``>> NAME:``, ``<v Name>`` voices and
dialogue dashes (``- MAYA: Sorry.`` / ``- THEO: Ha!``); a cue naming several speakers is
divided between them.

Why not the ``srt`` library
---------------------------
``srt`` (3.5.3, MIT) reads the real files of the test corpus into the same cues, and it joins
a block of text after an empty line to the cue before it. It is not used because:

* ``00:00:01.5`` is read as 1.005 s (the decimals taken as milliseconds): a silent
  misreading of times, the worst kind of error for an importer;
* a malformed timing ``00:00:01,000 --> 00:00:0x,000`` gives a cue ending at 0 s instead
  of an error;
* its subtitles carry no line numbers (its parse errors give character offsets), so
  errors and warnings could not name the line, and text joined across an empty line is
  joined without a word.

Example
-------
>>> text = "1\\n00:00:01,000 --> 00:00:02,500\\nMAYA: Hi there.\\nHow are you?\\n"
>>> parse_srt(text, "t.srt")[0]
[Segment(speaker='MAYA', start=1.0, end=2.5, text='Hi there. How are you?', where='2')]
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from importers.textio import split_lines
from importers.transcripts import speakers
from importers.transcripts.records import Segment, Transcript, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_srt", "read_srt"]

_TIME = r"(?:(\d+):)?([0-5]?\d):([0-5]?\d)[,.](\d{1,3})"
_TIMING = re.compile(rf"^{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"</?(?:i|b|u|font)(?:\s[^>]*)?>|\{\\[^}]*\}", re.IGNORECASE)
_EXPECTED = "'hh:mm:ss,mmm --> hh:mm:ss,mmm'"


@dataclass(slots=True)
class _RawCue:
    line: int  # the timing line
    start: float
    end: float
    text: list[str] = field(default_factory=list)


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, fraction = groups
    assert minutes is not None and seconds is not None and fraction is not None
    whole = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return round(whole + int(fraction) / 10 ** len(fraction), 3)


def _timing(line: str, number: int, source: str) -> tuple[float, float]:
    match = _TIMING.match(line.strip())
    if not match:
        raise TranscriptError(
            f"{source}:{number}: malformed cue timing {line.strip()!r}; expected {_EXPECTED}"
        )
    return _seconds(match.groups()[:4]), _seconds(match.groups()[4:])


def _raw_cues(text: str, source: str) -> tuple[list[_RawCue], list[int]]:
    """The cues in file order, and the lines of blocks joined to the cue before them."""
    lines = split_lines(text.lstrip("\ufeff"))
    cues: list[_RawCue] = []
    joined: list[int] = []
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        start = i
        while i < n and lines[i].strip():
            i += 1
        block = [line.strip() for line in lines[start:i]]
        arrows = [k for k, line in enumerate(block) if "-->" in line]
        # Each timing line starts a cue; a number line just before it is its number.
        cuts = [k - 1 if k > 0 and block[k - 1].isdigit() else k for k in arrows]
        lead = block[: cuts[0]] if cuts else block
        if lead and block[0].isdigit() and len(lead) > 1:
            raise TranscriptError(
                f"{source}:{start + 2}: expected a timing line {_EXPECTED} after the cue "
                f"number {block[0]!r}, got {block[1]!r}"
            )
        if lead and not cues:
            raise TranscriptError(
                f"{source}:{start + 1}: expected a cue number or a timing line {_EXPECTED}, "
                f"got {block[0]!r}"
            )
        if lead:  # text after an empty line inside a cue: the cue before it goes on
            cues[-1].text.extend(lead)
            joined.append(start + 1)
        for j, k in enumerate(arrows):
            cue = _RawCue(start + k + 1, *_timing(block[k], start + k + 1, source))
            cue.text.extend(block[k + 1 : cuts[j + 1] if j + 1 < len(cuts) else len(block)])
            cues.append(cue)
    return cues, joined


def _text_cue(cue: _RawCue) -> speakers.Cue:
    """The cue's lines as ``(voice, plain text)`` pairs."""
    lines = tuple(
        (voice, html.unescape(_TAG.sub("", line)))
        for voice, stretch in speakers.split_voices("\n".join(cue.text))
        for line in stretch.split("\n")
    )
    return speakers.Cue(cue.line, cue.start, cue.end, lines)


def parse_srt(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The segments of a SubRip document in file order (pure form of :func:`read_srt`).

    ``where`` is the line of each cue's timing line. Speakers as
    :func:`importers.transcripts.speakers.cue_turns` reads them. Times are not checked here.

    Raises
    ------
    TranscriptError
        Naming the line: text before the first cue, a cue number without a timing line, or
        a malformed timing line.
    """
    cues, joined = _raw_cues(text, source)
    segments, warnings = speakers.cue_turns([_text_cue(c) for c in cues], source)
    if joined:
        shown = ", ".join(map(str, joined[:10])) + (" ..." if len(joined) > 10 else "")
        warnings.insert(
            0,
            f"{source}: {len(joined)} block(s) without a cue number or timing line continue "
            f"the cue before them (an empty line inside a cue's text; lines {shown})",
        )
    return segments, warnings


def read_srt(path: str | Path) -> Transcript:
    """Read a SubRip file into a :class:`Transcript` (format ``"srt"``); see :func:`parse_srt`.

    Raises
    ------
    TranscriptError
        Naming the file and line of a malformed block, or bytes that cannot be decoded.
    """
    return read_with(parse_srt, path, "srt")
