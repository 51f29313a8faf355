"""Who speaks in a subtitle cue: the speaker conventions WebVTT and SubRip files share.

The readers (:mod:`.vtt`, :mod:`.srt`) cut a file into cues; this module turns the cues into
turns. One turn per cue, except a cue holding several speakers, which gives one turn per
speaker with the cue's time divided in proportion to their text. Conventions understood:

``<v Name>text`` (WebVTT voices, also ``<v.loud Name>`` and ``</v>``)
    Always a speaker. A cue with several voices gives one turn per voice.
``[SPEAKER_00]: text``, ``[SPEAKER_00] text``, ``SPEAKER_00: text``, ``[speaker 0]``
    Diarisation labels (WhisperX writes ``[SPEAKER_00]: ``; Deepgram's SubRip writes
    ``[speaker 0]`` on a line of its own, and only when the speaker changes). Always a
    speaker.
``[Alba] text``
    A bracketed name in title case with text after it (the speaker label of SDH
    subtitles). A name in lower case (``[laughs]``) or a common sound description
    (``[Music]``, ``[Laughter]``, see :data:`SOUNDS`) is text.
``Name: text``, ``>> Name: text``, ``[NAME] text``, ``[李明] text``
    Zoom, Teams and Meet exports, broadcast captions. A name is at most five words and
    40 characters of letters (any script), digits, spaces, apostrophes and ``. - _ ( ) / &``
    with at least one letter, followed by ``:`` (or a full-width colon) and a space. As
    ordinary sentences also hold a colon (``Note: the bus is late``), such a prefix is a
    name only when the file uses the convention and the name is used as one: it prefixes
    at least two cues and reads as a name (every word of four letters or more outside
    parentheses begins with a capital), or most cues of the file carry a prefix and this
    one prefixes two cues, reads as a name or has at most two words (Zoom keeps ``mary``
    as typed, but ``so the plan: we meet`` is a sentence).
``- text`` dialogue dashes
    A cue with two or more lines starting with ``-`` holds several speakers: one turn per
    dash line (with the lines after it), named by a prefix on that line or else without a
    speaker. A line of only ``-`` or starting with ``--`` is text.

A cue without a name continues the previous speaker when the file names speakers on most of
its cues (or labels every cue where the speaker changes with diarisation labels, starting on
its first cue); one warning counts those cues. Elsewhere a cue without a name has no speaker
(``None``): the session decides (``unknown`` or the channel's performer). A cue whose text is
empty once tags are removed is not a turn (counted in a warning).

Example
-------
>>> cues = [Cue(3, 0.0, 2.0, ((None, "Maya: Hi there."),)), Cue(6, 2.0, 3.0, ((None, "Sure."),)),
...         Cue(9, 3.0, 5.0, ((None, "Theo: Hello."),))]
>>> segments, warnings = cue_turns(cues, "t.vtt")
>>> [(s.speaker, s.text) for s in segments]
[('Maya', 'Hi there.'), ('Maya', 'Sure.'), ('Theo', 'Hello.')]
>>> warnings  # doctest: +ELLIPSIS
["t.vtt: 1 cue(s) name no speaker and continue the previous one, ... (line 6: 'Sure.')"]
"""

from __future__ import annotations

import html
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from importers.transcripts.records import Segment, clean

__all__ = [
    "SOUNDS",
    "Cue",
    "Prefix",
    "cue_turns",
    "divided_warnings",
    "find_prefix",
    "split_by_length",
    "split_voices",
    "voice_name",
]

# fmt: off
SOUNDS = frozenset((
    "applause", "background", "beep", "beeping", "bell", "birds", "breathing", "buzzing",
    "chatter", "cheering", "cheers", "chuckles", "chuckling", "clapping", "clears", "coughs",
    "coughing", "crosstalk", "cries", "crying", "door", "footsteps", "gasps", "giggles",
    "groans", "grunts", "hums", "humming", "inaudible", "indistinct", "laughing", "laughs",
    "laughter", "moans", "mumbles", "murmuring", "music", "noise", "pause", "phone", "ringing",
    "screams", "screaming", "shouting", "sighs", "silence", "singing", "sings", "sniffles",
    "sniffs", "sobbing", "static", "thunder", "unintelligible", "whispers", "whispering",
))
# fmt: on
"""First words of bracketed sound descriptions that are never speaker names."""

VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:[ \t]+([^>]*))?>")
"""A WebVTT voice start tag; group 1 is the name (an empty name is no voice)."""
_VOICE_END = re.compile(r"</v\s*>")
_MARK = re.compile(r"^(?:>{2,}\s*|[-\u2010\u2013]\s*(?=[^\s-]))")
_DASH = re.compile(r"^[-\u2010\u2013](?!-)\s*(?=\S)")
_ID = re.compile(r"^(?:SPEAKER_\d+|speaker[ _]?\d+)$", re.IGNORECASE)
_BRACKET = re.compile(r"^\[(?P<name>[^\[\]]{1,40})\]\s*(?:[:\uff1a]\s*)?")
_COLON = re.compile(r"^(?P<name>[^:\uff1a\[\]<>]{1,40}?)\s?[:\uff1a](?:\s+|$)")
_NAME = re.compile(r"^[\w'\u2019.\-()/& ]+$")


@dataclass(frozen=True, slots=True)
class Cue:
    """A cue as a reader cut it: ``lines`` are ``(voice, text)`` pairs, tags removed.

    ``line`` is the 1-based line of the cue's timing line (the ``where`` of its turns);
    ``voice`` is the name of a ``<v Name>`` tag the text belongs to, else ``None``.
    """

    line: int
    start: float
    end: float
    lines: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True, slots=True)
class Prefix:
    """A speaker name found at the start of a line.

    ``kind`` is ``"id"`` (a diarisation label), ``"label"`` (a bracketed title-case name)
    or ``"colon"`` (``Name: text`` or an upper-case ``[NAME] text``, a name only when the
    file uses the convention); ``rest`` is the text after it.
    """

    name: str
    kind: str
    rest: str


def _shape(name: str) -> bool:
    """Whether ``name`` can be a speaker name (see the module docstring)."""
    return (
        bool(_NAME.match(name))
        and name[0].isalnum()
        and any(c.isalpha() for c in name)
        and len(name.split()) <= 5
        and ".." not in name
    )


def _reads_as_name(name: str) -> bool:
    """Every word of four letters or more outside parentheses begins with a capital."""
    outside = re.sub(r"\([^)]*\)", " ", name)
    return all(not w[0].islower() for w in outside.split() if len(w) >= 4)


def find_prefix(line: str) -> Prefix | None:
    """The speaker prefix at the start of a text line, if the line has one.

    A leading ``>>`` (broadcast speaker change) or a single dialogue dash is skipped.

    >>> find_prefix(">> Dr. Jane O'Neil (she/her): Good morning.")
    Prefix(name="Dr. Jane O'Neil (she/her)", kind='colon', rest='Good morning.')
    >>> find_prefix("[SPEAKER_01]: yes"), find_prefix("at 3:30 we leave")
    (Prefix(name='SPEAKER_01', kind='id', rest='yes'), None)
    >>> find_prefix("[Alba] En 1928,"), find_prefix("[laughs] Oh no")
    (Prefix(name='Alba', kind='label', rest='En 1928,'), None)
    """
    text = _MARK.sub("", line.strip(), count=1)
    bracket = _BRACKET.match(text)
    if bracket:
        name, rest = clean(bracket.group("name")), text[bracket.end() :].strip()
        if _ID.match(name):
            return Prefix(name, "id", rest)
        if not rest or not _shape(name) or name[0].islower():
            return None
        if name.split()[0].lower().strip(".,!") in SOUNDS:
            return None
        # Title case is an SDH speaker label; upper case or a script without case (and a
        # leading digit) may as well be a sound or a note: a name if the file uses it so.
        kind = "label" if name[0].isupper() and not name.isupper() else "colon"
        return Prefix(name, kind, rest)
    colon = _COLON.match(text)
    if colon:
        name, rest = clean(colon.group("name")), text[colon.end() :].strip()
        if _ID.match(name):
            return Prefix(name, "id", rest)
        if _shape(name):
            return Prefix(name, "colon", rest)
    return None


