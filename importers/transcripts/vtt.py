"""WebVTT transcripts with ``<v Speaker>`` voice tags.

A small parser of our own rather than a general WebVTT library: importers must report the
line of every problem (a bad timestamp, a cue without a speaker), which the libraries do not.
Styling tags (``<c.yellow>``, ``<b>``, ``<i>``, ``<u>``, ``<ruby>``, ``<lang>``), timestamp
tags (``<00:00:01.000>``), cue settings (``align:start position:10%``) and ``STYLE``,
``NOTE`` and ``REGION`` blocks are accepted and dropped; character references are decoded.

Two entry points: :func:`read_vtt` (a :class:`Transcript`, cues without a voice have no
speaker, a cue with several voices is divided between them) and the older
:func:`read_webvtt` / :func:`parse_webvtt` (one :class:`Cue` per cue, every cue must have
exactly one voice and end after it starts).

Example
-------
>>> text = "WEBVTT\\n\\n00:00.500 --> 00:02.000\\n<v Maya>Hi there.\\n"
>>> [(c.speaker, c.start, c.end, c.text) for c in parse_webvtt(text)]
[('Maya', 0.5, 2.0, 'Hi there.')]
>>> segments, warnings = parse_vtt(text, "t.vtt")
>>> segments
[Segment(speaker='Maya', start=0.5, end=2.0, text='Hi there.', where='3')]
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from importers.textio import read_text, split_lines
from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["Cue", "parse_vtt", "parse_webvtt", "read_vtt", "read_webvtt"]

_TIME = r"(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING = re.compile(rf"^{_TIME}\s+-->\s+{_TIME}(?:\s+.*)?$")
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+([^>]+)>")
_TAG = re.compile(r"</?[^>]*>")
_COMMENT = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t].*)?$")


@dataclass(frozen=True, slots=True)
class Cue:
    """One transcript cue: a speaker's text between two times (seconds)."""

    speaker: str
    start: float
    end: float
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class _RawCue:
    line: int  # the timing line
    start: float
    end: float
    payload: str


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = groups
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _plain(payload: str) -> str:
    return clean(html.unescape(_TAG.sub("", payload)))


def _raw_cues(text: str, source: str) -> Iterator[_RawCue]:
    # Only CR, LF and CRLF end lines in WebVTT (str.splitlines would also split on U+2028).
    lines = split_lines(text.lstrip("\ufeff"))
    if not lines or not re.match(r"^WEBVTT(?:[ \t].*)?$", lines[0]):
        raise TranscriptError(f"{source}:1: expected the header 'WEBVTT'")
    # Header lines (e.g. "Kind: captions") run until the first blank line.
    i, n = 1, len(lines)
    while i < n and lines[i].strip():
        i += 1
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        block = []
        while i < n and lines[i].strip():
            block.append(lines[i])
            i += 1
        head = block[0].strip()
        if _COMMENT.match(head):
            continue
        timing_at = next((k for k, line in enumerate(block) if "-->" in line), None)
        if timing_at is None or timing_at > 1:
            raise TranscriptError(
                f"{source}:{block_start + 1}: expected a cue timing line "
                f"'HH:MM:SS.mmm --> HH:MM:SS.mmm', got {head!r}"
            )
        line_no = block_start + timing_at + 1
        match = _TIMING.match(block[timing_at].strip())
        if not match:
            raise TranscriptError(
                f"{source}:{line_no}: malformed cue timing {block[timing_at].strip()!r}; "
                "expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'"
            )
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        yield _RawCue(line_no, round(start, 3), round(end, 3), "\n".join(block[timing_at + 1 :]))


