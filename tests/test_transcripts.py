"""Tests for importers.transcripts and importers.textio: every format, encodings, bad input."""

from __future__ import annotations

import codecs
import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import importers.textio
import importers.transcripts.align
import importers.transcripts.checks
import importers.transcripts.eaf
import importers.transcripts.reader
import importers.transcripts.records
import importers.transcripts.rttm
import importers.transcripts.srt
import importers.transcripts.table
import importers.transcripts.textgrid
import importers.transcripts.vtt
import importers.transcripts.whisperx
from importers.textio import decode_text, read_text
from importers.transcripts import (
    EXTENSIONS,
    READERS,
    Segment,
    check_segments,
    format_for,
    read_transcript,
)
from importers.transcripts.records import parse_clock
from schemas.errors import TranscriptError
from tests.transcript_builders import (
    SPEAKERS,
    WRITERS,
    Row,
    make_rows,
    write_csv,
    write_rttm,
    write_srt,
    write_vtt,
    write_whisperx,
)

DATA = Path(__file__).parent / "data" / "transcripts"

# The scene every committed file transcribes (speakers as named in the EAF).
SCENE = [
    ("Maya", 0.5, 2.3, "Is this the bus to Zürich?"),
    ("Theo", 2.6, 4.1, "Only on Tuesdays."),
    ("Maya", 4.4, 6.9, "But today is Tuesday!"),
    ("Theo", 7.2, 9.8, "Then we're both very lucky."),
    ("Maya", 10.1, 12.6, "I waited here since 1990."),
    ("Theo", 12.3, 14.0, "Wow. That's dedication."),
    ("Maya", 14.5, 16.2, "Don't laugh at me."),
]
DIARISED = {"Maya": "SPEAKER_00", "Theo": "SPEAKER_01"}


def rows_of(segments: tuple[Segment, ...] | list[Segment]) -> list[Row]:
    return [(s.speaker, s.start, s.end, s.text) for s in segments]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