def voice_name(raw: str | None) -> str:
    """The name of a voice tag: character references decoded, spaces collapsed.

    >>> voice_name(" Carlos Far&#237;as ")
    'Carlos Farías'
    """
    return clean(html.unescape(raw or ""))


def split_voices(payload: str) -> list[tuple[str | None, str]]:
    """``(voice, text)`` stretches of a cue payload cut at ``<v Name>`` tags.

    Text before the first voice has the voice ``None``; ``</v>`` closers are dropped.

    >>> split_voices("<v Maya>Hi.</v> <v.loud Theo>Hello.")
    [('Maya', 'Hi. '), ('Theo', 'Hello.')]
    """
    parts: list[tuple[str | None, str]] = []
    at, voice = 0, None
    for match in VOICE.finditer(payload):
        if match.start() > at or parts:
            parts.append((voice, payload[at : match.start()]))
        name = voice_name(match.group(1))
        voice, at = name or None, match.end()
    parts.append((voice, payload[at:]))
    return [(v, _VOICE_END.sub("", t)) for v, t in parts if v is not None or t.strip()]


def split_by_length(start: float, end: float, texts: Sequence[str]) -> list[tuple[float, float]]:
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


def _lines(numbers: Sequence[int]) -> str:
    shown = ", ".join(map(str, numbers[:10])) + (" ..." if len(numbers) > 10 else "")
    return f"line{'s' if len(numbers) > 1 else ''} {shown}"


def divided_warnings(source: str, lines: Sequence[int]) -> list[str]:
    """The warning (none if ``lines`` is empty) that the cues at ``lines`` were divided."""
    if not lines:
        return []
    return [
        f"{source}: {len(lines)} cue(s) hold several speakers ({_lines(lines)}); their time "
        "was divided between the speakers in proportion to their text"
    ]


@dataclass(slots=True)
class _Row:
    voice: str | None
    text: str
    prefix: Prefix | None
    dash: bool = False


@dataclass(slots=True)
class _Text:
    cue: Cue
    rows: list[_Row]
    voiced: bool
    dialogue: bool

    @property
    def label(self) -> Prefix | None:
        """The prefix on the cue's first line."""
        return self.rows[0].prefix


def _read(cue: Cue) -> _Text | None:
    """The non-empty rows of a cue with their prefixes, or None for an empty cue."""
    pairs = [(v, t.strip()) for v, t in cue.lines]
    voiced = any(v is not None for v, _ in pairs)
    pairs = [(v, t) for v, t in pairs if t]
    if not pairs:
        return None
    if voiced:
        return _Text(cue, [_Row(v, t, None) for v, t in pairs], True, False)
    dialogue = sum(bool(_DASH.match(t)) for _, t in pairs) >= 2
    rows = []
    for _, t in pairs:
        dash = dialogue and bool(_DASH.match(t))
        text = _DASH.sub("", t, count=1) if dash else t
        rows.append(_Row(None, text, find_prefix(text), dash))
    return _Text(cue, rows, False, dialogue)


def _accepted(texts: list[_Text]) -> tuple[set[str], str | None]:
    """The ``colon`` names the file uses as names, and why unnamed cues continue (or None)."""
    labelled = [t for t in texts if t.voiced or t.label is not None]
    most = 2 * len(labelled) > len(texts)
    counts = Counter(
        name
        for t in texts
        for name in {r.prefix.name for r in t.rows if r.prefix and r.prefix.kind == "colon"}
    )
    names = {
        n
        for n, k in counts.items()
        if (k >= 2 and _reads_as_name(n))
        or (most and (k >= 2 or _reads_as_name(n) or len(n.split()) <= 2))
    }
    prefixes = [r.prefix for t in texts for r in t.rows if r.prefix is not None]
    on_change = bool(texts) and texts[0].label is not None and all(p.kind == "id" for p in prefixes)
    if most:
        return names, "as the file names the speaker on most cues"
    if on_change:
        return names, "as the file labels the speaker only where it changes"
    return names, None


