"""WhisperX, OpenAI Whisper and faster-whisper transcripts, and pyannote diarisation, as JSON.

WhisperX (after ``assign_word_speakers``) writes::

    {"segments": [{"start": 0.5, "end": 2.1, "text": " Hi there.", "speaker": "SPEAKER_00",
                   "words": [{"word": "Hi", "start": 0.5, "end": 0.7, "score": 0.9,
                              "speaker": "SPEAKER_00"}, ...]}, ...],
     "word_segments": [...]}

A segment whose words name more than one speaker is split into runs of the same speaker
(a word without a speaker stays with the run before it); the runs take their times from
their words, the first and last from the segment. Words without times, or with ``null``
ones (WhisperX leaves numerals unaligned), take them from their neighbours.

OpenAI Whisper's JSON (``{"text", "segments": [...], "language"}``, also written by
whisper-ctranslate2) and faster-whisper's segments dumped as a JSON list
(``[{"id", "start", "end", "text", "words": [...] | null, ...}, ...]``) have the same
segments without speakers: their turns have speaker ``None``.

pyannote's diarisation (no text) is accepted in its JSON forms: a list of
``{"segment": {"start", "end"}, "label" | "speaker"}`` items, ``Annotation.for_json()``
(``{"content": [...]}``) or ``{"diarization": [{"start", "end", "speaker"}, ...]}``
(also under ``"output"``).

Example
-------
>>> doc = '''{"segments": [{"start": 0.0, "end": 2.0, "text": " Hi. Hello.",
...   "words": [{"word": "Hi.", "start": 0.0, "end": 0.5, "speaker": "A"},
...             {"word": "Hello.", "start": 1.0, "end": 2.0, "speaker": "B"}]}]}'''
>>> for s in parse_whisperx(doc, "w.json")[0]:
...     print(s)
Segment(speaker='A', start=0.0, end=0.5, text='Hi.', where='segments[0].words[0]')
Segment(speaker='B', start=1.0, end=2.0, text='Hello.', where='segments[0].words[1]')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from importers.transcripts.records import Segment, Transcript, clean, number, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_whisperx", "read_whisperx", "whisperx_words"]


def _load(text: str, source: str) -> Any:
    try:
        return json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise TranscriptError(
            f"{source}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
        ) from None


def _mapping(item: Any, source: str, where: str, expected: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TranscriptError(
            f"{source}:{where}: {type(item).__name__} {str(item)[:40]!r}; expected {expected}"
        )
    return item


def _speaker(value: Any, source: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise TranscriptError(f"{source}:{where}.speaker is {value!r}; expected a name")
    return str(value)


def _list(doc: Any, key: str, source: str) -> list[Any]:
    items = doc.get(key)
    if not isinstance(items, list):
        raise TranscriptError(f"{source}:{key} is {type(items).__name__}; expected a list")
    return items


def _span(item: dict[str, Any], source: str, where: str) -> tuple[float, float]:
    for key in ("start", "end"):
        if key not in item:
            raise TranscriptError(f"{source}:{where}: no {key!r}; expected start and end")
    return (
        number(item["start"], source, where, "start"),
        number(item["end"], source, where, "end"),
    )


def _timed_words(
    segment: dict[str, Any], start: float, end: float, source: str, where: str
) -> list[tuple[str, float | None, float | None, str | None, str]]:
    """(word, start, end, speaker, where) of a segment's words; missing times are None."""
    words = segment.get("words") or []
    if not isinstance(words, list):
        raise TranscriptError(f"{source}:{where}.words is not a list; expected a list of words")
    result = []
    for k, raw in enumerate(words):
        w_where = f"{where}.words[{k}]"
        word = _mapping(raw, source, w_where, "a word {word, start, end}")
        text = word.get("word", word.get("text", ""))
        if not isinstance(text, str):
            raise TranscriptError(f"{source}:{w_where}.word is {text!r}; expected a string")
        # WhisperX leaves numerals unaligned: no times, or times that are null.
        w_start = (
            None if word.get("start") is None else number(word["start"], source, w_where, "start")
        )
        w_end = None if word.get("end") is None else number(word["end"], source, w_where, "end")
        speaker = _speaker(word.get("speaker"), source, w_where)
        result.append((text, w_start, w_end, speaker, w_where))
    return result


def _segment_list(doc: Any, source: str) -> tuple[list[Any] | None, str]:
    """The transcription segments and their JSON path: ``doc["segments"]`` (WhisperX,
    OpenAI Whisper, whisper-ctranslate2), or ``doc`` itself when it is a list of segments
    with text (faster-whisper's segments dumped as a list); None for anything else."""
    if isinstance(doc, dict) and "segments" in doc:
        return _list(doc, "segments", source), "segments"
    if (
        isinstance(doc, list)
        and doc
        and isinstance(doc[0], dict)
        and "text" in doc[0]
        and "segment" not in doc[0]
    ):
        return doc, ""
    return None, ""


def _fill_times(
    words: list[tuple[str, float | None, float | None, str | None, str]],
    start: float,
    end: float,
) -> list[tuple[str, float, float, str | None, str]]:
    """Give unaligned words the end of the word before (or the segment start) and the start
    of the word after (or the segment end)."""
    filled = []
    for k, (text, a, b, speaker, where) in enumerate(words):
        if a is None:
            a = filled[-1][2] if filled else start
        if b is None:
            b = next((w[1] for w in words[k + 1 :] if w[1] is not None), end)
            b = max(a, b)
        filled.append((text, a, b, speaker, where))
    return filled


