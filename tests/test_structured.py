"""The structured transcript readers on small hand-written files laid out as real tools
write them: ELAN speech tiers, aligner TextGrids, multi-recording RTTM, tables in
milliseconds and Whisper JSON without speakers.

Every expected value is read off the input written in the test (the comments say how).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importers.transcripts import read_transcript
from importers.transcripts.eaf import parse_eaf
from importers.transcripts.records import Segment
from importers.transcripts.rttm import parse_rttm
from importers.transcripts.table import parse_csv, parse_tsv
from importers.transcripts.textgrid import parse_textgrid
from importers.transcripts.whisperx import parse_whisperx, whisperx_words
from schemas.errors import TranscriptError

Row = tuple[str | None, float, float, str]


def rows(segments: list[Segment] | tuple[Segment, ...]) -> list[Row]:
    return sorted(((s.speaker, s.start, s.end, s.text) for s in segments), key=lambda r: r[1])


# --- ELAN -----------------------------------------------------------------------------------

SLOTS = "".join(
    f'<TIME_SLOT TIME_SLOT_ID="ts{k}" TIME_VALUE="{ms}"/>'
    for k, ms in enumerate([0, 1000, 2000, 3000, 4000, 5000, 6000], start=1)
)
TYPES = (
    '<LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="utt" TIME_ALIGNABLE="true"/>'
    '<LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="comments" TIME_ALIGNABLE="true"/>'
    '<LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="words" TIME_ALIGNABLE="false" '
    'CONSTRAINTS="Symbolic_Subdivision"/>'
)


def elan(tiers: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ANNOTATION_DOCUMENT>'
        '<HEADER TIME_UNITS="milliseconds"/>'
        f"<TIME_ORDER>{SLOTS}</TIME_ORDER>{tiers}{TYPES}</ANNOTATION_DOCUMENT>"
    )


def tier(tier_id: str, annotations: str, attrs: str = "", lt: str = "utt") -> str:
    return f'<TIER TIER_ID="{tier_id}" LINGUISTIC_TYPE_REF="{lt}"{attrs}>{annotations}</TIER>'


def ann(annotation_id: str, a: int, b: int, value: str) -> str:
    return (
        f'<ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="{annotation_id}" '
        f'TIME_SLOT_REF1="ts{a}" TIME_SLOT_REF2="ts{b}"><ANNOTATION_VALUE>{value}'
        "</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>"
    )


def ref(annotation_id: str, parent: str, value: str) -> str:
    return (
        f'<ANNOTATION><REF_ANNOTATION ANNOTATION_ID="{annotation_id}" '
        f'ANNOTATION_REF="{parent}"><ANNOTATION_VALUE>{value}</ANNOTATION_VALUE>'
        "</REF_ANNOTATION></ANNOTATION>"
    )


DOC = elan(
    # Maya speaks on two tiers of one participant; one of her annotations is empty.
    tier("Maya", ann("a1", 1, 2, "Hi.") + ann("a2", 3, 4, " "), ' PARTICIPANT="Maya"')
    + tier("Maya overlap", ann("a3", 2, 3, "Yes."), ' PARTICIPANT="Maya"')
    # Theo has no PARTICIPANT: the tier id names him.
    + tier("Theo", ann("a4", 4, 5, "Hello."))
    # Not speech: a gesture tier and a marker tier (by id), a tier of type "comments".
    + tier("Gestures Theo", ann("a5", 4, 5, "waves"))
    + tier("marker", ann("a6", 1, 7, "scene 1"))
    + tier("Director", ann("a7", 5, 6, "louder"), lt="comments")
    # A dependent tier of Theo's words.
    + tier("Theo-words", ref("a8", "a4", "Hello"), ' PARENT_REF="Theo"', lt="words")
)


def test_elan_speakers_are_the_speech_tiers() -> None:
    segments, warnings = parse_eaf(DOC, "s.eaf")
    # Slots ts1..ts7 are 0..6 s: a1 ts1-ts2, a3 ts2-ts3 (second Maya tier), a4 ts4-ts5.
    assert rows(segments) == [
        ("Maya", 0.0, 1.0, "Hi."),
        ("Maya", 1.0, 2.0, "Yes."),
        ("Theo", 3.0, 4.0, "Hello."),
    ]
    unused = [w for w in warnings if "tiers not used as speakers" in w]
    assert len(unused) == 1
    for name in ("'Gestures Theo' (a gesture tier", "'marker' (a marker tier", "'Director'"):
        assert name in unused[0]
    assert "'Theo-words' (dependent on 'Theo', 1 annotation)" in unused[0]
    assert any("1 empty annotation(s) are not turns ('Maya' 1)" in w for w in warnings)
    # Theo's tier has no PARTICIPANT beside tiers that have one: the user is told.
    assert any("['Theo'] have no PARTICIPANT" in w for w in warnings)


def test_elan_named_tiers_replace_the_choice() -> None:
    segments, warnings = parse_eaf(DOC, "s.eaf", tiers=("Theo", "Director"))
    # Director's note is read as a turn because the user named the tier.
    assert rows(segments) == [("Theo", 3.0, 4.0, "Hello."), ("Director", 4.0, 5.0, "louder")]
    (unused,) = [w for w in warnings if "tiers not used" in w]
    assert "'Maya' (not named in tiers, 2 annotations)" in unused


def test_elan_a_named_tier_that_does_not_exist_lists_the_tiers() -> None:
    with pytest.raises(TranscriptError) as info:
        parse_eaf(DOC, "s.eaf", tiers=("Theo", "Ben"))
    assert str(info.value) == (
        "s.eaf: no tier 'Ben'; the document's tiers are ['Maya', 'Maya overlap', 'Theo', "
        "'Gestures Theo', 'marker', 'Director', 'Theo-words']"
    )


def test_elan_a_named_symbolic_tier_has_no_times() -> None:
    with pytest.raises(TranscriptError, match=r"s\.eaf:tier 'Theo-words': 1 REF_ANNOTATION"):
        parse_eaf(DOC, "s.eaf", tiers=("Theo-words",))


def test_elan_tiers_reach_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.eaf"
    path.write_text(DOC, encoding="utf-8")
    transcript = read_transcript(path, tiers=["Maya overlap"])
    assert rows(transcript.segments) == [("Maya", 1.0, 2.0, "Yes.")]


# --- TextGrid -------------------------------------------------------------------------------


def grid(*tiers: tuple[str, str, list[tuple[float, float, str]]]) -> str:
    """A long-form TextGrid; each tier is (class, name, [(xmin, xmax, text)])."""
    end = max((b for _, _, items in tiers for _, b, _ in items), default=1.0)
    out = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {end}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for k, (kind, name, items) in enumerate(tiers, start=1):
        out += [f"    item [{k}]:", f'        class = "{kind}"', f'        name = "{name}"']
        out += ["        xmin = 0", f"        xmax = {end}"]
        if kind == "IntervalTier":
            out.append(f"        intervals: size = {len(items)}")
            for j, (a, b, text) in enumerate(items, start=1):
                out += [f"        intervals [{j}]:", f"            xmin = {a}"]
                out += [f"            xmax = {b}", f'            text = "{text}"']
        else:
            out.append(f"        points: size = {len(items)}")
            for j, (a, _, text) in enumerate(items, start=1):
                out += [f"        points [{j}]:", f"            number = {a}"]
                out.append(f'            mark = "{text}"')
    return "\n".join(out) + "\n"


WORDS = [
    (0.0, 0.4, "oh"),
    (0.4, 0.9, "well"),
    (0.9, 1.4, "<eps>"),  # 0.5 s of silence: 1.4 - 0.9 is 0.4999999999999999 in floats
    (1.4, 1.8, "yes"),
    (1.8, 2.0, "sp"),  # 0.2 s: under the pause
    (2.0, 2.5, "indeed"),
    (2.5, 3.5, "sil"),  # 1 s
    (3.5, 3.9, "spn"),  # spoken noise: a silence too
    (3.9, 4.5, ""),
    (4.5, 5.0, "{OOV}"),  # an out-of-vocabulary word is a word
]
PHONES = [(0.0, 0.2, "OW1"), (0.2, 0.4, "W"), (0.4, 0.9, "EH1")]


def test_mfa_plain_words_tier_is_one_speaker_without_a_name() -> None:
    text = grid(("IntervalTier", "words", WORDS), ("IntervalTier", "phones", PHONES))
    segments, warnings = parse_textgrid(text, "a.TextGrid")
    # oh well | (0.5 s) yes indeed | (2 s of sil, spn, empty) {OOV}
    assert rows(segments) == [
        (None, 0.0, 0.9, "oh well"),
        (None, 1.4, 2.5, "yes indeed"),
        (None, 4.5, 5.0, "{OOV}"),
    ]
    assert warnings == [
        "a.TextGrid: tiers not used as speakers (word tiers only: an aligner layout): "
        "'phones' (3 labelled intervals)"
    ]


def test_mfa_speaker_word_tiers() -> None:
    ana = [(0.0, 0.5, "hi"), (0.5, 1.0, "there"), (2.0, 2.5, "bye")]
    ben = [(1.0, 1.5, "hey")]
    text = grid(
        ("IntervalTier", "Ana Lu - words", ana),
        ("IntervalTier", "Ana Lu - phones", PHONES),
        ("IntervalTier", "Ben - word", ben),  # FAVE writes the singular
        ("IntervalTier", "Ben - phone", []),
        ("TextTier", "tones", [(0.3, 0.3, "H*"), (1.2, 1.2, "L%")]),
    )
    segments, warnings = parse_textgrid(text, "b.TextGrid")
    # Ana: hi there (no gap) | 1 s | bye. Ben: hey.
    assert rows(segments) == [
        ("Ana Lu", 0.0, 1.0, "hi there"),
        ("Ben", 1.0, 1.5, "hey"),
        ("Ana Lu", 2.0, 2.5, "bye"),
    ]
    assert "phones" not in {s.speaker for s in segments}
    assert "'Ana Lu - phones' (3 labelled intervals), 'Ben - phone' (0" in warnings[0]
    assert warnings[1] == (
        "b.TextGrid: skipped 2 point(s) of TextTier(s) 'tones' (2); only IntervalTiers hold turns"
    )


def test_other_grids_give_one_turn_per_interval() -> None:
    text = grid(
        ("IntervalTier", "  Maya ", [(0.0, 1.0, "Hi."), (1.0, 2.0, "Yes."), (2.0, 3.0, "")]),
        ("IntervalTier", "Theo", [(3.0, 4.0, "sil")]),  # not an aligner tier: "sil" is text
    )
    segments, warnings = parse_textgrid(text, "c.TextGrid")
    assert rows(segments) == [
        ("Maya", 0.0, 1.0, "Hi."),
        ("Maya", 1.0, 2.0, "Yes."),
        ("Theo", 3.0, 4.0, "sil"),
    ]
    assert warnings == []


def test_textgrid_named_tiers() -> None:
    text = grid(
        ("IntervalTier", "phrase", [(0.0, 2.0, "bobby ripped it")]),
        ("IntervalTier", "word", [(0.0, 1.0, "bobby"), (1.0, 2.0, "ripped it")]),
        ("TextTier", "", [(0.5, 0.5, "x")]),
    )
    segments, warnings = parse_textgrid(text, "d.TextGrid", tiers=["phrase"])
    assert rows(segments) == [("phrase", 0.0, 2.0, "bobby ripped it")]
    assert "(named in tiers): 'word' (2 labelled intervals)" in warnings[0]
    # Without the choice the `word` tier is an aligner word tier of one unnamed speaker.
    segments, _ = parse_textgrid(text, "d.TextGrid")
    assert rows(segments) == [(None, 0.0, 2.0, "bobby ripped it")]
    with pytest.raises(TranscriptError) as info:
        parse_textgrid(text, "d.TextGrid", tiers=["phrase", "words"])
    assert str(info.value) == (
        "d.TextGrid: no tier 'words'; the file's tiers are ['phrase', 'word', '']"
    )
    with pytest.raises(TranscriptError, match=r"d\.TextGrid:\d+: tier '' is a point tier"):
        parse_textgrid(text, "d.TextGrid", tiers=[""])


def test_maus_levels_are_refused_unless_a_tier_is_named(tmp_path: Path) -> None:
    text = grid(
        ("IntervalTier", "ORT", [(0.0, 1.0, "hallo")]),
        ("IntervalTier", "KAN", [(0.0, 1.0, "halo:")]),
        ("IntervalTier", "MAU", [(0.0, 0.5, "h"), (0.5, 1.0, "a")]),
    )
    with pytest.raises(TranscriptError, match=r"'tiers: \[ORT\]'"):
        parse_textgrid(text, "m.TextGrid")
    path = tmp_path / "m.TextGrid"
    path.write_text(text, encoding="utf-8")
    assert rows(read_transcript(path, tiers=("ORT",)).segments) == [("ORT", 0.0, 1.0, "hallo")]


# --- RTTM -----------------------------------------------------------------------------------

RTTM = (
    "SPEAKER scene1 1 0.00 1.00 <NA> <NA> A <NA> <NA>\n"
    "SPEAKER Scene2 1 0.50 1.00 <NA> <NA> B <NA> <NA>\n"
    "SPEAKER scene1 1 2.00 0.50 <NA> <NA> C <NA> <NA>\n"
    "SPEAKER Scene2 1 3.00 1.00 <NA> <NA> D <NA> <NA>\n"
)


def test_rttm_lines_of_the_recording() -> None:
    # File ids are compared without case and without the media's extension.
    segments, warnings = parse_rttm(RTTM, "r.rttm", media_name="scene2.WAV")
    assert rows(segments) == [("B", 0.5, 1.5, ""), ("D", 3.0, 4.0, "")]
    assert warnings == [
        "r.rttm: used the 2 line(s) of recording 'Scene2'; skipped 2 line(s) of other recordings"
    ]
    # A file id that keeps the extension matches too.
    with_ext = RTTM.replace("scene1", "scene1.wav")
    segments, _ = parse_rttm(with_ext, "r.rttm", media_name="Scene1.wav")
    assert rows(segments) == [("A", 0.0, 1.0, ""), ("C", 2.0, 2.5, "")]


def test_rttm_without_the_recording_lists_the_file_ids(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError) as info:
        parse_rttm(RTTM, "r.rttm", media_name="scene3.wav")
    assert str(info.value) == (
        "r.rttm: no lines of recording 'scene3' (from 'scene3.wav'); the file ids are "
        "['scene1', 'Scene2']; expected the recording's file name without extension"
    )
    with pytest.raises(TranscriptError, match=r"r\.rttm:2: turn of recording 'Scene2'"):
        parse_rttm(RTTM, "r.rttm")
    # One file id: used whatever it is.
    single = "SPEAKER other 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n"
    assert rows(parse_rttm(single, "r.rttm", media_name="x.wav")[0]) == [("A", 0.0, 1.0, "")]
    path = tmp_path / "r.rttm"
    path.write_text(RTTM, encoding="utf-8")
    transcript = read_transcript(path, media_name="scene1.wav")
    assert transcript.speakers == ("A", "C")


# --- tables ---------------------------------------------------------------------------------


def test_childproject_milliseconds_and_missing_speakers() -> None:
    # ChildProject's VTC conversion: integer ms, no text column, NA speaker types.
    text = (
        "segment_onset,segment_offset,speaker_type,raw_filename\n"
        "0,453,FEM,x.rttm\n"
        "100,1450,NA,x.rttm\n"
    )
    segments, warnings = parse_csv(text, "v.csv")
    assert rows(segments) == [("FEM", 0.0, 0.453, ""), (None, 0.1, 1.45, "")]
    assert warnings == []


def test_childproject_names_with_decimals_are_seconds() -> None:
    text = (
        "segment_onset,segment_offset,speaker_id,speaker_type,transcription,words\n"
        "3.15,3.332,CHI,CHI,0.,\n"
        "4,5.699,FA1,FEM,hello there,2\n"
    )
    segments, _ = parse_csv(text, "e.csv")
    # speaker_id wins over speaker_type; transcription over the word-count column.
    assert rows(segments) == [("CHI", 3.15, 3.332, "0."), ("FA1", 4.0, 5.699, "hello there")]


def test_text_column_of_na_is_no_text_and_empty_rows_are_counted() -> None:
    all_na = "segment_onset,segment_offset,speaker_id,transcription\n1602,2215,CHI*,NA\n"
    assert rows(parse_csv(all_na, "t.csv")[0]) == [("CHI*", 1.602, 2.215, "")]
    some = "start,end,speaker,text\n0.0,1,A,hi\n1.0,2,A,\n2.0,3,B,NA\n"
    segments, warnings = parse_csv(some, "t.csv")
    assert rows(segments) == [("A", 0.0, 1.0, "hi")]
    assert warnings == ["t.csv: 2 row(s) without text are not turns (lines 3, 4)"]


@pytest.mark.parametrize(
    ("header", "expected_end"),
    [
        ("start_ms,end_ms,Speaker Name,text", 2.5),
        ("Start (ms),End (ms),speaker,text", 2.5),
        ("begin_msec,end_msec,speaker,text", 2.5),
        ("Begin Time (s),End Time (s),speaker,text", 2500.0),
        ("start_time,end,speaker,transcription", None),  # no evidence, no duration
    ],
)
def test_units_named_in_the_header(header: str, expected_end: float | None) -> None:
    text = f"{header}\n1000,2500,Maya,hi\n"
    if expected_end is None:
        with pytest.raises(TranscriptError) as info:
            parse_csv(text, "u.csv")
        assert str(info.value) == (
            "u.csv: columns 'start_time', 'end' hold whole numbers that may be seconds or "
            "milliseconds (as seconds they reach 2500 s, as milliseconds 2.5 s) and the "
            "recording's duration is not known; expected the unit in the header "
            "('start_ms', 'start (s)'), decimal seconds or clock times"
        )
        return
    assert rows(parse_csv(text, "u.csv")[0]) == [("Maya", expected_end / 2.5, expected_end, "hi")]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (10.0, (9.0, 9.5)),  # as seconds 9500 s runs past 10 s; as ms 9.5 s fits
        (9600.0, (9000.0, 9500.0)),  # as ms 9.5 s is 0.1 % of the recording: seconds
        (3600.0, None),  # 9500 s runs past; 9.5 s is 0.26 % of an hour: neither fits
    ],
)
def test_whole_numbers_told_apart_by_the_recording(
    duration: float, expected: tuple[float, float] | None
) -> None:
    text = "onset,offset,speaker,text\n9000,9500,Maya,hi\n"
    if expected is None:
        with pytest.raises(TranscriptError, match=r"neither fits the recording's 3600\.000 s"):
            parse_csv(text, "w.csv", media_duration=duration)
        return
    segments, _ = parse_csv(text, "w.csv", media_duration=duration)
    assert rows(segments) == [("Maya", *expected, "hi")]


def test_clock_times_and_whisper_tsv() -> None:
    # The SRT-style clock time holds a comma, so the CSV quotes it.
    clocks = (
        'start,end,speaker,text\n"00:00:01,500",00:00:02.250,A,x\n01:05,1:07.5,B,y\n'
        "70,71,C,z\n"  # plain numbers beside clock times are seconds
    )
    assert rows(parse_csv(clocks, "c.csv")[0]) == [
        ("A", 1.5, 2.25, "x"),
        ("B", 65.0, 67.5, "y"),
        ("C", 70.0, 71.0, "z"),
    ]
    whisper = "start\tend\ttext\n0\t11000\tAnd so.\n11000\t12500\tAsk not.\n"
    assert rows(parse_tsv(whisper, "w.tsv")[0]) == [
        (None, 0.0, 11.0, "And so."),
        (None, 11.0, 12.5, "Ask not."),
    ]


def test_reader_gives_tables_the_recording_duration(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("start,end,speaker,text\n1000,2000,Maya,hi\n", encoding="utf-8")
    # As seconds 2000 s would run past a 5 s recording; as ms 2 s is 40 % of it.
    transcript = read_transcript(path, media_duration=5.0)
    assert rows(transcript.segments) == [("Maya", 1.0, 2.0, "hi")]


# --- Whisper JSON ---------------------------------------------------------------------------

WHISPER = {
    "text": " Ask not. What you can do.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 2.5, "text": " Ask not.", "tokens": [1]},
        {"id": 1, "seek": 0, "start": 3.0, "end": 5.0, "text": " What you can do."},
    ],
    "language": "en",
}


def test_openai_whisper_json_has_no_speakers(tmp_path: Path) -> None:
    segments, warnings = parse_whisperx(json.dumps(WHISPER), "w.json")
    assert rows(segments) == [(None, 0.0, 2.5, "Ask not."), (None, 3.0, 5.0, "What you can do.")]
    assert warnings == []
    path = tmp_path / "w.json"
    path.write_text(json.dumps(WHISPER), encoding="utf-8")
    assert len(read_transcript(path, require_speaker=False).segments) == 2
    with pytest.raises(TranscriptError, match=r"w\.json: 2 problems:\n.*segments\[0\]: no speaker"):
        read_transcript(path)


def test_faster_whisper_segment_list() -> None:
    doc = [
        {"id": 1, "start": 0.0, "end": 1.0, "text": " Hi.", "words": None},
        {
            "id": 2,
            "start": 1.5,
            "end": 2.5,
            "text": " Yes there.",
            "words": [
                {"start": 1.5, "end": 1.9, "word": " Yes", "probability": 0.9},
                {"start": 2.0, "end": 2.5, "word": " there.", "probability": 0.8},
            ],
        },
    ]
    segments, _ = parse_whisperx(json.dumps(doc), "f.json")
    assert rows(segments) == [(None, 0.0, 1.0, "Hi."), (None, 1.5, 2.5, "Yes there.")]
    assert [s.where for s in segments] == ["[0]", "[1]"]
    words = whisperx_words(json.dumps(doc), "f.json")
    assert [(w.text, w.start) for w in words] == [("Hi.", 0.0), ("Yes", 1.5), ("there.", 2.0)]


def test_whisperx_keeps_its_speakers() -> None:
    doc = {"segments": [{"start": 0.0, "end": 1.0, "text": "Hi.", "speaker": "SPEAKER_01"}]}
    assert rows(parse_whisperx(json.dumps(doc), "x.json")[0]) == [("SPEAKER_01", 0.0, 1.0, "Hi.")]


def test_elan_names_are_judged_by_whole_words() -> None:
    # "Gestur" and "Noteboom" are performers; "GestureTheo" and "Theo notes" are not speech.
    doc = elan(
        tier("Gestur", ann("a1", 1, 2, "Hi."))
        + tier("Noteboom", ann("a2", 2, 3, "Yes."))
        + tier("GestureTheo", ann("a3", 3, 4, "nods"))
        + tier("Theo notes", ann("a4", 4, 5, "late"))
    )
    segments, warnings = parse_eaf(doc, "n.eaf")
    assert rows(segments) == [("Gestur", 0.0, 1.0, "Hi."), ("Noteboom", 1.0, 2.0, "Yes.")]
    assert warnings == [
        "n.eaf: tiers not used as speakers: 'GestureTheo' (a gesture tier, 1 annotation), "
        "'Theo notes' (a note tier, 1 annotation)"
    ]


def test_whisperx_words_with_null_times_take_their_neighbours() -> None:
    # WhisperX writes an unaligned numeral as {"word": "1990.", "start": null, "end": null}.
    doc = {
        "segments": [
            {
                "start": 0.0,
                "end": 3.0,
                "text": "In 1990. Yes.",
                "words": [
                    {"word": "In", "start": 0.0, "end": 0.5, "speaker": "A"},
                    {"word": "1990.", "start": None, "end": None, "speaker": None},
                    {"word": "Yes.", "start": 2.0, "end": 3.0, "speaker": "B"},
                ],
            }
        ]
    }
    segments, _ = parse_whisperx(json.dumps(doc), "n.json")
    # The numeral stays with A (the word before it); A's run ends where the numeral ends,
    # at the start of the next timed word (2.0).
    assert rows(segments) == [("A", 0.0, 2.0, "In 1990."), ("B", 2.0, 3.0, "Yes.")]


def test_a_phones_tier_is_never_a_speaker() -> None:
    text = grid(("IntervalTier", "Maya", [(0.0, 1.0, "Hi.")]), ("IntervalTier", "phones", PHONES))
    segments, warnings = parse_textgrid(text, "p.TextGrid")
    assert rows(segments) == [("Maya", 0.0, 1.0, "Hi.")]
    assert warnings == [
        "p.TextGrid: tiers not used as speakers (phone tiers are no speakers): 'phones' "
        "(3 labelled intervals)"
    ]