def cue_turns(cues: Sequence[Cue], source: str) -> tuple[list[Segment], list[str]]:
    """The turns of a file's cues, in file order, and the warnings about them.

    Parameters
    ----------
    cues : sequence of Cue
        Every cue of the file in file order (their text decides which prefixes are names).
    source : str
        The file name warnings start with.

    Returns
    -------
    segments : list of Segment
        One per cue, or one per speaker of a cue holding several; ``where`` is the cue's
        timing line. Speaker ``None`` where the file does not say.
    warnings : list of str
        Counting empty cues (not turns), cues that continue the previous speaker, and cues
        divided between several speakers.
    """
    texts: list[_Text] = []
    empty: list[int] = []
    for cue in cues:
        read = _read(cue)
        if read is None:
            empty.append(cue.line)
        else:
            texts.append(read)
    names, why = _accepted(texts)

    def named(row: _Row) -> Prefix | None:
        p = row.prefix
        return p if p is not None and (p.kind != "colon" or p.name in names) else None

    segments: list[Segment] = []
    continued: list[tuple[int, str]] = []
    divided: list[int] = []
    previous: str | None = None
    for t in texts:
        parts: list[tuple[str | None, list[str]]] = []
        for row in t.rows:
            if t.voiced:
                if parts and row.voice in (parts[-1][0], None):
                    parts[-1][1].append(row.text)
                else:
                    parts.append((row.voice, [row.text]))
                continue
            prefix = named(row)
            if prefix is not None or row.dash or not parts:
                parts.append(
                    (prefix.name if prefix else None, [prefix.rest if prefix else row.text])
                )
            else:
                parts[-1][1].append(row.text)
        if t.voiced and parts[0][0] is None and len(parts) > 1:
            # Text before the first voice belongs to it.
            parts[1] = (parts[1][0], parts[0][1] + parts[1][1])
            parts.pop(0)
        joined = [(speaker, clean(" ".join(words))) for speaker, words in parts]
        if not (t.voiced or t.dialogue) and joined[0][0] is None and why and previous:
            joined[0] = (previous, joined[0][1])
            continued.append((t.cue.line, joined[0][1]))
        joined = [(s, words) for s, words in joined if words]
        if not joined:
            empty.append(t.cue.line)
            continue
        spans = [(t.cue.start, t.cue.end)]
        if len(joined) > 1:
            divided.append(t.cue.line)
            spans = split_by_length(t.cue.start, t.cue.end, [w for _, w in joined])
        for (speaker, words), (a, b) in zip(joined, spans, strict=True):
            segments.append(Segment(speaker, a, b, words, str(t.cue.line)))
        previous = joined[-1][0]
    return segments, _warnings(source, sorted(empty), continued, divided, why or "")


def _warnings(
    source: str, empty: list[int], continued: list[tuple[int, str]], divided: list[int], why: str
) -> list[str]:
    warnings = []
    if empty:
        warnings.append(
            f"{source}: {len(empty)} empty cue(s), without text once tags are removed, are "
            f"not turns ({_lines(empty)})"
        )
    if continued:
        shown = ", ".join(
            f"line {n}: {text[:40] + ('...' if len(text) > 40 else '')!r}"
            for n, text in continued[:3]
        )
        more = " ..." if len(continued) > 3 else ""
        warnings.append(
            f"{source}: {len(continued)} cue(s) name no speaker and continue the previous one, "
            f"{why} ({shown}{more})"
        )
    return warnings + divided_warnings(source, divided)
