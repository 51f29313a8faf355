"""WebVTT transcripts: cues cut as the WebVTT specification's parser cuts them.

Blocks are separated by empty lines (a line holding spaces is not empty: it belongs to the
cue text, as YouTube's captions rely on), and a line containing ``-->`` starts a new cue even
without an empty line before it. ``NOTE``, ``STYLE`` and ``REGION`` blocks and the header's
lines (``Kind: captions``) are skipped; cue identifiers (``12``, Teams' ``6d1a.../12-0``)
and cue settings (``align:start position:10%``) are read and dropped; hours are optional.
Times may also have one-digit minutes and seconds and one to three decimals
(``0:0:0.570``, as some Teams versions write). Styling tags (``<c.yellow>``, ``<b>``,
``<i>``, ``<u>``, ``<ruby>``, ``<lang>``) and karaoke timestamps (``<00:00:01.000>``) are
removed and character references (``&amp;``) decoded. Unlike the specification's parser,
which drops what it cannot read without a word, a malformed timing line or a block that is
neither a cue nor a ``NOTE``/``STYLE``/``REGION`` block is an error naming its line.

Speakers come from :mod:`.speakers`: ``<v Name>`` voices, ``Name: text`` prefixes, diarisation
labels, dialogue dashes; a cue with several speakers is divided between them.

Why not webvtt-py
-----------------
webvtt-py (0.6.0, MIT) cuts the real files of the test corpus into the same cues (it follows
the specification, ``-->`` without an empty line before it included), but it does not fit an
importer that must name the line of every problem and drop nothing silently:

* its captions carry no line numbers, so no error or warning could name the cue's line;
* a cue with a malformed timing (``00:01.000 --> 00:02``, ``00:01,000 --> 00:02,000``,
  ``00:61:00.000 --> ...``) and a stray block of text are dropped without a word; its strict
  mode raises instead, but without the line, and then also refuses the ``0:0:0.570`` times
  Teams writes;
* ``Caption.voice`` gives the first voice of a cue only, and ``Caption.text`` keeps
  ``&amp;`` undecoded, so the cue text would be re-read from ``raw_text`` anyway.

What remains of its work (splitting on empty lines and ``-->`` lines) is the small loop
below, so this module keeps its own parser.

Two entry points: :func:`read_vtt` (a :class:`Transcript`, see :func:`parse_vtt`) and the
older :func:`read_webvtt` / :func:`parse_webvtt` (one :class:`Cue` per cue, every cue must
have exactly one voice and end after it starts).

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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from importers.textio import read_text, split_lines
from importers.transcripts import speakers
from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["Cue", "parse_vtt", "parse_webvtt", "read_vtt", "read_webvtt"]

_TIME = r"(?:(\d+):)?([0-5]?\d):([0-5]?\d)\.(\d{1,3})"
_TIMING = re.compile(rf"^[ \t]*{_TIME}[ \t]*-->[ \t]*{_TIME}(?:[ \t].*)?$")
_TAG = re.compile(r"</?[^>]*>")
_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_OTHER_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t].*)?$")
_EXPECTED = "expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'"


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
    hours, minutes, seconds, fraction = groups
    assert minutes is not None and seconds is not None and fraction is not None
    whole = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return round(whole + int(fraction) / 10 ** len(fraction), 3)


def _plain(payload: str) -> str:
    return clean(html.unescape(_TAG.sub("", payload)))


def _raw_cues(text: str, source: str) -> Iterator[_RawCue]:
    # Only CR, LF and CRLF end lines in WebVTT (str.splitlines would also split on U+2028).
    lines = split_lines(text.lstrip("\ufeff"))
    if not lines or not _HEADER.match(lines[0]):
        raise TranscriptError(f"{source}:1: expected the header 'WEBVTT'")
    # Header lines (e.g. "Kind: captions") run until an empty line or a timing line.
    i, n = 1, len(lines)
    while i < n and lines[i] and "-->" not in lines[i]:
        i += 1
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i]
        if _OTHER_BLOCK.match(head):
            # NOTE, STYLE, REGION: up to an empty line, or a timing line that starts a cue.
            i += 1
            while i < n and lines[i] and not ("-->" in lines[i] and _TIMING.match(lines[i])):
                i += 1
            continue
        if "-->" in head:
            timing_at = i
        elif i + 1 < n and "-->" in lines[i + 1]:
            timing_at = i + 1  # after a cue identifier
        else:
            raise TranscriptError(
                f"{source}:{i + 1}: expected a cue timing line 'HH:MM:SS.mmm --> HH:MM:SS.mmm', "
                f"got {head.strip()!r}"
            )
        match = _TIMING.match(lines[timing_at])
        if not match:
            raise TranscriptError(
                f"{source}:{timing_at + 1}: malformed cue timing {lines[timing_at].strip()!r}; "
                f"{_EXPECTED}"
            )
        # The cue text runs to an empty line; a line containing "-->" starts the next cue.
        i = timing_at + 1
        while i < n and lines[i] and "-->" not in lines[i]:
            i += 1
        yield _RawCue(
            timing_at + 1,
            _seconds(match.groups()[:4]),
            _seconds(match.groups()[4:]),
            "\n".join(lines[timing_at + 1 : i]),
        )


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
        voices = {speakers.voice_name(v) for v in speakers.VOICE.findall(cue.payload) if v.strip()}
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


def _text_cue(cue: _RawCue) -> speakers.Cue:
    """The cue's lines as ``(voice, plain text)`` pairs."""
    lines = tuple(
        (voice, html.unescape(_TAG.sub("", line)))
        for voice, stretch in speakers.split_voices(cue.payload)
        for line in stretch.split("\n")
    )
    return speakers.Cue(cue.line, cue.start, cue.end, lines)


def parse_vtt(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The segments of a WebVTT document, in file order (the pure form of :func:`read_vtt`).

    Speakers as :func:`importers.transcripts.speakers.cue_turns` reads them: a cue with
    several voices (``<v Maya>Hi.\\n<v Theo>Hello.``) or dialogue dashes is divided between
    them in proportion to their text, an empty cue is no segment, a cue without a name has
    no speaker unless the file names one on most cues; warnings count each case. Times are
    not checked here (see :func:`importers.transcripts.checks.check_segments`).
    """
    return speakers.cue_turns([_text_cue(c) for c in _raw_cues(text, source)], source)


def read_vtt(path: str | Path) -> Transcript:
    """Read a WebVTT file into a :class:`Transcript` (format ``"vtt"``); see :func:`parse_vtt`.

    Raises
    ------
    TranscriptError
        Naming the file and line: no ``WEBVTT`` header, a block without a timing line, a
        malformed timing line, or bytes that cannot be decoded.
    """
    return read_with(parse_vtt, path, "vtt")
