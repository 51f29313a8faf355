"""WebVTT transcripts with ``<v Speaker>`` voice tags.

A small parser of our own rather than a general WebVTT library: importers must report the
line of every problem (a bad timestamp, a cue without a speaker), which the libraries do not.

Example
-------
>>> text = "WEBVTT\\n\\n00:00.500 --> 00:02.000\\n<v Maya>Hi there.\\n"
>>> [(c.speaker, c.start, c.end, c.text) for c in parse_webvtt(text)]
[('Maya', 0.5, 2.0, 'Hi there.')]
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import TranscriptError

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


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = groups
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse_webvtt(text: str, source: str = "<transcript>") -> Iterator[Cue]:
    """Yield the cues of a WebVTT document in file order.

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
    # Only CR, LF and CRLF end lines in WebVTT (str.splitlines would also split on U+2028).
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
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
        if end <= start:
            raise TranscriptError(
                f"{source}:{line_no}: cue ends at {end:.3f}s, not after its start {start:.3f}s"
            )
        payload = "\n".join(block[timing_at + 1 :])
        voices = {v.strip() for v in _VOICE.findall(payload)}
        if not voices:
            raise TranscriptError(
                f"{source}:{line_no + 1}: cue has no speaker; expected '<v Name>text'"
            )
        if len(voices) > 1:
            raise TranscriptError(
                f"{source}:{line_no + 1}: cue has several speakers {sorted(voices)}; "
                "expected one voice per cue (give each speaker a cue of their own)"
            )
        voice = _VOICE.search(payload)
        words = html.unescape(_TAG.sub("", payload))
        yield Cue(
            speaker=voice.group(1).strip(),
            start=round(start, 3),
            end=round(end, 3),
            text=" ".join(words.split()),
            line=line_no,
        )


def read_webvtt(path: str | Path) -> list[Cue]:
    """Parse a WebVTT file (UTF-8, with or without BOM) into its cues."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read transcript ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
        line = raw[: exc.start + bom].count(b"\n") + 1
        raise TranscriptError(f"{path}:{line}: not valid UTF-8 text") from None
    return list(parse_webvtt(text, str(path)))