MODULES = [
    importers.textio,
    importers.transcripts.align,
    importers.transcripts.checks,
    importers.transcripts.eaf,
    importers.transcripts.reader,
    importers.transcripts.records,
    importers.transcripts.rttm,
    importers.transcripts.srt,
    importers.transcripts.table,
    importers.transcripts.textgrid,
    importers.transcripts.vtt,
    importers.transcripts.whisperx,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", WRITERS)
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip(tmp_path: Path, layout: str, seed: int) -> None:
    rows = make_rows(15, np.random.default_rng(seed), speakers=SPEAKERS)
    extension, writer = WRITERS[layout]
    path = write(tmp_path, f"scene{extension}", writer(rows))
    transcript = read_transcript(path)
    if layout == "rttm":  # no text, no spaces in names
        rows = [(s.replace(" ", "_"), a, b, "") for s, a, b, _ in rows]
    expected = rows
    assert rows_of(transcript.segments) == expected
    assert transcript.format == format_for(path)
    assert transcript.encoding == "utf-8"


def test_round_trip_rttm_with_whisperx_words(tmp_path: Path) -> None:
    rows = make_rows(20, np.random.default_rng(3), speakers=SPEAKERS)
    rttm = write(tmp_path, "scene.rttm", write_rttm(rows))
    words = write(tmp_path, "asr.json", write_whisperx(rows))
    transcript = read_transcript(rttm, text=words)
    assert rows_of(transcript.segments) == [(s.replace(" ", "_"), a, b, t) for s, a, b, t in rows]
    assert transcript.warnings == ()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"])
@pytest.mark.parametrize("layout", ["vtt", "srt", "csv", "textgrid", "eaf"])
def test_round_trip_in_other_encodings(tmp_path: Path, layout: str, encoding: str) -> None:
    rows = [("Zoë", 0.5, 1.5, "Ça va? Très bien, merci."), ("Jürgen", 2.0, 3.0, "Schön!")]
    extension, writer = WRITERS[layout]
    text = writer(rows)
    if layout == "eaf":
        text = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
    raw = text.encode(encoding)
    if encoding.startswith("utf-16"):
        raw = (codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE) + raw
    transcript = read_transcript(write(tmp_path, f"s{extension}", raw))
    assert rows_of(transcript.segments) == rows
    assert transcript.encoding == encoding
    fallback = [w for w in transcript.warnings if "read as Windows-1252" in w]
    assert len(fallback) == (encoding == "cp1252")


_NAME = st.from_regex(r"[A-Z][a-z]{1,8}( [A-Z][a-z]{1,8})?", fullmatch=True)
_WORD = st.text(
    st.characters(categories=["L", "N"], exclude_characters="\u0130")
    | st.sampled_from("'!?.,&<>\""),
    min_size=1,
    max_size=8,
).filter(lambda w: w == w.strip() and w[0] not in "[-<>" and ":" not in w)


@st.composite
def transcripts(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(1, 8))
    rows, at = [], 0
    for _ in range(n):
        start = at + draw(st.integers(0, 5000))
        end = start + draw(st.integers(1, 90_000_000))
        words = draw(st.lists(_WORD, min_size=1, max_size=6))
        rows.append((draw(_NAME), start / 1000, end / 1000, " ".join(words)))
        at = end
    return rows


@settings(max_examples=60, deadline=None, derandomize=True)
@given(rows=transcripts(), layout=st.sampled_from(["vtt", "srt", "csv", "tsv", "meld"]))
def test_round_trip_property(rows: list[Row], layout: str) -> None:
    extension, writer = WRITERS[layout]
    text = writer(rows)
    parser = {
        "vtt": importers.transcripts.vtt.parse_vtt,
        "srt": importers.transcripts.srt.parse_srt,
        "csv": importers.transcripts.table.parse_csv,
        "meld": importers.transcripts.table.parse_csv,
        "tsv": importers.transcripts.table.parse_tsv,
    }[layout]
    segments, warnings = parser(text, f"x{extension}")
    assert rows_of(segments) == rows
    assert warnings == []


# --- real files as their tools write them -------------------------------------------------


def test_elan_eaf_with_tier_hierarchy() -> None:
    transcript = read_transcript(DATA / "bus-stop.eaf")
    assert rows_of(transcript.segments) == SCENE
    assert transcript.segments[0].where == "tier 'Maya' annotation a1"
    # The word subdivision (with its unaligned slot) and the translation are not turns.
    (warning,) = transcript.warnings
    assert (
        "tiers not used as speakers: 'Theo-words' (dependent on 'Theo', 3 annotations), "
        "'Maya-fr' (dependent on 'Maya', 4 annotations)"
    ) in warning


def test_textgrid_long_form_utf16_from_praat() -> None:
    path = DATA / "bus-stop-long-utf16.TextGrid"
    assert path.read_bytes()[:2] == codecs.BOM_UTF16_BE
    transcript = read_transcript(path)
    assert rows_of(transcript.segments) == SCENE
    assert transcript.encoding == "utf-16-be"
    assert transcript.segments[0].where == "20"
    (warning,) = transcript.warnings
    assert re.search(r"skipped 2 point\(s\) of TextTier\(s\) 'events' \(2\)", warning)


def test_textgrid_short_form() -> None:
    transcript = read_transcript(DATA / "bus-stop-short.TextGrid")
    scene = [(s, a, b, t.replace("ü", "u")) for s, a, b, t in SCENE]
    assert rows_of(transcript.segments) == scene
    assert transcript.encoding == "utf-8"


def test_vtt_with_styling_regions_and_notes() -> None:
    transcript = read_transcript(DATA / "bus-stop-styled.vtt")
    assert rows_of(transcript.segments) == SCENE
    assert [s.where for s in transcript.segments][:2] == ["25", "30"]
    assert transcript.warnings == ()


def test_srt_with_bom_crlf_names_and_dialogue() -> None:
    transcript = read_transcript(DATA / "bus-stop-subtitles.srt")
    assert transcript.encoding == "utf-8-sig"
    speakers = ["MAYA", "THEO", "MAYA", "THEO", "MAYA", "Theo", "Maya"]
    expected = [(name, a, b, t) for name, (_, a, b, t) in zip(speakers, SCENE, strict=True)]
    # The last cue holds two speakers; its 0.6 s are divided by the length of their text.
    expected += [("MAYA", 16.4, 16.8, "Sorry."), ("THEO", 16.8, 17.0, "Ha!")]
    assert rows_of(transcript.segments) == expected
    (warning,) = transcript.warnings
    assert "1 cue(s) hold several speakers (line 31)" in warning


def test_whisperx_json_splits_segments_by_word_speakers() -> None:
    transcript = read_transcript(DATA / "bus-stop-whisperx.json")
    got = rows_of(transcript.segments)
    assert [r[0] for r in got] == [DIARISED[s] for s, *_ in SCENE]
    assert [r[3] for r in got] == [t for *_, t in SCENE]
    # Segment 2 held both speakers: cut at the words, the outer ends from the segment.
    assert got[2][1:3] == (4.4, 6.88)
    assert got[3][1:3] == (7.22, 9.8)
    assert [s.where for s in transcript.segments[2:4]] == [
        "segments[2].words[0:4]",
        "segments[2].words[4:9]",
    ]
    (warning,) = transcript.warnings
    assert "1 segment(s) split by the speakers of their words (segments[2])" in warning


def test_rttm_alone_has_turns_without_text() -> None:
    transcript = read_transcript(DATA / "bus-stop.rttm")
    assert rows_of(transcript.segments) == [(DIARISED[s], a, b, "") for s, a, b, _ in SCENE]
    (warning,) = transcript.warnings
    assert "7 of 7 segment(s) have no text" in warning


@pytest.mark.parametrize("companion", ["bus-stop-whisperx.json", "bus-stop-styled.vtt"])
def test_rttm_with_companion_text(companion: str) -> None:
    transcript = read_transcript(DATA / "bus-stop.rttm", text=DATA / companion)
    assert rows_of(transcript.segments) == [(DIARISED[s], a, b, t) for s, a, b, t in SCENE]
    direct = importers.transcripts.rttm.read_rttm(DATA / "bus-stop.rttm", text=DATA / companion)
    assert direct.segments == transcript.segments
    estimated = [w for w in transcript.warnings if "word times were estimated" in w]
    assert len(estimated) == companion.endswith(".vtt")


def test_meld_layout_csv() -> None:
    transcript = read_transcript(DATA / "bus-stop-meld.csv")
    offset = 976.059
    got = rows_of(transcript.segments)
    assert [(s, t.replace("\u2019", "'")) for s, _, _, t in got] == [(s, t) for s, _, _, t in SCENE]
    assert [(a, b) for _, a, b, _ in got] == [
        (round(a + offset, 3), round(b + offset, 3)) for _, a, b, _ in SCENE
    ]


def test_excel_csv_in_windows_1252() -> None:
    path = DATA / "bus-stop-excel.csv"
    transcript = read_transcript(path)
    assert transcript.encoding == "cp1252"
    assert transcript.segments[0].text == "Is this the bus to Zürich, café?"
    assert transcript.segments[3].text == "Then we\u2019re both very lucky."
    (warning,) = transcript.warnings
    assert warning == f"{path}:2: byte 0xFC is not UTF-8; read as Windows-1252"


# --- choosing a format ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.vtt", "vtt"),
        ("a.SRT", "srt"),
        ("a.TextGrid", "textgrid"),
        ("a.json", "whisperx"),
        ("a.tsv", "tsv"),
        ("a.eaf", "eaf"),
        ("a.rttm", "rttm"),
    ],
)
def test_format_by_extension(name: str, fmt: str) -> None:
    assert format_for(name) == fmt