def whisperx_words(text: str, source: str) -> list[Segment]:
    """Every word of a WhisperX document as a segment (speaker as the word says).

    Segments without words give one segment each. Used to place words in diarised turns.
    """
    doc = _load(text, source)
    items, prefix = _segment_list(doc, source)
    if items is None:
        doc = _mapping(doc, source, "", 'an object with "segments"')
        items, prefix = _list(doc, "segments", source), "segments"
    result = []
    for i, raw in enumerate(items):
        where = f"{prefix}[{i}]"
        seg = _mapping(raw, source, where, "a segment {start, end, text}")
        start, end = _span(seg, source, where)
        words = _timed_words(seg, start, end, source, where)
        if not words:
            seg_text = seg.get("text", "")
            result.append(
                Segment(
                    _speaker(seg.get("speaker"), source, where),
                    start,
                    end,
                    clean(str(seg_text)),
                    where,
                )
            )
            continue
        for w_text, a, b, speaker, w_where in _fill_times(words, start, end):
            result.append(Segment(speaker, a, b, w_text.strip(), w_where))
    return result


def _split(
    seg: dict[str, Any], start: float, end: float, source: str, where: str
) -> tuple[list[Segment], bool]:
    """One segment, or its same-speaker runs when its words name several speakers."""
    seg_speaker = _speaker(seg.get("speaker"), source, where)
    text = seg.get("text", "")
    if not isinstance(text, str):
        raise TranscriptError(f"{source}:{where}.text is {text!r}; expected a string")
    words = _timed_words(seg, start, end, source, where)
    named = {w[3] for w in words if w[3] is not None}
    if len(named) <= 1:
        speaker = seg_speaker or (named.pop() if named else None)
        return [Segment(speaker, start, end, clean(text), where)], False
    filled = _fill_times(words, start, end)
    # A word without a speaker stays with the word before it (leading ones: the first named).
    speakers = [w[3] for w in filled]
    first_named = next(name for name in speakers if name is not None)
    current = first_named
    for k, name in enumerate(speakers):
        current = name if name is not None else current
        speakers[k] = current
    runs: list[tuple[int, int]] = []  # [from, to) word indices of same-speaker runs
    for k in range(len(filled)):
        if runs and speakers[k] == speakers[runs[-1][0]]:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    pieces = []
    for r, (a_k, b_k) in enumerate(runs):
        a = start if r == 0 else filled[a_k][1]
        b = end if r == len(runs) - 1 else filled[b_k - 1][2]
        span = str(a_k) if b_k == a_k + 1 else f"{a_k}:{b_k}"
        text = clean(" ".join(w[0] for w in filled[a_k:b_k]))
        pieces.append(
            Segment(speakers[a_k], round(a, 6), round(b, 6), text, f"{where}.words[{span}]")
        )
    return pieces, True


def _diarisation(doc: Any, source: str) -> list[Segment] | None:
    """pyannote's JSON forms, or None when ``doc`` is not one of them."""
    if isinstance(doc, dict):
        if isinstance(doc.get("output"), dict):
            doc = doc["output"]
        for key in ("diarization", "diarisation", "content"):
            if isinstance(doc.get(key), list):
                items, prefix = doc[key], key
                break
        else:
            return None
    elif isinstance(doc, list):
        items, prefix = doc, ""
    else:
        return None
    result = []
    for i, raw in enumerate(items):
        where = f"{prefix}[{i}]"
        item = _mapping(raw, source, where, "a turn {segment: {start, end}, label}")
        span = item.get("segment", item)
        span = _mapping(span, source, f"{where}.segment", "{start, end}")
        start, end = _span(span, source, where)
        speaker = _speaker(item.get("speaker", item.get("label")), source, where)
        if speaker is None:
            raise TranscriptError(f"{source}:{where}: no 'label' or 'speaker'; expected one")
        result.append(Segment(speaker, start, end, clean(str(item.get("text", ""))), where))
    return result


def parse_whisperx(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The segments of a WhisperX or pyannote JSON document (pure form of
    :func:`read_whisperx`), split by speaker where a segment's words disagree.

    Raises
    ------
    TranscriptError
        Naming the JSON line and column of a syntax error, or the path
        (``segments[3].words[2]``) of a missing or mistyped field.
    """
    doc = _load(text, source)
    items, prefix = _segment_list(doc, source)
    if items is None:
        turns = _diarisation(doc, source)
        if turns is not None:
            return turns, []
        doc = _mapping(doc, source, "", 'an object with "segments" (WhisperX) or pyannote turns')
        raise TranscriptError(
            f"{source}: no 'segments' key (keys: {sorted(doc)[:10]}); expected WhisperX "
            "'segments' or pyannote 'diarization'/'content'"
        )
    segments: list[Segment] = []
    split: list[str] = []
    for i, raw in enumerate(items):
        where = f"{prefix}[{i}]"
        seg = _mapping(raw, source, where, "a segment {start, end, text}")
        start, end = _span(seg, source, where)
        pieces, was_split = _split(seg, start, end, source, where)
        segments.extend(pieces)
        if was_split:
            split.append(where)
    warnings = []
    if split:
        warnings.append(
            f"{source}: {len(split)} segment(s) split by the speakers of their words "
            f"({', '.join(split[:10])}{' ...' if len(split) > 10 else ''})"
        )
    return segments, warnings


def read_whisperx(path: str | Path) -> Transcript:
    """Read WhisperX or pyannote JSON into a :class:`Transcript` (format ``"whisperx"``).

    Raises
    ------
    TranscriptError
        Naming the file and the place; see :func:`parse_whisperx`.
    """
    return read_with(parse_whisperx, path, "whisperx")
