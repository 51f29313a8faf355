"""Put the words of a transcript into the turns of a diarisation that has none.

Diarisation (RTTM, pyannote JSON) says who spoke when; speech recognition (WhisperX,
subtitles) says what was said when. Each word goes to the turn it overlaps most; a word
overlapping no turn goes to the nearest turn within ``max_gap`` seconds, else it is left
out and counted in a warning. Word times come from WhisperX's ``words``; a segment without
word times is divided into words whose times are spread over the segment in proportion to
their length (an estimate, said in a warning).

Example
-------
>>> turns = [Segment("A", 0.0, 1.0, "", "1"), Segment("B", 1.0, 2.0, "", "2")]
>>> words = [Segment(None, 0.1, 0.4, "Hi", "w0"), Segment(None, 1.2, 1.8, "there", "w1")]
>>> segments, warnings = place_words(turns, words, "t.rttm")
>>> [(s.speaker, s.text) for s in segments]
[('A', 'Hi'), ('B', 'there')]
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from importers.textio import read_text
from importers.transcripts.records import Segment, Transcript, sort_segments
from importers.transcripts.whisperx import whisperx_words
from schemas.errors import TranscriptError

__all__ = ["attach_text", "place_words", "spread_words"]


def spread_words(segment: Segment) -> list[Segment]:
    """A segment's words, with times spread over it in proportion to their length.

    >>> [(w.text, w.start, w.end) for w in spread_words(Segment(None, 0.0, 1.0, "ab cdefgh", "1"))]
    [('ab', 0.0, 0.25), ('cdefgh', 0.25, 1.0)]
    """
    words = segment.text.split()
    if len(words) <= 1:
        return [segment] if words else []
    total = sum(len(w) for w in words)
    result, at = [], 0
    for word in words:
        a = segment.start + segment.duration * at / total
        at += len(word)
        b = segment.start + segment.duration * at / total
        result.append(Segment(segment.speaker, round(a, 6), round(b, 6), word, segment.where))
    return result


def place_words(
    turns: Sequence[Segment], words: Sequence[Segment], source: str, *, max_gap: float = 1.0
) -> tuple[list[Segment], list[str]]:
    """The turns with the words that fall in them as text (joined in time order).

    Parameters
    ----------
    turns : sequence of Segment
        The diarised turns; their text is replaced.
    words : sequence of Segment
        Timed words (or short segments); their speakers are ignored.
    source : str
        The name used in the warning.
    max_gap : float
        Seconds a word overlapping no turn may be from the nearest one and still join it.

    Returns
    -------
    segments : list of Segment
        The turns, in the order given, with their text.
    warnings : list of str
        A line counting the words placed in no turn, with the first of them.
    """
    order = sorted(range(len(turns)), key=lambda k: turns[k].start)
    starts = [turns[k].start for k in order]
    longest = max((t.duration for t in turns), default=0.0)
    placed: list[list[Segment]] = [[] for _ in turns]
    lost: list[Segment] = []
    for word in sorted(words, key=lambda w: (w.start, w.end)):
        # Score: the overlap in seconds, or minus the gap when the word misses the turn.
        best, best_score = None, -max_gap
        lo = bisect.bisect_left(starts, word.start - longest - max_gap)
        hi = bisect.bisect_right(starts, word.end + max_gap)
        for j in range(lo, hi):
            turn = turns[order[j]]
            score = min(turn.end, word.end) - max(turn.start, word.start)
            if score > best_score or (best is None and score == best_score):
                best, best_score = order[j], score
        if best is None:
            lost.append(word)
        else:
            placed[best].append(word)
    segments = [
        replace(turn, text=" ".join(w.text for w in placed[k] if w.text))
        for k, turn in enumerate(turns)
    ]
    warnings = []
    if lost:
        shown = "; ".join(f"{w.start:.2f}s {w.text!r}" for w in lost[:5])
        warnings.append(
            f"{source}: {len(lost)} word(s) fall in no diarised turn (nor within "
            f"{max_gap:g}s of one) and were left out: {shown}{' ...' if len(lost) > 5 else ''}"
        )
    return segments, warnings


def attach_text(transcript: Transcript, text: str | Path, *, max_gap: float = 1.0) -> Transcript:
    """Fill a diarisation's turns with the words of a companion transcript ``text``.

    The companion's format is chosen by its extension (see
    :func:`importers.transcripts.read_transcript`). WhisperX JSON gives word times; any
    other format's segments are spread into words (with a warning).

    Raises
    ------
    TranscriptError
        When the companion cannot be read, or when ``transcript`` already has text.
    """
    # Imported here: the reader module imports this one.
    from importers.transcripts.reader import format_for, read_transcript

    with_text = [s for s in transcript.segments if s.text]
    if with_text:
        raise TranscriptError(
            f"{transcript.source}:{with_text[0].where}: the {transcript.format} transcript "
            f"has text in {len(with_text)} segment(s); a companion text is for diarisation "
            "without words (rttm, pyannote JSON)"
        )
    text = Path(text)
    warnings = list(transcript.warnings)
    if format_for(text) == "whisperx":
        raw, _, decode_warnings = read_text(text)
        words = whisperx_words(raw, str(text))
        warnings += decode_warnings
    else:
        companion = read_transcript(text, check=False)
        warnings += companion.warnings
        words = [w for s in companion.segments for w in spread_words(s)]
        warnings.append(
            f"{text}: no word times ({companion.format}); each segment's word times were "
            "estimated from its length"
        )
    segments, more = place_words(transcript.segments, words, str(text), max_gap=max_gap)
    return replace(
        transcript,
        segments=sort_segments(segments),
        warnings=tuple(warnings + more),
    )