def test_every_format_has_an_extension_and_a_reader(tmp_path: Path) -> None:
    assert set(EXTENSIONS.values()) == set(READERS)
    for name, reader in READERS.items():
        with pytest.raises(TranscriptError, match=r"cannot read transcript"):
            reader(tmp_path / f"missing.{name}")


def test_explicit_format_wins_over_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "scene.txt", write_srt(SCENE))
    assert rows_of(read_transcript(path, "srt").segments) == SCENE
    assert rows_of(read_transcript(path, format="SRT").segments) == SCENE


def test_unknown_format_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        TranscriptError,
        match=(
            r"unknown transcript format 'docx'; expected one of \['csv', 'eaf', 'rttm', 'srt', "
            r"'textgrid', 'tsv', 'vtt', 'whisperx'\]"
        ),
    ):
        read_transcript(tmp_path / "a.vtt", "docx")
    with pytest.raises(
        TranscriptError,
        match=(
            r"a\.txt: unknown transcript extension '\.txt'; expected one of \['\.csv'.*or give "
            r"the format"
        ),
    ):
        format_for("a.txt")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.srt"
    with pytest.raises(TranscriptError, match=rf"^{re.escape(str(path))}: cannot read transcript"):
        read_transcript(path)


# --- shared checks --------------------------------------------------------------------------


def seg(speaker: str | None, start: float, end: float, where: str, text: str = "x") -> Segment:
    return Segment(speaker, start, end, text, where)


CHECK_ERRORS = {
    "negative start": (
        [seg("A", -0.5, 1.0, "3")],
        r"^t:3: starts at -0\.500s; expected a time of 0 or more$",
    ),
    "empty span": (
        [seg("A", 1.0, 1.0, "3")],
        r"^t:3: ends at 1\.000s, not after its start 1\.000s$",
    ),
    "reversed span": (
        [seg("A", 2.0, 1.0, "7")],
        r"^t:7: ends at 1\.000s, not after its start 2\.000s$",
    ),
    "past the media": (
        [seg("A", 1.0, 10.002, "4")],
        r"^t:4: ends at 10\.002s, past the end of the media \(10\.000s\)$",
    ),
    "no speaker": ([seg(None, 1.0, 2.0, "5")], r"^t:5: no speaker; expected a speaker name$"),
    "same speaker overlap": (
        [seg("A", 0.0, 2.0, "3"), seg("B", 0.5, 3.0, "6"), seg("A", 1.0, 2.5, "9")],
        r"^t:9: A's turn 1\.000-2\.500s overlaps their turn at t:3 \(0\.000-2\.000s\); "
        r"expected one speaker's turns not to overlap$",
    ),
    "overlap with an earlier, longer turn": (
        [seg("A", 0.0, 9.0, "1"), seg("A", 3.0, 4.0, "2"), seg("A", 5.0, 6.0, "3")],
        r"^t:3: A's turn 5\.000-6\.000s overlaps their turn at t:1 ",
    ),
    "not finite": ([seg("A", float("nan"), 1.0, "2")], r"^t:2: times nan-1\.0; expected finite"),
}


@pytest.mark.parametrize(("segments", "message"), CHECK_ERRORS.values(), ids=CHECK_ERRORS.keys())
def test_check_errors(segments: list[Segment], message: str) -> None:
    errors, _ = check_segments(segments, "t", media_duration=10.0)
    assert any(re.search(message, e) for e in errors), errors


def test_checks_accept_what_is_normal() -> None:
    segments = [
        seg("A", 0.0, 2.0, "1"),
        seg("B", 1.0, 3.0, "2"),  # another speaker overlapping: normal speech
        seg("A", 2.0, 4.0, "3"),  # touching the same speaker's previous turn
        seg("A", 3.9995, 5.0, "4"),  # 0.5 ms into it: millisecond rounding
        seg("B", 5.0, 10.0015, "5"),  # 1.5 ms past the media's end: rounding
    ]
    assert check_segments(segments, "t", media_duration=10.0) == ([], [])
    assert check_segments([seg(None, 0, 1, "1")], "t", require_speaker=False) == ([], [])


def test_checks_list_every_problem_in_time_order() -> None:
    segments = [seg("A", 5.0, 4.0, "9"), seg(None, 1.0, 2.0, "2"), seg("A", -1.0, 3.0, "1")]
    errors, warnings = check_segments(segments, "t")
    assert [e.split(":")[1] for e in errors] == ["1", "2", "9"]
    assert warnings == []


def test_checks_count_segments_without_text() -> None:
    segments = [seg("A", k, k + 1, str(k), text="") for k in range(7)]
    _, warnings = check_segments(segments, "t")
    assert warnings == ["t: 7 of 7 segment(s) have no text (0, 1, 2, 3, 4 ...)"]


def test_read_transcript_raises_every_problem_at_once(tmp_path: Path) -> None:
    rows = [("Maya", 0.0, 2.0, "a"), ("Maya", 1.0, 3.0, "b"), ("Theo", 5.0, 12.0, "c")]
    path = write(tmp_path, "s.csv", write_csv(rows))
    with pytest.raises(TranscriptError) as info:
        read_transcript(path, media_duration=10.0)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 2 problems:"
    assert lines[1].startswith(
        f"{path}:3: Maya's turn 1.000-3.000s overlaps their turn at {path}:2"
    )
    assert lines[2] == f"{path}:4: ends at 12.000s, past the end of the media (10.000s)"
    unchecked = read_transcript(path, check=False)
    assert len(unchecked.segments) == 3