def parse_webvtt(text: str, source: str = "<transcript>") -> Iterator[Cue]:
    """Yield the cues of a WebVTT document in file order, each with exactly one voice.

    Parameters
    ----------
    text : str
        The document.
    source : str
        The file name used in error messages.

    Raises
    ------
    TranscriptError
        Naming ``source`` and the line: a missing ``WEBVTT`` header, a malformed timing
        line, an end before its start, or a cue without a ``<v Speaker>`` voice.
    """
    for cue in _raw_cues(text, source):
        if cue.end <= cue.start:
            raise TranscriptError(
                f"{source}:{cue.line}: cue ends at {cue.end:.3f}s, not after its start "
                f"{cue.start:.3f}s"
            )
        voices = {v.strip() for v in _VOICE.findall(cue.payload)}
        if not voices:
            raise TranscriptError(
                f"{source}:{cue.line + 1}: cue has no speaker; expected '<v Name>text'"
            )
        if len(voices) > 1:
            raise TranscriptError(
                f"{source}:{cue.line + 1}: cue has several speakers {sorted(voices)}; "
                "expected one voice per cue (give each speaker a cue of their own)"
            )
        yield Cue(
            speaker=voices.pop(),
            start=cue.start,
            end=cue.end,
            text=_plain(cue.payload),
            line=cue.line,
        )


def read_webvtt(path: str | Path) -> list[Cue]:
    """Parse a WebVTT file (UTF-8 with or without BOM, or UTF-16 with BOM) into its cues.

    Strict: bytes that are not UTF-8 are an error naming the line (no Windows-1252 guess).
    """
    text, _, _ = read_text(path, fallback=False)
    return list(parse_webvtt(text, str(path)))


def divided_warnings(source: str, lines: list[int], what: str, who: str) -> list[str]:
    """The warning (none if ``lines`` is empty) that cues at ``lines`` were divided between
    several speakers by :func:`split_by_length`."""
    if not lines:
        return []
    shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
    return [
        f"{source}: {len(lines)} cue(s) {what} (lines {shown}); their time was divided "
        f"between the {who} in proportion to their text"
    ]


def split_by_length(start: float, end: float, texts: list[str]) -> list[tuple[float, float]]:
    """Divide ``start..end`` between ``texts`` in proportion to their lengths (ms rounded).

    >>> split_by_length(0.0, 3.0, ["ab", "abcd"])
    [(0.0, 1.0), (1.0, 3.0)]
    """
    weights = [max(len(t), 1) for t in texts]
    total = sum(weights)
    bounds = [start]
    acc = 0
    for w in weights[:-1]:
        acc += w
        bounds.append(round(start + (end - start) * acc / total, 3))
    bounds.append(end)
    return list(itertools.pairwise(bounds))


def parse_vtt(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The segments of a WebVTT document, in file order (the pure form of :func:`read_vtt`).

    A cue without a voice gives a segment without speaker; a cue with several voices
    (``<v Maya>Hi.\\n<v Theo>Hello.``) is divided between them in proportion to their text,
    with a warning counting such cues. Times are not checked here (see
    :func:`importers.transcripts.checks.check_segments`).
    """
    segments: list[Segment] = []
    divided: list[int] = []
    for cue in _raw_cues(text, source):
        where = str(cue.line)
        marks = list(_VOICE.finditer(cue.payload))
        if len(marks) <= 1:
            speaker = marks[0].group(1).strip() if marks else None
            segments.append(Segment(speaker, cue.start, cue.end, _plain(cue.payload), where))
            continue
        # Text before the first voice belongs to it; each voice runs until the next one.
        parts = [
            (m.group(1).strip(), cue.payload[(0 if k == 0 else m.start()) : nxt])
            for k, (m, nxt) in enumerate(
                zip(marks, [m.start() for m in marks[1:]] + [len(cue.payload)], strict=True)
            )
        ]
        texts = [_plain(p) for _, p in parts]
        spans = split_by_length(cue.start, cue.end, texts)
        divided.append(cue.line)
        for (speaker, _), words, (a, b) in zip(parts, texts, spans, strict=True):
            segments.append(Segment(speaker, a, b, words, where))
    return segments, divided_warnings(source, divided, "hold several voices", "voices")


def read_vtt(path: str | Path) -> Transcript:
    """Read a WebVTT file into a :class:`Transcript` (format ``"vtt"``); see :func:`parse_vtt`.

    Raises
    ------
    TranscriptError
        Naming the file and line: no ``WEBVTT`` header, a block without a timing line, a
        malformed timing line, or bytes that cannot be decoded.
    """
    return read_with(parse_vtt, path, "vtt")
