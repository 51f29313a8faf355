"""Seeded builders of transcripts in every format the importer reads.

A transcript is a list of rows ``(speaker, start, end, text)`` with times in whole
milliseconds; each writer lays it out as the format's usual tool does, so that reading the
written file back must give the rows again (RTTM keeps no text).

Example
-------
>>> rows = make_rows(3)
>>> write_srt(rows).splitlines()[1:3]
['00:00:00,078 --> 00:00:03,987', 'Theo: yes wait bus job what']
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from tests.builders import WORDS, default_rng

Row = tuple[str, float, float, str]

SPEAKERS = ("Maya", "Theo", "Ana Lu")


def make_rows(
    n: int, rng: np.random.Generator | None = None, speakers: Sequence[str] = SPEAKERS[:2]
) -> list[Row]:
    """``n`` rows one after the other (no overlaps), times in whole milliseconds."""
    rng = default_rng(rng)
    rows, at = [], 0
    for _ in range(n):
        start = at + int(rng.integers(0, 600))
        end = start + int(rng.integers(200, 4000))
        words = rng.choice(WORDS, size=int(rng.integers(1, 6)))
        rows.append((str(rng.choice(speakers)), start / 1000, end / 1000, " ".join(words)))
        at = end
    return rows


def clock(seconds: float, sep: str = ".") -> str:
    """``hh:mm:ss.mmm`` (or with ``sep`` ``","`` for SubRip)."""
    ms = round(seconds * 1000)
    return (
        f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"
    )


def write_vtt(rows: Sequence[Row]) -> str:
    """WebVTT with a voice per cue, text escaped."""
    cues = [
        f"{clock(a)} --> {clock(b)}\n<v {speaker}>{escape(text)}" for speaker, a, b, text in rows
    ]
    return "WEBVTT\n\n" + "".join(f"{cue}\n\n" for cue in cues)


def write_srt(rows: Sequence[Row]) -> str:
    """SubRip with ``Name: text`` lines, numbered from 1."""
    return "".join(
        f"{k}\n{clock(a, ',')} --> {clock(b, ',')}\n{speaker}: {text}\n\n"
        for k, (speaker, a, b, text) in enumerate(rows, start=1)
    )


def write_rttm(rows: Sequence[Row], uri: str = "scene") -> str:
    """RTTM as pyannote writes it (text is lost; spaces in names become ``_``)."""
    return "".join(
        f"SPEAKER {uri} 1 {a:.3f} {b - a:.3f} <NA> <NA> {speaker.replace(' ', '_')} <NA> <NA>\n"
        for speaker, a, b, _ in rows
    )


def _spread(text: str, a: float, b: float) -> list[tuple[str, float, float]]:
    words = text.split()
    total = sum(len(w) for w in words)
    result, at = [], 0
    for word in words:
        w0 = a + (b - a) * at / total
        at += len(word)
        result.append((word, round(w0, 3), round(a + (b - a) * at / total, 3)))
    return result


def write_whisperx(rows: Sequence[Row]) -> str:
    """WhisperX JSON after alignment and ``assign_word_speakers``."""
    segments, word_segments = [], []
    for speaker, a, b, text in rows:
        words = [
            {"word": w, "start": w0, "end": w1, "score": 0.9, "speaker": speaker}
            for w, w0, w1 in _spread(text, a, b)
        ]
        segments.append(
            {"start": a, "end": b, "text": f" {text}", "words": words, "speaker": speaker}
        )
        word_segments.extend(words)
    return json.dumps({"segments": segments, "word_segments": word_segments, "language": "en"})


def write_eaf(rows: Sequence[Row]) -> str:
    """ELAN EAF 3.0: one tier per speaker (PARTICIPANT = speaker), two slots per turn."""
    speakers = list(dict.fromkeys(r[0] for r in rows))
    slots, tiers = [], {s: [] for s in speakers}
    for k, (speaker, a, b, text) in enumerate(rows):
        slots.append((2 * k + 1, round(a * 1000)))
        slots.append((2 * k + 2, round(b * 1000)))
        tiers[speaker].append(
            f'            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a{k + 1}" '
            f'TIME_SLOT_REF1="ts{2 * k + 1}" TIME_SLOT_REF2="ts{2 * k + 2}">\n'
            f"                <ANNOTATION_VALUE>{escape(text)}</ANNOTATION_VALUE>\n"
            "            </ALIGNABLE_ANNOTATION>"
        )
    slots.sort(key=lambda s: s[1])
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<ANNOTATION_DOCUMENT AUTHOR="" DATE="2024-03-01T10:00:00+00:00" FORMAT="3.0" '
        'VERSION="3.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="http://www.mpi.nl/tools/elan/EAFv3.0.xsd">',
        '    <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds"/>',
        "    <TIME_ORDER>",
        *(f'        <TIME_SLOT TIME_SLOT_ID="ts{i}" TIME_VALUE="{ms}"/>' for i, ms in slots),
        "    </TIME_ORDER>",
    ]
    for speaker in speakers:
        out.append(
            f'    <TIER LINGUISTIC_TYPE_REF="default-lt" PARTICIPANT={quoteattr(speaker)} '
            f"TIER_ID={quoteattr(speaker)}>"
        )
        out += [f"        <ANNOTATION>\n{a}\n        </ANNOTATION>" for a in tiers[speaker]]
        out.append("    </TIER>")
    out += [
        '    <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="default-lt" '
        'TIME_ALIGNABLE="true"/>',
        "</ANNOTATION_DOCUMENT>",
    ]
    return "\n".join(out) + "\n"


def _intervals(rows: Sequence[Row], xmax: float) -> list[tuple[float, float, str]]:
    """A tier's rows with empty intervals filling the gaps, as Praat requires."""
    result, at = [], 0.0
    for _, a, b, text in rows:
        if a > at:
            result.append((at, a, ""))
        result.append((a, b, text))
        at = b
    if at < xmax:
        result.append((at, xmax, ""))
    return result