def test_a_single_problem_is_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "s.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nno voice\n")
    with pytest.raises(
        TranscriptError,
        match=rf"^{re.escape(str(path))}:3: no speaker; expected a voice '<v Name>text'$",
    ):
        read_transcript(path)


def test_many_problems_are_cut_short(tmp_path: Path) -> None:
    rows = [("A", k, k + 0.5, "x") for k in range(60)]
    path = write(tmp_path, "s.csv", write_csv(rows))
    with pytest.raises(TranscriptError, match=r"60 problems:\n(.*\n){50}\.\.\. and 10 more$"):
        read_transcript(path, media_duration=0.4)


def test_segments_are_sorted_by_start(tmp_path: Path) -> None:
    rows = [("B", 3.0, 4.0, "later"), ("A", 1.0, 2.0, "earlier")]
    transcript = read_transcript(write(tmp_path, "s.csv", write_csv(rows)))
    assert [s.text for s in transcript.segments] == ["earlier", "later"]
    assert [s.where for s in transcript.segments] == ["3", "2"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12.5", 12.5),
        ("0", 0.0),
        ("1e2", 100.0),
        ("00:16:16,059", 976.059),
        ("0:01:02.5", 62.5),
        ("01:02.250", 62.25),
        ("75:00.0", 4500.0),
        ("100:00:00,000", 360000.0),
    ],
)
def test_parse_clock(value: str, seconds: float) -> None:
    assert parse_clock(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "abc", "1:2:3:4", "00:60:00,000", "00:00:61.0", "1,5", "12s"]
)
def test_parse_clock_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_clock(value)


# --- bad input, per format ------------------------------------------------------------------

EAF_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ANNOTATION_DOCUMENT FORMAT="3.0" VERSION="3.0">\n'
    '<HEADER MEDIA_FILE="" TIME_UNITS="milliseconds"/>\n'
)
EAF_TYPE = '<LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="lt" TIME_ALIGNABLE="true"/>\n'


def eaf(slots: str, tiers: str, head: str = EAF_HEAD) -> str:
    return f"{head}<TIME_ORDER>{slots}</TIME_ORDER>\n{tiers}{EAF_TYPE}</ANNOTATION_DOCUMENT>\n"


def tier(tier_id: str, body: str, extra: str = "") -> str:
    return f'<TIER TIER_ID="{tier_id}" LINGUISTIC_TYPE_REF="lt"{extra}>{body}</TIER>\n'


def aligned(annotation_id: str, ref1: str, ref2: str, value: str = "x") -> str:
    return (
        f'<ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="{annotation_id}" '
        f'TIME_SLOT_REF1="{ref1}" TIME_SLOT_REF2="{ref2}"><ANNOTATION_VALUE>{value}'
        "</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>"
    )


SLOTS = (
    '<TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="1000"/><TIME_SLOT TIME_SLOT_ID="ts2"/>'
    '<TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2000"/>'
)

TG_HEAD = 'File type = "ooTextFile"\nObject class = "TextGrid"\n\n'

