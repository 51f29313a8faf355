"""Praat TextGrids (``.TextGrid``), long and short text forms, any encoding Praat writes.

Praat's two text forms hold the same values in the same order; the long one labels them
(``xmin = 0``, ``intervals [1]:``), the short one does not. Like Praat's own reader, this
one reads the values (numbers, ``"strings"`` with ``""`` for a quote, ``<exists>``) and
skips the labels, so the variants other writers produce (ELAN's ``item[1]:`` and
``intervals [1]`` without colon, the old ``ooTextFile short`` header) read alike. Praat
writes ASCII, or UTF-16 (with a byte-order mark) when a text needs it; both decode through
:func:`importers.textio.read_text`. Tier names are trimmed (ChildProject pads them).

Which tiers are speakers:

- **Aligner layouts** (Montreal Forced Aligner, FAVE, P2FA, ToBI word tiers): when a tier
  is named ``words`` / ``word`` or ``<speaker> - words`` / ``<speaker> - word``, only
  those word tiers give turns. The speaker is the part before `` - ``; a plain ``words``
  tier has no speaker name in the file, so its turns have speaker ``None`` (the session
  then gives them ``unknown`` or the channel's performer, as for any transcript without
  speakers; naming them after the file or ``words`` would invent a performer). A
  speaker's consecutive words are merged into one turn unless the silence between them is
  at least :data:`PAUSE_SECONDS`; intervals labelled with an aligner's silence mark
  (:data:`SILENCES`: empty, ``sil``, ``sp``, ``spn``, ``<eps>``, ``<SIL>`` ...) are
  silences. Phone tiers and every other tier never give turns.
- **Other grids**: every interval tier but a phone tier (``phones``, ``<speaker> -
  phones``) is a speaker (its name), one turn per non-empty interval. Grids whose tiers
  are the annotation levels of one speech by a known tool (WebMAUS ``ORT``/``KAN``/``MAU``,
  SPPAS ``Tokenization``/``PhonAlign`` ...) are refused with an error that says which tier
  to name, since each level would become a speaker.
- ``tiers=(...)`` (``tiers:`` in ``session.yaml``) names the tiers to use instead; each
  named tier is a speaker named after the tier (a named aligner word tier keeps the
  aligner rule above). A name that is not a tier is an error listing the file's tiers.

Interval tiers that give no turns are listed in one warning (``tiers not used as
speakers``); point tiers (``TextTier``) never give turns and their points are counted in a
warning.

Why not praatio: praatio 6.2 reads the other real grids, but refuses the P2FA grid of
kylebgorman/textgrid's tests (``short_format.TextGrid``: a ``sil`` interval ending at
1372.6225001 "overlaps" the next one at 1372.6225, a rounding artefact Praat accepts),
raises errors that name no line, and decodes by trying UTF-16 then UTF-8 only (a
Windows-1252 grid fails with a bare ``UnicodeDecodeError``, where
:mod:`importers.textio` reads it with a warning). The choice of speaker tiers above is ours
either way, so the hand-written value reader (about 90 lines) stays.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["PAUSE_SECONDS", "SILENCES", "parse_textgrid", "read_textgrid"]

PAUSE_SECONDS = 0.5
"""Silence between two words of an aligner's word tier that starts a new turn."""

SILENCES = frozenset({"", "sil", "sp", "spn", "<eps>", "<sil>", "{sl}", "<p:>", "<p>", "#"})
"""Word labels (compared in lower case) that aligners write for silence or noise."""

_LEVELS = {
    "WebMAUS": ({"ORT", "KAN", "MAU", "MAS", "TRN"}, "ORT"),
    "SPPAS": (
        {"Tokenization", "Phonetization", "PhonAlign", "TokensAlign", "Activity"},
        "Tokenization",
    ),
}
"""Tools whose tiers are annotation levels of one speech (a tool -> its tier names, and the
tier that holds the words): read as one speaker per tier they would be wrong."""

_WORD_TIER = re.compile(r"^(?:(?P<speaker>.+?)\s+-\s+)?words?$", re.IGNORECASE)
_PHONE_TIER = re.compile(r"^(?:.+?\s+-\s+)?phones?$", re.IGNORECASE)

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


@dataclass
class _Tier:
    """One tier as read: class, trimmed name, line, and its intervals or point count."""

    kind: str
    name: str
    line: int
    intervals: list[tuple[float, float, str, int]] = field(default_factory=list)
    points: int = 0


def _read_tiers(text: str, source: str) -> list[_Tier]:
    """Every tier of a text TextGrid, intervals with their label and start line."""
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
    tiers: list[_Tier] = []
    for _ in range(n_tiers):
        line = tokens.line()
        tier_class = tokens.string("the tier class")
        tier = _Tier(tier_class, clean(tokens.string("the tier name")), line)
        tokens.number("tier xmin")
        tokens.number("tier xmax")
        size = tokens.count("number of intervals or points")
        if tier_class == "IntervalTier":
            for _ in range(size):
                start, where = tokens.number("interval xmin")
                end, _ = tokens.number("interval xmax")
                tier.intervals.append((start, end, clean(tokens.string("interval text")), where))
        elif tier_class == "TextTier":
            for _ in range(size):
                tokens.number("point time")
                tokens.string("point mark")
            tier.points = size
        else:
            raise TranscriptError(
                f"{source}:{line}: tier class {tier_class!r}; expected 'IntervalTier' or 'TextTier'"
            )
        tiers.append(tier)
    return tiers