def write_textgrid(rows: Sequence[Row], *, short: bool = False) -> str:
    """A Praat TextGrid, one IntervalTier per speaker, long or short text form."""
    speakers = list(dict.fromkeys(r[0] for r in rows))
    xmax = max((r[2] for r in rows), default=1.0) + 0.5

    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    head = ['File type = "ooTextFile"', 'Object class = "TextGrid"', ""]
    tiers = [(s, _intervals([r for r in rows if r[0] == s], xmax)) for s in speakers]
    if short:
        out = [*head, "0", f"{xmax:.15g}", "<exists>", str(len(tiers))]
        for name, intervals in tiers:
            out += ['"IntervalTier"', q(name), "0", f"{xmax:.15g}", str(len(intervals))]
            for a, b, text in intervals:
                out += [f"{a:.15g}", f"{b:.15g}", q(text)]
        return "\n".join(out) + "\n"
    out = [*head, "xmin = 0 ", f"xmax = {xmax:.15g} ", "tiers? <exists> ", f"size = {len(tiers)} "]
    out.append("item []: ")
    for k, (name, intervals) in enumerate(tiers, start=1):
        out += [
            f"    item [{k}]:",
            '        class = "IntervalTier" ',
            f"        name = {q(name)} ",
            "        xmin = 0 ",
            f"        xmax = {xmax:.15g} ",
            f"        intervals: size = {len(intervals)} ",
        ]
        for j, (a, b, text) in enumerate(intervals, start=1):
            out += [
                f"        intervals [{j}]:",
                f"            xmin = {a:.15g} ",
                f"            xmax = {b:.15g} ",
                f"            text = {q(text)} ",
            ]
    return "\n".join(out) + "\n"


def write_csv(rows: Sequence[Row], delimiter: str = ",") -> str:
    """A table with the header ``start,end,speaker,text``, times in seconds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["start", "end", "speaker", "text"])
    writer.writerows([(f"{a:.3f}", f"{b:.3f}", speaker, text) for speaker, a, b, text in rows])
    return buffer.getvalue()


def write_meld(rows: Sequence[Row]) -> str:
    """MELD's column layout, times as ``hh:mm:ss,mmm``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "Sr No.",
            "Utterance",
            "Speaker",
            "Emotion",
            "Sentiment",
            "Dialogue_ID",
            "Utterance_ID",
            "Season",
            "Episode",
            "StartTime",
            "EndTime",
        ]
    )
    for k, (speaker, a, b, text) in enumerate(rows):
        writer.writerow(
            [k + 1, text, speaker, "neutral", "neutral", 0, k, 1, 1, clock(a, ","), clock(b, ",")]
        )
    return buffer.getvalue()


WRITERS: dict[str, tuple[str, Callable[[Sequence[Row]], str]]] = {
    "vtt": (".vtt", write_vtt),
    "srt": (".srt", write_srt),
    "rttm": (".rttm", write_rttm),
    "whisperx": (".json", write_whisperx),
    "eaf": (".eaf", write_eaf),
    "textgrid": (".TextGrid", write_textgrid),
    "textgrid-short": (".TextGrid", lambda rows: write_textgrid(rows, short=True)),
    "csv": (".csv", write_csv),
    "tsv": (".tsv", lambda rows: write_csv(rows, "\t")),
    "meld": (".csv", write_meld),
}
"""Name -> (file extension, writer) of every layout the round-trip tests write."""