BAD = {
    # WebVTT
    "vtt no header": (
        "s.vtt",
        "00:01.000 --> 00:02.000\n<v A>x\n",
        r"s\.vtt:1: expected the header 'WEBVTT'$",
    ),
    "vtt bad timing": (
        "s.vtt",
        "WEBVTT\n\n00:01.000 --> 00:02,000\n<v A>x\n",
        r"s\.vtt:3: malformed cue timing '00:01\.000 --> 00:02,000'; expected 'HH:MM:SS\.mmm --> "
        r"HH:MM:SS\.mmm'$",
    ),
    "vtt reversed cue": (
        "s.vtt",
        "WEBVTT\n\n00:05.000 --> 00:02.000\n<v A>x\n",
        r"s\.vtt:3: ends at 2\.000s, not after its start 5\.000s$",
    ),
    # SubRip
    "srt no timing": (
        "s.srt",
        "1\nMAYA: hi\n",
        r"s\.srt:2: expected a timing line 'hh:mm:ss,mmm --> hh:mm:ss,mmm' after the cue number "
        r"'1', got 'MAYA: hi'$",
    ),
    "srt bad timing": (
        "s.srt",
        "1\n00:00:01,000 --> 00:00:0x,000\nMAYA: hi\n",
        r"s\.srt:2: malformed cue timing '00:00:01,000 --> 00:00:0x,000'; expected 'hh:mm:ss,mmm "
        r"--> hh:mm:ss,mmm'$",
    ),
    "srt no speaker": (
        "s.srt",
        "1\n00:00:01,000 --> 00:00:02,000\nhello there\n",
        r"s\.srt:2: no speaker; expected a name before the text \('MAYA: text'",
    ),
    "srt empty span": (
        "s.srt",
        "1\n00:00:02,000 --> 00:00:02,000\nMAYA: hi\n",
        r"s\.srt:2: ends at 2\.000s, not after its start 2\.000s$",
    ),
    # RTTM
    "rttm few fields": (
        "s.rttm",
        "SPEAKER a 1 0.0 1.0\n",
        r"s\.rttm:1: 5 fields; expected 'SPEAKER <file> <channel> <start>",
    ),
    "rttm bad start": (
        "s.rttm",
        ";; comment\nSPEAKER a 1 0,5 1.0 <NA> <NA> A <NA> <NA>\n",
        r"s\.rttm:2: start is '0,5'; expected a number of seconds$",
    ),
    "rttm nan duration": (
        "s.rttm",
        "SPEAKER a 1 0.5 nan <NA> <NA> A <NA> <NA>\n",
        r"s\.rttm:1: duration is 'nan'; expected a number of seconds$",
    ),
    "rttm no speaker": (
        "s.rttm",
        "SPEAKER a 1 0.5 1.0 <NA> <NA> <NA> <NA> <NA>\n",
        r"s\.rttm:1: speaker is '<NA>'; expected a speaker name$",
    ),
    "rttm two recordings": (
        "s.rttm",
        "SPEAKER a 1 0.5 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER b 1 2.5 1.0 <NA> <NA> A <NA> <NA>\n",
        r"s\.rttm:2: turn of recording 'b', but line 1 is of 'a'; expected one recording per file$",
    ),
    "rttm negative duration": (
        "s.rttm",
        "SPEAKER a 1 2.5 -1.0 <NA> <NA> A <NA> <NA>\n",
        r"s\.rttm:1: ends at 1\.500s, not after its start 2\.500s$",
    ),
    # WhisperX / pyannote JSON
    "json syntax": (
        "s.json",
        '{"segments": [\n  {"start": 1,}\n]}',
        r"s\.json:2:15: not valid JSON \(Expecting property name",
    ),
    "json no segments": (
        "s.json",
        '{"text": "hi"}',
        r"s\.json: no 'segments' key \(keys: \['text'\]\); expected WhisperX",
    ),
    "json segment not an object": (
        "s.json",
        '{"segments": [3]}',
        r"s\.json:segments\[0\]: int '3'; expected a segment",
    ),
    "json missing end": (
        "s.json",
        '{"segments": [{"start": 1, "text": "x", "speaker": "A"}]}',
        r"s\.json:segments\[0\]: no 'end'; expected start and end$",
    ),
    "json bad start": (
        "s.json",
        '{"segments": [{"start": "soon", "end": 2, "text": "x", "speaker": "A"}]}',
        r"s\.json:segments\[0\]: start is 'soon'; expected seconds$",
    ),
    "json bad word time": (
        "s.json",
        '{"segments": [{"start": 1, "end": 2, "text": "x", '
        '"words": [{"word": "x", "start": "soon"}]}]}',
        r"s\.json:segments\[0\]\.words\[0\]: start is 'soon'; expected seconds$",
    ),
    "json no speaker": (
        "s.json",
        '{"segments": [{"start": 1, "end": 2, "text": "x"}]}',
        r"s\.json:segments\[0\]: no speaker; expected a 'speaker' on the segment or its words",
    ),
    "pyannote no label": (
        "s.json",
        '[{"segment": {"start": 1, "end": 2}}]',
        r"s\.json:\[0\]: no 'label' or 'speaker'; expected one$",
    ),
    # ELAN
    "eaf not xml": (
        "s.eaf",
        "<ANNOTATION_DOCUMENT>\n<TIER>\n</ANNOTATION_DOCUMENT>",
        r"s\.eaf:3:3: not well-formed XML \(mismatched tag\)$",
    ),
    "eaf other root": (
        "s.eaf",
        "<html/>",
        r"s\.eaf: root element <html>; expected <ANNOTATION_DOCUMENT>",
    ),
    "eaf entities": (
        "s.eaf",
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><ANNOTATION_DOCUMENT/>',
        r"s\.eaf: has a document type declaration; expected an ELAN document without one$",
    ),
    "eaf unknown slot": (
        "s.eaf",
        eaf(SLOTS, tier("Maya", aligned("a1", "ts1", "ts9"))),
        r"s\.eaf:tier 'Maya' annotation a1: TIME_SLOT_REF2 'ts9' is not a time slot of TIME_ORDER$",
    ),
    "eaf bad time value": (
        "s.eaf",
        eaf('<TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="1.5s"/>', ""),
        r"s\.eaf:time slot ts1: TIME_VALUE '1\.5s'; expected whole milliseconds$",
    ),
    "eaf frames": (
        "s.eaf",
        eaf("", "", EAF_HEAD.replace("milliseconds", "PAL-frames")),
        r"s\.eaf:HEADER: TIME_UNITS 'PAL-frames'; expected 'milliseconds'$",
    ),
    "eaf ref annotation on a top tier": (
        "s.eaf",
        eaf(
            SLOTS,
            tier(
                "Maya",
                '<ANNOTATION><REF_ANNOTATION ANNOTATION_ID="a2" ANNOTATION_REF="a1">'
                "<ANNOTATION_VALUE>y</ANNOTATION_VALUE></REF_ANNOTATION></ANNOTATION>",
            ),
        ),
        r"s\.eaf:tier 'Maya': 1 REF_ANNOTATION\(s\) on a tier without PARENT_REF; expected them "
        r"only on dependent tiers$",
    ),
    "eaf reversed annotation": (
        "s.eaf",
        eaf(SLOTS, tier("Maya", aligned("a1", "ts3", "ts1"))),
        r"s\.eaf:tier 'Maya' annotation a1: ends at 1\.000s, not after its start 2\.000s$",
    ),
    "eaf same speaker overlap": (
        "s.eaf",
        eaf(
            SLOTS,
            tier("Maya", aligned("a1", "ts1", "ts3"))
            + tier("Maya 2", aligned("a2", "ts1", "ts3"), ' PARTICIPANT="Maya"'),
        ),
        r"s\.eaf:tier 'Maya 2' annotation a2: Maya's turn 1\.000-2\.000s overlaps their turn at "
        r"\S*s\.eaf:tier 'Maya' annotation a1",
    ),
    # TextGrid
    "textgrid binary": (
        "s.TextGrid",
        'File type = "ooBinaryFile"\n',
        r"s\.TextGrid:1: file type 'ooBinaryFile'; expected 'ooTextFile'",
    ),
    "textgrid other object": (
        "s.TextGrid",
        'File type = "ooTextFile"\nObject class = "Sound"\n',
        r"s\.TextGrid:2: object class 'Sound'; expected 'TextGrid'$",
    ),
    "textgrid truncated": (
        "s.TextGrid",
        TG_HEAD + '0\n2\n<exists>\n1\n"IntervalTier"\n"Maya"\n0\n2\n1\n0\n',
        r"s\.TextGrid:13: the file ends where a number \(interval xmax\) was expected$",
    ),
    "textgrid text for a number": (
        "s.TextGrid",
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = "two"\n',
        r's\.TextGrid:5: "two" where a number \(xmax\) was expected$',
    ),
    "textgrid tier class": (
        "s.TextGrid",
        TG_HEAD + '0\n2\n<exists>\n1\n"PitchTier"\n"x"\n0\n2\n0\n',
        r"s\.TextGrid:8: tier class 'PitchTier'; expected 'IntervalTier' or 'TextTier'$",
    ),
    "textgrid fractional count": (
        "s.TextGrid",
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n2\n<exists>\n1.5\n',
        r"s\.TextGrid:7: 1\.5 where a count \(number of tiers\) was expected$",
    ),
    # CSV / TSV
    "csv empty": ("s.csv", "", r"s\.csv:1: empty file; expected a header row$"),
    "csv no time columns": (
        "s.csv",
        "speaker,text\nMaya,hi\n",
        r"s\.csv:1: no 'start' or 'end' column among \['speaker', 'text'\]; expected columns "
        r"start, end, speaker, text",
    ),
    "csv bad time": (
        "s.csv",
        "start,end,speaker,text\n0.5,1.0,Maya,hi\n1.5,two,Maya,hi\n",
        r"s\.csv:3: end is 'two'; expected seconds \(12\.5\) or a clock time \(00:00:12,500\)$",
    ),
    "csv short row": (
        "s.csv",
        "start,end,speaker,text\n0.5,1.0,Maya\n",
        r"s\.csv:2: 3 fields, no 'text'; expected 4 fields as in the header$",
    ),
    "csv empty speaker": (
        "s.csv",
        'start,end,speaker,text\n0.5,1.0,Maya,"two\nlines"\n1.5,2.0,,hi\n',
        r"s\.csv:4: no speaker; expected a 'speaker' column with a name in every row$",
    ),
    "meld bad clock": (
        "s.csv",
        'Utterance,Speaker,StartTime,EndTime\nhi,Maya,"00:16:16,059","00:16:61,000"\n',
        r"s\.csv:2: EndTime is '00:16:61,000'; expected seconds",
    ),
    "tsv negative": (
        "s.tsv",
        "start\tend\tspeaker\ttext\n-1.0\t1.0\tA\thi\n",
        r"s\.tsv:2: starts at -1\.000s; expected a time of 0 or more$",
    ),
}