def _merged_words(tier: _Tier, speaker: str | None) -> list[Segment]:
    """An aligner word tier's words, merged into turns at silences of PAUSE_SECONDS."""
    turns: list[Segment] = []
    words: list[tuple[float, float, str, int]] = []
    for interval in tier.intervals:
        if interval[2].lower() in SILENCES:
            continue
        # Times are rounded to microseconds so that a pause of exactly 0.5 s splits.
        if words and round(interval[0] - words[-1][1], 6) >= PAUSE_SECONDS:
            turns.append(_turn(words, speaker))
            words = []
        words.append(interval)
    if words:
        turns.append(_turn(words, speaker))
    return turns


def _turn(words: list[tuple[float, float, str, int]], speaker: str | None) -> Segment:
    text = " ".join(w[2] for w in words)
    return Segment(speaker, words[0][0], words[-1][1], text, str(words[0][3]))


def _intervals(tier: _Tier) -> list[Segment]:
    """One turn per non-empty interval, the speaker named after the tier."""
    return [
        Segment(tier.name or None, a, b, label, str(line))
        for a, b, label, line in tier.intervals
        if label
    ]


def _described(tier: _Tier) -> str:
    n = sum(1 for interval in tier.intervals if interval[2])
    return f"{tier.name!r} ({n} labelled interval{'s' * (n != 1)})"


def _refuse_levels(tiers: list[_Tier], source: str) -> None:
    """Refuse a grid whose tiers are one tool's annotation levels of the same speech."""
    names = {t.name for t in tiers}
    for tool, (levels, words) in _LEVELS.items():
        shared = sorted(names & levels)
        if len(shared) >= 2:
            raise TranscriptError(
                f"{source}: tiers {shared} are {tool}'s annotation levels of the same speech, "
                f"not speakers; expected the speech tier(s) named in session.yaml, e.g. "
                f"'tiers: [{words if words in names else shared[0]}]'"
            )


def parse_textgrid(
    text: str, source: str, *, tiers: Sequence[str] | None = None
) -> tuple[list[Segment], list[str]]:
    """The turns of a TextGrid (pure form of :func:`read_textgrid`), ``where`` the line of
    each turn's first interval.

    Parameters
    ----------
    text, source : str
        The decoded file and its name for messages.
    tiers : sequence of str, optional
        The tiers that are speakers, instead of the ones picked by layout (module doc).

    Raises
    ------
    TranscriptError
        Naming the line: not a text TextGrid (binary, or another Praat object), a value of
        the wrong kind, a tier class other than IntervalTier/TextTier, or an early end; a
        named tier that is not in the file (listing its tiers) or is a point tier; without
        ``tiers``, a grid of WebMAUS or SPPAS annotation levels (:data:`_LEVELS`).
    """
    found = _read_tiers(text, source)
    interval_tiers = [t for t in found if t.kind == "IntervalTier"]
    word_tiers = {id(t): m for t in interval_tiers if (m := _WORD_TIER.match(t.name))}
    if tiers is not None:
        wanted = [clean(name) for name in tiers]
        by_name = {t.name: t for t in found}
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise TranscriptError(
                f"{source}: no tier {', '.join(repr(m) for m in missing)}; the file's tiers "
                f"are {[t.name for t in found]}"
            )
        points = [name for name in wanted if by_name[name].kind != "IntervalTier"]
        if points:
            raise TranscriptError(
                f"{source}:{by_name[points[0]].line}: tier {points[0]!r} is a point tier "
                "(TextTier); expected an interval tier for turns"
            )
        used = [by_name[name] for name in dict.fromkeys(wanted)]
    elif word_tiers:
        used = [t for t in interval_tiers if id(t) in word_tiers]
    else:
        _refuse_levels(interval_tiers, source)
        used = [t for t in interval_tiers if not _PHONE_TIER.match(t.name)]
    segments: list[Segment] = []
    for tier in used:
        match = word_tiers.get(id(tier))
        if match is None:
            segments.extend(_intervals(tier))
        else:
            segments.extend(_merged_words(tier, match.group("speaker")))
    warnings = []
    unused = [t for t in interval_tiers if all(t is not u for u in used)]
    if unused:
        why = (
            "named in tiers"
            if tiers is not None
            else "word tiers only: an aligner layout"
            if word_tiers
            else "phone tiers are no speakers"
        )
        warnings.append(
            f"{source}: tiers not used as speakers ({why}): "
            + ", ".join(_described(t) for t in unused)
        )
    points = [t for t in found if t.kind == "TextTier"]
    if points:
        listed = ", ".join(f"{t.name!r} ({t.points})" for t in points)
        warnings.append(
            f"{source}: skipped {sum(t.points for t in points)} point(s) of TextTier(s) "
            f"{listed}; only IntervalTiers hold turns"
        )
    return segments, warnings


def read_textgrid(path: str | Path, *, tiers: Sequence[str] | None = None) -> Transcript:
    """Read a Praat TextGrid into a :class:`Transcript` (format ``"textgrid"``).

    Parameters
    ----------
    path : str or Path
        The TextGrid file.
    tiers : sequence of str, optional
        The tiers that are speakers (``tiers:`` of ``session.yaml``).

    Raises
    ------
    TranscriptError
        Naming the file and line; see :func:`parse_textgrid`.
    """
    return read_with(partial(parse_textgrid, tiers=tiers), path, "textgrid")
