"""Praat TextGrids (``.TextGrid``), long and short text forms, any encoding Praat writes.

Praat's two text forms hold the same values in the same order; the long one labels them
(``xmin = 0``, ``intervals [1]:``), the short one does not. Like Praat's own reader, this
one reads the values (numbers, ``"strings"`` with ``""`` for a quote, ``<exists>``) and
skips the labels. Each ``IntervalTier`` is a speaker (its name); each non-empty interval a
turn; empty intervals are silences. ``TextTier`` points are skipped and counted in a
warning. Praat writes ASCII, or UTF-16 (with a byte-order mark) when a text needs it;
both decode through :func:`importers.textio.read_text`.

Example
-------
>>> doc = '''File type = "ooTextFile"
... Object class = "TextGrid"
...
... 0
... 2
... <exists>
... 1
... "IntervalTier"
... "Maya"
... 0
... 2
... 2
... 0
... 0.5
... ""
... 0.5
... 2
... "Hi ""there""."
... '''
>>> parse_textgrid(doc, "s.TextGrid")[0]
[Segment(speaker='Maya', start=0.5, end=2.0, text='Hi "there".', where='16')]
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_textgrid", "read_textgrid"]

# A value: a string, a flag, or a number that is not a label's index ("item [1]:").
_TOKEN = re.compile(
    r'"(?P<string>(?:[^"]|"")*)"'
    r"|(?P<flag><exists>|<absent>)"
    r"|(?<![\w\[.])(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w\].])"
    r"|(?P<comment>!.*)"
)


class _Tokens:
    """The values of a TextGrid, each with its line, read one at a time."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.items: list[tuple[str, str, int]] = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup or ""
            if kind == "comment":
                continue
            line = bisect.bisect_right(starts, match.start())
            value = match.group(kind)
            if kind == "string":
                value = value.replace('""', '"')
            self.items.append((kind, value, line))
        self.at = 0

    def line(self) -> int:
        if self.at < len(self.items):
            return self.items[self.at][2]
        return self.items[-1][2] if self.items else 1

    def take(self, kind: str, what: str) -> tuple[str, int]:
        if self.at >= len(self.items):
            raise TranscriptError(
                f"{self.source}:{self.line()}: the file ends where {what} was expected"
            )
        got, value, line = self.items[self.at]
        if got != kind:
            shown = f'"{value}"' if got == "string" else value
            raise TranscriptError(f"{self.source}:{line}: {shown} where {what} was expected")
        self.at += 1
        return value, line

    def number(self, what: str) -> tuple[float, int]:
        value, line = self.take("number", f"a number ({what})")
        return float(value), line

    def count(self, what: str) -> int:
        value, line = self.take("number", f"a count ({what})")
        if not value.isdigit():
            raise TranscriptError(
                f"{self.source}:{line}: {value} where a count ({what}) was expected"
            )
        return int(value)

    def string(self, what: str) -> str:
        return self.take("string", f"a quoted string ({what})")[0]


def parse_textgrid(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The turns of a TextGrid (pure form of :func:`read_textgrid`), ``where`` the line of
    each interval's start.

    Raises
    ------
    TranscriptError
        Naming the line: not a text TextGrid (binary, or another Praat object), a value of
        the wrong kind, a tier class other than IntervalTier/TextTier, or an early end.
    """
    tokens = _Tokens(text.lstrip("\ufeff"), source)
    file_type = tokens.string("the file type")
    if file_type not in ("ooTextFile", "ooTextFile short"):
        raise TranscriptError(
            f"{source}:1: file type {file_type!r}; expected 'ooTextFile' (a text TextGrid; "
            "save binary ones as text from Praat)"
        )
    object_class = tokens.string("the object class")
    if not object_class.startswith("TextGrid"):
        raise TranscriptError(f"{source}:2: object class {object_class!r}; expected 'TextGrid'")
    tokens.number("xmin")
    tokens.number("xmax")
    exists, _ = tokens.take("flag", "<exists> or <absent>")
    n_tiers = tokens.count("number of tiers") if exists == "<exists>" else 0
    segments: list[Segment] = []
    points: dict[str, int] = {}
    for _ in range(n_tiers):
        line = tokens.line()
        tier_class = tokens.string("the tier class")
        name = tokens.string("the tier name")
        tokens.number("tier xmin")
        tokens.number("tier xmax")
        size = tokens.count("number of intervals or points")
        if tier_class == "IntervalTier":
            for _ in range(size):
                start, where = tokens.number("interval xmin")
                end, _ = tokens.number("interval xmax")
                label = clean(tokens.string("interval text"))
                if label:
                    segments.append(Segment(clean(name) or None, start, end, label, str(where)))
        elif tier_class == "TextTier":
            for _ in range(size):
                tokens.number("point time")
                tokens.string("point mark")
            points[name] = size
        else:
            raise TranscriptError(
                f"{source}:{line}: tier class {tier_class!r}; expected 'IntervalTier' or 'TextTier'"
            )
    warnings = []
    if points:
        listed = ", ".join(f"{name!r} ({n})" for name, n in points.items())
        warnings.append(
            f"{source}: skipped {sum(points.values())} point(s) of TextTier(s) {listed}; "
            "only IntervalTiers hold turns"
        )
    return segments, warnings


def read_textgrid(path: str | Path) -> Transcript:
    """Read a Praat TextGrid into a :class:`Transcript` (format ``"textgrid"``).

    Raises
    ------
    TranscriptError
        Naming the file and line; see :func:`parse_textgrid`.
    """
    return read_with(parse_textgrid, path, "textgrid")