@pytest.mark.parametrize(("name", "content", "message"), BAD.values(), ids=BAD.keys())
def test_bad_input(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(TranscriptError, match=rf"^{re.escape(str(tmp_path))}/{message}"):
        read_transcript(path)


def test_media_end_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "s.vtt", write_vtt([("A", 1.0, 5.0, "x")]))
    read_transcript(path, media_duration=4.9995)
    with pytest.raises(
        TranscriptError, match=r"s\.vtt:3: ends at 5\.000s, past the end of the media \(4\.998s\)$"
    ):
        read_transcript(path, media_duration=4.998)


# --- format details -------------------------------------------------------------------------


def test_vtt_cue_with_several_voices_is_divided() -> None:
    text = "WEBVTT\n\n00:01.000 --> 00:04.000\n<v Maya>Hi.\n<v Theo>Hello.\n"
    segments, warnings = importers.transcripts.vtt.parse_vtt(text, "t.vtt")
    assert rows_of(segments) == [("Maya", 1.0, 2.0, "Hi."), ("Theo", 2.0, 4.0, "Hello.")]
    assert warnings == [
        "t.vtt: 1 cue(s) hold several speakers (line 3); their time was divided between "
        "the speakers in proportion to their text"
    ]


@pytest.mark.parametrize(
    ("line", "speaker", "text"),
    [
        ("MAYA: Hi there.", "MAYA", "Hi there."),
        ("Theo Baker: Hello.", "Theo Baker", "Hello."),
        ("- Maya: Hi.", "Maya", "Hi."),
        ("-Maya: Hi.", "Maya", "Hi."),
        ("[Maya] Hi.", "Maya", "Hi."),
        (">> MAYA: Hi.", "MAYA", "Hi."),
        ("<v Maya>Hi.</v>", "Maya", "Hi."),
        ("<i>MAYA: Hi.</i>", "MAYA", "Hi."),
        ("ÉLODIE: Salut.", "ÉLODIE", "Salut."),
        ("DR. NO: Hi.", "DR. NO", "Hi."),
        ("at 3:30 we leave", None, "at 3:30 we leave"),
        ("Wait, what: no", None, "Wait, what: no"),
        ("1990: the year", None, "1990: the year"),
        ("[laughs] Oh no", None, "[laughs] Oh no"),
        ("MAYA: [laughs] Oh no", "MAYA", "[laughs] Oh no"),
        ("{\\an8}MAYA: up top", "MAYA", "up top"),
        ("MAYA: Tom &amp; Jerry", "MAYA", "Tom & Jerry"),
    ],
)
def test_srt_speaker_prefixes(line: str, speaker: str | None, text: str) -> None:
    segments, _ = importers.transcripts.srt.parse_srt(
        f"1\n00:00:01,000 --> 00:00:02,000\n{line}\n", "t.srt"
    )
    assert rows_of(segments) == [(speaker, 1.0, 2.0, text)]


def test_srt_timing_variants() -> None:
    text = (
        "00:00:01.5 --> 00:00:02.25 X1:10 X2:20 Y1:5 Y2:9\nA: one\n\n"
        "7\n10:00:00,000-->10:00:01,000\nB: two\n\n\n\n"
        "8\n00:00:03,000 --> 00:00:04,000\n"
    )
    segments, warnings = importers.transcripts.srt.parse_srt(text, "t.srt")
    # The last cue has no text: not a turn, counted in a warning naming its timing line.
    assert rows_of(segments) == [("A", 1.5, 2.25, "one"), ("B", 36000.0, 36001.0, "two")]
    assert [s.where for s in segments] == ["1", "5"]
    assert warnings == [
        "t.srt: 1 empty cue(s), without text once tags are removed, are not turns (line 11)"
    ]


def test_srt_unnamed_lines_continue_the_speaker() -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nMAYA: one\ntwo\n- THEO: three\nfour\n"
    segments, warnings = importers.transcripts.srt.parse_srt(text, "t.srt")
    assert [(s.speaker, s.text) for s in segments] == [("MAYA", "one two"), ("THEO", "three four")]
    assert len(warnings) == 1


def test_rttm_other_line_types_are_counted() -> None:
    text = (
        ";; produced by a diariser\n"
        "SPKR-INFO a 1 <NA> <NA> <NA> unknown A <NA> <NA>\n"
        "SPEAKER a 1 0.5 1.0 <NA> <NA> A <NA> <NA>\n"
        "LEXEME a 1 0.5 0.2 hi lex A <NA> <NA>\n"
        "LEXEME a 1 0.7 0.2 there lex A <NA> <NA>\n"
        "SPEAKER\ta\t1\t2.0\t1.5\t<NA>\t<NA>\tB\n"
    )
    segments, warnings = importers.transcripts.rttm.parse_rttm(text, "t.rttm")
    assert rows_of(segments) == [("A", 0.5, 1.5, ""), ("B", 2.0, 3.5, "")]
    assert warnings == ["t.rttm: skipped lines that are not SPEAKER turns (2 LEXEME, 1 SPKR-INFO)"]


def test_companion_words_outside_every_turn_are_counted(tmp_path: Path) -> None:
    rttm = write(tmp_path, "s.rttm", write_rttm([("A", 1.0, 2.0, ""), ("B", 2.5, 3.0, "")]))
    words = write(
        tmp_path,
        "w.vtt",
        write_vtt([("x", 1.2, 1.8, "hello"), ("x", 2.9, 3.6, "near"), ("x", 9.0, 9.5, "far away")]),
    )
    transcript = read_transcript(rttm, text=words)
    assert rows_of(transcript.segments) == [("A", 1.0, 2.0, "hello"), ("B", 2.5, 3.0, "near")]
    assert any(
        "2 word(s) fall in no diarised turn (nor within 1s of one) and were left out: "
        "9.00s 'far'; " in w
        for w in transcript.warnings
    )


def test_companion_text_needs_a_diarisation_without_text(tmp_path: Path) -> None:
    path = write(tmp_path, "s.vtt", write_vtt([("A", 1.0, 2.0, "words")]))
    with pytest.raises(
        TranscriptError,
        match=(
            r"s\.vtt:3: the vtt transcript has text in 1 segment\(s\); a companion text is for "
            r"diarisation"
        ),
    ):
        read_transcript(path, text=path)


def test_pyannote_diarisation_forms(tmp_path: Path) -> None:
    turns = [{"segment": {"start": 0.5, "end": 1.5}, "track": "A", "label": "SPEAKER_00"}]
    flat = [{"start": 0.5, "end": 1.5, "speaker": "SPEAKER_00"}]
    docs = {
        "list": turns,
        "annotation": {"pyannote": "Annotation", "content": turns, "uri": "s"},
        "diarization": {"diarization": flat},
        "job output": {"output": {"diarization": flat}},
    }
    for name, doc in docs.items():
        path = write(tmp_path, f"{name}.json", json.dumps(doc))
        transcript = read_transcript(path)
        assert rows_of(transcript.segments) == [("SPEAKER_00", 0.5, 1.5, "")], name


def test_whisperx_words_without_speaker_or_times() -> None:
    doc = {
        "segments": [
            {
                "start": 0.0,
                "end": 4.0,
                "text": " uh Hi. 42 Hello.",
                "words": [
                    {"word": "uh", "start": 0.0, "end": 0.3},
                    {"word": "Hi.", "start": 0.4, "end": 0.8, "speaker": "A"},
                    {"word": "42"},
                    {"word": "Hello.", "start": 2.0, "end": 3.9, "speaker": "B"},
                ],
            },
            {"start": 4.0, "end": 5.0, "text": " Solo.", "speaker": "B", "words": []},
        ]
    }
    segments, _ = importers.transcripts.whisperx.parse_whisperx(json.dumps(doc), "w.json")
    # "uh" joins the first named speaker, "42" (no times, no speaker) the word before it.
    assert rows_of(segments) == [
        ("A", 0.0, 2.0, "uh Hi. 42"),
        ("B", 2.0, 4.0, "Hello."),
        ("B", 4.0, 5.0, "Solo."),
    ]
    assert [s.where for s in segments] == [
        "segments[0].words[0:3]",
        "segments[0].words[3]",
        "segments[1]",
    ]


def test_eaf_unaligned_slot_on_a_turn_is_interpolated() -> None:
    doc = eaf(SLOTS, tier("Maya", aligned("a1", "ts1", "ts2") + aligned("a2", "ts2", "ts3")))
    segments, warnings = importers.transcripts.eaf.parse_eaf(doc, "s.eaf")
    assert rows_of(segments) == [("Maya", 1.0, 1.5, "x"), ("Maya", 1.5, 2.0, "x")]
    assert warnings == [
        "s.eaf: 2 turn boundaries on unaligned time slots, interpolated "
        "(tier 'Maya' annotation a1, tier 'Maya' annotation a2)"
    ]


def test_eaf_speaker_falls_back_to_the_tier_id() -> None:
    doc = eaf(SLOTS, tier("Theo", aligned("a1", "ts1", "ts3"), ' PARTICIPANT=""'))
    segments, _ = importers.transcripts.eaf.parse_eaf(doc, "s.eaf")
    assert segments[0].speaker == "Theo"


def test_textgrid_strings_with_quotes_newlines_and_comments() -> None:
    text = (
        'File type = "ooTextFile short"\n"TextGrid"\n\n0 ! start\n3\n<exists>\n1\n'
        '"IntervalTier"\n"Ana Lu"\n0\n3\n2\n0\n1.5\n"say ""hi""\nplease"\n1.5\n3\n"  "\n'
    )
    segments, warnings = importers.transcripts.textgrid.parse_textgrid(text, "t.TextGrid")
    assert rows_of(segments) == [("Ana Lu", 0.0, 1.5, 'say "hi" please')]
    assert warnings == []


def test_textgrid_without_tiers() -> None:
    text = TG_HEAD + "xmin = 0\nxmax = 2\ntiers? <absent>\n"
    assert importers.transcripts.textgrid.parse_textgrid(text, "t.TextGrid") == ([], [])


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("Start;End;Speaker;Text", "1,5;2;Maya;hi", None),  # decimal comma: not seconds
        ("Start;End;Speaker;Text", "1.5;2;Maya;hi, you", ("Maya", 1.5, 2.0, "hi, you")),
        ("begin_time,duration,SPEAKER,transcript", "1.5,0.5,Maya,hi", ("Maya", 1.5, 2.0, "hi")),
        (
            "Onset,Offset,Participant,Words,Notes",
            "00:00:01.5,2,Maya,hi,x",
            ("Maya", 1.5, 2.0, "hi"),
        ),
        ("start,end,text", "1.0,2,hi", (None, 1.0, 2.0, "hi")),
    ],
)
def test_csv_column_names_and_delimiters(
    header: str, row: str, expected: tuple[str | None, float, float, str] | None
) -> None:
    sep = ";" if ";" in header else ","
    text = f"{header}\n{row}\n\n{sep * 3}\n"
    if expected is None:
        with pytest.raises(TranscriptError, match=r"t\.csv:2: Start is '1,5'; expected seconds"):
            importers.transcripts.table.parse_csv(text, "t.csv")
        return
    segments, _ = importers.transcripts.table.parse_csv(text, "t.csv")
    assert rows_of(segments) == [expected]


# --- encodings ------------------------------------------------------------------------------

TEXT = "WEBVTT\n\n00:01.000 --> 00:02.000\n<v Zoë>Ça va?\n"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16-be"),
    ],
)
def test_decodes_by_bom(raw: bytes, encoding: str) -> None:
    assert decode_text(raw, "t.vtt") == (TEXT, encoding, [])


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised_with_a_warning(encoding: str) -> None:
    text, got, warnings = decode_text(TEXT.encode(encoding), "t.vtt")
    assert (text, got) == (TEXT, encoding)
    assert warnings == [
        f"t.vtt: no byte-order mark but NUL bytes in every other position; read as UTF-16 "
        f"{encoding[-2:].upper()}"
    ]


def test_windows_1252_fallback_names_file_line_and_byte(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.srt",
        "1\n00:00:01,000 --> 00:00:02,000\nMAYA: “Café” \u2013 5 €\n".encode("cp1252"),
    )
    text, encoding, warnings = read_text(path)
    assert encoding == "cp1252"
    assert text.endswith("MAYA: “Café” \u2013 5 €\n")
    assert warnings == [f"{path}:3: byte 0x93 is not UTF-8; read as Windows-1252"]
    transcript = read_transcript(path)
    assert transcript.segments[0].text == "“Café” \u2013 5 €"
    assert transcript.warnings == tuple(warnings)


@pytest.mark.parametrize("byte", [0x81, 0x8D, 0x8F, 0x90, 0x9D])
def test_bytes_undecodable_everywhere_are_an_error(tmp_path: Path, byte: int) -> None:
    raw = b"start,end,speaker,text\n0,1,A,caf\xe9\n1,2,B,x" + bytes([byte]) + b"y\n"
    path = write(tmp_path, "s.csv", raw)
    with pytest.raises(
        TranscriptError,
        match=(
            rf"^{re.escape(str(path))}:3: byte 0x{byte:02X} is neither UTF-8 nor Windows-1252 "
            "text; expected a text file in UTF-8"
        ),
    ):
        read_transcript(path)


def test_strict_utf8_names_the_line() -> None:
    with pytest.raises(TranscriptError, match=r"^t:2: not valid UTF-8 text$"):
        decode_text(b"ok\ncaf\xe9\n", "t", fallback=False)


def test_broken_utf16_names_line_and_byte() -> None:
    raw = codecs.BOM_UTF16_LE + "a\nb\n".encode("utf-16-le") + b"\x00\xdc"  # lone low surrogate
    with pytest.raises(
        TranscriptError,
        match=r"^t:3: byte 0x00 cannot be decoded as UTF-16 LE .*as its byte-order mark says$",
    ):
        decode_text(raw, "t")


def test_broken_utf8_after_a_bom_is_an_error_not_a_guess() -> None:
    with pytest.raises(TranscriptError, match=r"^t:2: byte 0xFF cannot be decoded as UTF-8"):
        decode_text(codecs.BOM_UTF8 + b"ok\n\xffbad\n", "t")


def test_binary_files_are_refused() -> None:
    with pytest.raises(
        TranscriptError, match=r"^t\.vtt:2: NUL character in the text; expected a text file"
    ):
        decode_text(b"WEBVTT\n\x00\x01\x02binary junk here", "t.vtt")
