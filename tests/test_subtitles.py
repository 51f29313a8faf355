"""WebVTT and SubRip as real tools write them: cue cutting, and the speaker conventions.

Every expected value is written from reading the small input by hand: the speakers, the
text, the times (a cue divided between speakers is divided by the length of the texts,
worked out in the comment above the assertion) and the line of each timing line.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import importers.transcripts.speakers
from importers.transcripts import read_transcript
from importers.transcripts.speakers import Prefix, find_prefix
from importers.transcripts.srt import parse_srt
from importers.transcripts.vtt import parse_vtt
from schemas.errors import TranscriptError

Row = tuple[str | None, float, float, str]


def vtt(text: str) -> tuple[list[Row], list[str], list[str]]:
    """Rows, ``where`` of each segment and warnings of a WebVTT text named ``t.vtt``."""
    segments, warnings = parse_vtt(text, "t.vtt")
    return (
        [(s.speaker, s.start, s.end, s.text) for s in segments],
        [s.where for s in segments],
        warnings,
    )


def srt(text: str) -> tuple[list[Row], list[str], list[str]]:
    """Rows, ``where`` of each segment and warnings of a SubRip text named ``t.srt``."""
    segments, warnings = parse_srt(text, "t.srt")
    return (
        [(s.speaker, s.start, s.end, s.text) for s in segments],
        [s.where for s in segments],
        warnings,
    )


def test_doctests() -> None:
    result = doctest.testmod(importers.transcripts.speakers, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- WebVTT cue cutting, as the specification's parser does it ------------------------------


def test_vtt_timing_line_without_empty_line_before_it_starts_a_cue() -> None:
    # As youtube-dl wrote it: the third timing line follows the second cue's text directly.
    rows, where, warnings = vtt(
        "WEBVTT\n"
        "\n"
        "00:04:46.070 --> 00:04:46.470 align:start position:0%\n"
        "yeah\n"
        "\n"
        "00:04:46.470 --> 00:05:04.080 align:start position:0%\n"
        "yeah\n"
        "<c.colorCCCCCC>what</c>\n"
        "00:05:04.080 --> 00:05:05.069 align:start position:0%\n"
        "this<00:05:04.199><c> will</c>\n"
    )
    assert rows == [
        (None, 286.07, 286.47, "yeah"),
        (None, 286.47, 304.08, "yeah what"),
        (None, 304.08, 305.069, "this will"),
    ]
    assert where == ["3", "6", "9"]
    assert warnings == []


def test_vtt_header_note_and_style_end_at_a_timing_line() -> None:
    rows, where, _ = vtt(
        "WEBVTT - a title\n"
        "Kind: captions\n"
        "00:01.000 --> 00:02.000\n"
        "<v A>one\n"
        "\n"
        "NOTE a comment\n"
        "on two lines\n"
        "00:03.000 --> 00:04.000\n"
        "<v B>two\n"
        "\n"
        "STYLE\n"
        "::cue { color: red }\n"
        "\n"
        "NOTE 00:99.000 --> not a timing, part of the comment\n"
        "\n"
        "REGION\n"
        "id:r1\n"
        "\n"
        "00:05.000 --> 00:06.000 region:r1\n"
        "<v A>three\n"
    )
    assert rows == [("A", 1.0, 2.0, "one"), ("B", 3.0, 4.0, "two"), ("A", 5.0, 6.0, "three")]
    assert where == ["3", "8", "19"]


def test_vtt_lines_of_spaces() -> None:
    # YouTube: a line holding one space is cue text (only an empty line ends a cue).
    # Netflix: lines of spaces before the first cue and before a cue number are skipped.
    rows, where, _ = vtt(
        "WEBVTT\n"
        "\n"
        "          \n"
        "\n"
        "   \n"
        "1\n"
        "00:00:07.960 --> 00:00:09.480  position:50.00%,middle  align:middle \n"
        " \n"
        "first\n"
        "\n"
        "00:00:10.000 --> 00:00:11.000\n"
        "second\n"
        " \n"
    )
    assert rows == [(None, 7.96, 9.48, "first"), (None, 10.0, 11.0, "second")]
    assert where == ["7", "11"]


def test_vtt_tags_entities_and_cue_identifiers() -> None:
    # A Teams cue identifier, voices with classes and closers, karaoke timestamps, entities.
    rows, where, _ = vtt(
        "WEBVTT\n"
        "\n"
        "6d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8/12-0\n"
        "00:00:01.000 --> 00:00:02.500\n"
        "<v.loud Zoë Müller>Tom &amp; Jerry <00:00:01.500><c.yellow>&lt;3</c></v>\n"
    )
    assert rows == [("Zoë Müller", 1.0, 2.5, "Tom & Jerry <3")]
    assert where == ["4"]


def test_vtt_character_references_in_voice_names() -> None:
    # Teams writes accented names of voices as character references.
    rows, _, _ = vtt(
        "WEBVTT\n\n001ec368-3c77/8-0\n00:00:05.485 --> 00:00:05.725\n"
        "<v Carlos Far&#237;as>No.</v>\n\n"
        "001ec368-3c77/9-0\n00:00:07.165 --> 00:00:08.845\n<v Graham, Ken (Contractor)>Yes.</v>\n"
    )
    assert rows == [
        ("Carlos Farías", 5.485, 5.725, "No."),
        ("Graham, Ken (Contractor)", 7.165, 8.845, "Yes."),
    ]


def test_vtt_cue_without_a_voice_in_a_voiced_file_continues_the_speaker() -> None:
    rows, _, warnings = vtt(
        "WEBVTT\n\n"
        "a/1-0\n00:00:01.000 --> 00:00:02.000\n<v Ann>Which one?</v>\n\n"
        "a/1-1\n00:00:02.000 --> 00:00:03.000\nThe baseline.\n\n"
        "b/2-0\n00:00:03.000 --> 00:00:04.000\n<v Bob>Yeah.</v>\n"
    )
    assert [r[0] for r in rows] == ["Ann", "Ann", "Bob"]
    assert warnings == [
        "t.vtt: 1 cue(s) name no speaker and continue the previous one, as the file names "
        "the speaker on most cues (line 8: 'The baseline.')"
    ]


def test_vtt_empty_cues_are_not_turns() -> None:
    rows, _, warnings = vtt(
        "WEBVTT\n\n"
        "00:00.000 --> 00:00.000\n\n"
        "00:01.000 --> 00:02.000\n<c.x></c> <00:00:01.500>\n\n"
        "00:03.000 --> 00:04.000\nkept\n"
    )
    assert rows == [(None, 3.0, 4.0, "kept")]
    assert warnings == [
        "t.vtt: 2 empty cue(s), without text once tags are removed, are not turns (lines 3, 5)"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # An arrow in the text starts a new cue, and its timing is malformed.
        (
            "WEBVTT\n\n00:01.000 --> 00:02.000\nA --> B\n",
            r"^t\.vtt:4: malformed cue timing 'A --> B'; expected 'HH:MM:SS\.mmm --> ",
        ),
        (
            "WEBVTT\n\nNOTE x\n00:01.000 --> 00:02.000\nA\n\n00:03.000 --> 00:04\nB\n",
            r"^t\.vtt:7: malformed cue timing '00:03\.000 --> 00:04'",
        ),
        (
            "WEBVTT\n\n00:01.000 --> 00:02.000\nA\n\nstray text\n",
            r"^t\.vtt:6: expected a cue timing line .*, got 'stray text'$",
        ),
    ],
)
def test_vtt_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message):
        parse_vtt(text, "t.vtt")


# --- speaker conventions ------------------------------------------------------------------


def test_several_voices_in_one_cue_divide_its_time() -> None:
    # "Hi." has 3 characters, "Hello there." 12: 3 s split 3:12, at 0.6 s.
    rows, where, warnings = vtt(
        "WEBVTT\n\n00:00.000 --> 00:03.000\n<v A>Hi.</v> <v B>Hello there.</v>\n"
    )
    assert rows == [("A", 0.0, 0.6, "Hi."), ("B", 0.6, 3.0, "Hello there.")]
    assert where == ["3", "3"]
    assert warnings == [
        "t.vtt: 1 cue(s) hold several speakers (line 3); their time was divided between "
        "the speakers in proportion to their text"
    ]


def test_name_prefixes_with_spaces_parentheses_dots_apostrophes_and_other_scripts() -> None:
    rows, _, warnings = vtt(
        "WEBVTT\n\n"
        "1\n00:00:01.000 --> 00:00:02.000\nDr. Jane O'Neil (she/her): Good morning.\n\n"
        "2\n00:00:02.000 --> 00:00:03.000\nZoë Müller-Lüdenscheidt: Hallo.\n\n"
        "3\n00:00:03.000 --> 00:00:04.000\nand welcome.\n\n"
        "4\n00:00:04.000 --> 00:00:05.000\n李明: 你好。\n\n"
        "5\n00:00:05.000 --> 00:00:06.000\nmary:  Oh.\n"
    )
    # Four of five cues carry a prefix: the convention of the file; cue 3 continues Zoë.
    assert rows == [
        ("Dr. Jane O'Neil (she/her)", 1.0, 2.0, "Good morning."),
        ("Zoë Müller-Lüdenscheidt", 2.0, 3.0, "Hallo."),
        ("Zoë Müller-Lüdenscheidt", 3.0, 4.0, "and welcome."),
        ("李明", 4.0, 5.0, "你好。"),
        ("mary", 5.0, 6.0, "Oh."),
    ]
    assert warnings == [
        "t.vtt: 1 cue(s) name no speaker and continue the previous one, as the file names "
        "the speaker on most cues (line 12: 'and welcome.')"
    ]


def test_a_sentence_with_a_colon_in_a_named_file_continues_the_speaker() -> None:
    # Most cues are named, but "so the plan" (three words, "plan" in lower case) is used once
    # and does not read as a name: its cue continues Maya.
    rows, _, warnings = srt(
        "1\n00:00:01,000 --> 00:00:02,000\nMaya Lin: Hi.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nso the plan: we meet at noon.\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\nTheo: Fine.\n"
    )
    assert [(r[0], r[3]) for r in rows] == [
        ("Maya Lin", "Hi."),
        ("Maya Lin", "so the plan: we meet at noon."),
        ("Theo", "Fine."),
    ]
    assert len(warnings) == 1


def test_continued_cues_are_counted_in_one_warning() -> None:
    # Five of nine cues are named: the file's convention; the other four continue.
    cues = [
        "MAYA: one",
        "two",
        "three",
        "THEO: four",
        "five",
        "six",
        "MAYA: 7",
        "THEO: 8",
        "MAYA: 9",
    ]
    text = "".join(
        f"{k}\n00:00:{k:02d},000 --> 00:00:{k:02d},900\n{line}\n\n"
        for k, line in enumerate(cues, start=1)
    )
    rows, _, warnings = srt(text)
    assert [r[0] for r in rows] == ["MAYA"] * 3 + ["THEO"] * 3 + ["MAYA", "THEO", "MAYA"]
    (warning,) = warnings
    # Cues 2, 3, 5, 6 have their timing lines on lines 6, 10, 18, 22; three are shown.
    assert warning == (
        "t.srt: 4 cue(s) name no speaker and continue the previous one, as the file names "
        "the speaker on most cues (line 6: 'two', line 10: 'three', line 18: 'five' ...)"
    )


def test_a_colon_in_a_sentence_is_not_a_name() -> None:
    # One cue in four has a "Name:" shape, used once: this file does not name speakers.
    rows, _, warnings = srt(
        "1\n00:00:01,000 --> 00:00:02,000\nThe bus leaves at noon.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nNote: the bus is late.\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\nWe wait.\n\n"
        "4\n00:00:04,000 --> 00:00:05,000\nAt 3:30 we leave.\n"
    )
    assert [(r[0], r[3]) for r in rows] == [
        (None, "The bus leaves at noon."),
        (None, "Note: the bus is late."),
        (None, "We wait."),
        (None, "At 3:30 we leave."),
    ]
    assert warnings == []


def test_a_name_on_two_cues_is_a_name_even_where_most_cues_have_none() -> None:
    # NARRATOR prefixes two cues of eight; "Here's the thing" two, but "thing" is lower case
    # (not a name); four cues of eight have a prefix, not most: no cue is continued.
    lines = [
        "NARRATOR: Once upon a time.",
        "Here's the thing: a bus.",
        "A bus came.",
        "It was red.",
        "Here's the thing: it left.",
        "We walked.",
        "Far.",
        "NARRATOR: The end.",
    ]
    rows, _, warnings = srt(
        "".join(
            f"{k}\n00:00:{k:02d},000 --> 00:00:{k:02d},500\n{line}\n\n"
            for k, line in enumerate(lines, start=1)
        )
    )
    assert [(r[0], r[3]) for r in rows] == [
        ("NARRATOR", "Once upon a time."),
        *((None, line) for line in lines[1:7]),
        ("NARRATOR", "The end."),
    ]
    assert warnings == []


@pytest.mark.parametrize(
    "cue",
    ["[SPEAKER_00]: Hello there.", "[SPEAKER_00] Hello there.", "SPEAKER_00: Hello there."],
)
def test_whisperx_labels(cue: str) -> None:
    # A diarisation label is a speaker even on a single cue of the file.
    rows, _, _ = srt(
        f"1\n00:00:01,000 --> 00:00:02,000\n{cue}\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nno label here\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\nnor here\n\n"
        "4\n00:00:04,000 --> 00:00:05,000\nnor here\n"
    )
    assert rows[0] == ("SPEAKER_00", 1.0, 2.0, "Hello there.")
    # Only diarisation labels, the first on the first cue: the file labels speaker changes,
    # and the cues after it continue its speaker.
    assert [r[0] for r in rows[1:]] == ["SPEAKER_00"] * 3


def test_labels_only_where_the_speaker_changes() -> None:
    # Deepgram's SubRip: "[speaker N]" on a line of its own, only when the speaker changes.
    rows, _, warnings = srt(
        "1\n00:00:00,080 --> 00:00:04,120\n[speaker 0]\nYeah, as much as it is,\n\n"
        "2\n00:00:04,400 --> 00:00:08,200\nworth celebrating.\n\n"
        "3\n00:00:08,475 --> 00:00:12,340\n[speaker 1]\nI think so too.\n\n"
        "4\n00:00:12,340 --> 00:00:13,000\nIt is normal.\n\n"
        "5\n00:00:13,000 --> 00:00:14,000\nAnd good.\n\n"
        "6\n00:00:14,000 --> 00:00:15,000\n[speaker 0]\nRight.\n"
    )
    # Three cues of six are labelled (not most), yet the file labels each change.
    assert rows == [
        ("speaker 0", 0.08, 4.12, "Yeah, as much as it is,"),
        ("speaker 0", 4.4, 8.2, "worth celebrating."),
        ("speaker 1", 8.475, 12.34, "I think so too."),
        ("speaker 1", 12.34, 13.0, "It is normal."),
        ("speaker 1", 13.0, 14.0, "And good."),
        ("speaker 0", 14.0, 15.0, "Right."),
    ]
    (warning,) = warnings
    assert warning == (
        "t.srt: 3 cue(s) name no speaker and continue the previous one, as the file labels the "
        "speaker only where it changes (line 7: 'worth celebrating.', line 16: 'It is normal.', "
        "line 20: 'And good.')"
    )


def test_broadcast_speaker_changes() -> None:
    # ">>" (escaped in WebVTT) marks a change of speaker; a name follows it or not.
    rows, _, _ = vtt(
        "WEBVTT\n\n"
        "00:01.000 --> 00:02.000\n&gt;&gt; COUNCILMEMBER SAWANT: Thank you.\n\n"
        "00:02.000 --> 00:03.000\n&gt;&gt; HERE.\n\n"
        "00:03.000 --> 00:04.000\n&gt;&gt; COUNCILMEMBER SAWANT: Next item.\n\n"
        "00:04.000 --> 00:05.000\nTHE TIME IS 9:31 A.M.\n"
    )
    assert [(r[0], r[3]) for r in rows] == [
        ("COUNCILMEMBER SAWANT", "Thank you."),
        (None, ">> HERE."),
        ("COUNCILMEMBER SAWANT", "Next item."),
        (None, "THE TIME IS 9:31 A.M."),
    ]


def test_dialogue_dashes_give_one_turn_per_line() -> None:
    # "Déjala." has 7 characters, "Tú no te metas." 15: 2.2 s split 7:15 gives 0.7 s.
    rows, where, warnings = vtt(
        "WEBVTT\n\n"
        "18\n00:00:59.600 --> 00:01:01.800\n- Déjala.\n-Tú no te metas.\n\n"
        "19\n00:01:02.000 --> 00:01:03.000\n-\nnot a dash\n\n"
        "20\n00:01:03.000 --> 00:01:04.000\n-- and then\n- so\n"
    )
    assert rows == [
        (None, 59.6, 60.3, "Déjala."),
        (None, 60.3, 61.8, "Tú no te metas."),
        (None, 62.0, 63.0, "- not a dash"),
        (None, 63.0, 64.0, "-- and then - so"),
    ]
    assert where == ["4", "4", "9", "14"]
    assert warnings == [
        "t.vtt: 1 cue(s) hold several speakers (line 4); their time was divided between "
        "the speakers in proportion to their text"
    ]


def test_dialogue_dashes_with_names_in_a_named_file() -> None:
    # "Sorry." 6 characters, "Ha!" 3: 0.6 s split 6:3 at 0.4 s. The unnamed dash of the
    # last cue is nobody's: a dash means another speaker, not the previous one.
    rows, _, _ = srt(
        "1\n00:00:16,000 --> 00:00:16,300\nMAYA: Oh.\n\n"
        "2\n00:00:16,400 --> 00:00:17,000\n- MAYA: Sorry.\n- THEO: Ha!\n\n"
        "3\n00:00:17,000 --> 00:00:18,000\n- THEO: What?\n- Nothing.\n"
    )
    assert rows == [
        ("MAYA", 16.0, 16.3, "Oh."),
        ("MAYA", 16.4, 16.8, "Sorry."),
        ("THEO", 16.8, 17.0, "Ha!"),
        # "What?" 5 characters, "Nothing." 8: 1 s split 5:8 at 0.385 s.
        ("THEO", 17.0, 17.385, "What?"),
        (None, 17.385, 18.0, "Nothing."),
    ]


def test_two_named_lines_in_one_cue() -> None:
    # "Hi." 3 characters, "Hello, Maya." 12: 1.5 s split 3:12 at 0.3 s.
    rows, _, _ = srt("1\n00:00:01,000 --> 00:00:02,500\nMAYA: Hi.\nTHEO: Hello, Maya.\n")
    assert rows == [("MAYA", 1.0, 1.3, "Hi."), ("THEO", 1.3, 2.5, "Hello, Maya.")]


def test_sdh_bracket_labels_and_sound_descriptions() -> None:
    rows, _, _ = vtt(
        "WEBVTT\n\n"
        "00:01.000 --> 00:02.000\n[Alba] <i>En 1928,</i>\n\n"
        "00:02.000 --> 00:03.000\n[ríen emocionadas]\n\n"
        "00:03.000 --> 00:04.000\n[laughs] Oh no.\n\n"
        "00:04.000 --> 00:05.000\n[Music] la la la\n\n"
        "00:05.000 --> 00:06.000\n[Laughter] Yes.\n\n"
        "00:06.000 --> 00:07.000\nwho knows\n"
    )
    # One title-case label names Alba; the others are sounds; the rest is nobody's.
    assert [(r[0], r[3]) for r in rows] == [
        ("Alba", "En 1928,"),
        (None, "[ríen emocionadas]"),
        (None, "[laughs] Oh no."),
        (None, "[Music] la la la"),
        (None, "[Laughter] Yes."),
        (None, "who knows"),
    ]


def test_no_speaker_at_all(tmp_path: Path) -> None:
    text = (
        "WEBVTT\n\n00:00.000 --> 00:02.000\nWould you like tea?\n\n00:02.500 --> 00:03.000\nYes.\n"
    )
    rows, _, warnings = vtt(text)
    assert rows == [(None, 0.0, 2.0, "Would you like tea?"), (None, 2.5, 3.0, "Yes.")]
    assert warnings == []
    path = tmp_path / "plain.vtt"
    path.write_text(text, encoding="utf-8")
    # The session gives such turns a speaker (unknown, or the channel's performer) ...
    transcript = read_transcript(path, require_speaker=False)
    assert [s.speaker for s in transcript.segments] == [None, None]
    # ... and a caller that needs speakers hears about every cue.
    with pytest.raises(TranscriptError, match=r"2 problems:\n.*plain\.vtt:3: no speaker"):
        read_transcript(path)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Scott Thompson: Alright.", Prefix("Scott Thompson", "colon", "Alright.")),
        ("Marie : Bonjour.", Prefix("Marie", "colon", "Bonjour.")),
        ("Speaker 1: hi", Prefix("Speaker 1", "id", "hi")),
        ("Mr. Smith (Host): hi", Prefix("Mr. Smith (Host)", "colon", "hi")),
        ("- Maya: Hi.", Prefix("Maya", "colon", "Hi.")),
        (">>> NEWS DESK: Good evening.", Prefix("NEWS DESK", "colon", "Good evening.")),
        ("[THEO] Hello.", Prefix("THEO", "colon", "Hello.")),
        ("[Theo]: Hello.", Prefix("Theo", "label", "Hello.")),
        ("[speaker_2] ok", Prefix("speaker_2", "id", "ok")),
        ("[Speaker00]: ok", Prefix("Speaker00", "id", "ok")),
        ("[發言者00]: 好", Prefix("發言者00", "colon", "好")),
        ("Wait, what: no", None),
        ("1990: the year", None),
        ("at 3:30 we leave", None),
        ("one two three four five six: too many words", None),
        ("Well... maybe: yes", None),
        ("Is it? No: yes", None),
        ("[Alba]", None),
        ("[door slams] Hello.", None),
        ("https://example.org is it", None),
    ],
)
def test_find_prefix(line: str, expected: Prefix | None) -> None:
    assert find_prefix(line) == expected


# --- SubRip ---------------------------------------------------------------------------------


def test_srt_empty_lines_inside_a_cue_continue_it() -> None:
    rows, where, warnings = srt(
        "1\n00:00:01,000 --> 00:00:03,000\nMAYA: I waited\n\nsince\n\n1990\n\n"
        "2\n00:00:04,000 --> 00:00:05,000\nTHEO: Wow.\n"
    )
    assert rows == [("MAYA", 1.0, 3.0, "I waited since 1990"), ("THEO", 4.0, 5.0, "Wow.")]
    assert where == ["2", "10"]
    assert warnings == [
        "t.srt: 2 block(s) without a cue number or timing line continue the cue before them "
        "(an empty line inside a cue's text; lines 5, 7)"
    ]


def test_srt_as_real_writers_write_it() -> None:
    # A BOM, CRLF, numbers out of order and missing, '.' and one-digit decimals, no hours,
    # no empty line before the next cue, no final newline.
    text = (
        "\ufeff7\r\n00:00:01,000 --> 00:00:02,000\r\nMAYA: one\r\n\r\n"
        "3\r\n00:00:02.5 --> 00:00:03.25\r\nTHEO: two\r\n"
        "4\r\n00:04,000 --> 00:05,000\r\nMAYA: three\r\n\r\n"
        "00:00:06,000 --> 00:00:07,000\r\nTHEO: four"
    )
    rows, where, warnings = srt(text)
    assert rows == [
        ("MAYA", 1.0, 2.0, "one"),
        ("THEO", 2.5, 3.25, "two"),
        ("MAYA", 4.0, 5.0, "three"),
        ("THEO", 6.0, 7.0, "four"),
    ]
    assert where == ["2", "6", "9", "12"]
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Hello\n\n1\n00:00:01,000 --> 00:00:02,000\nA: x\n",
            r"^t\.srt:1: expected a cue number or a timing line 'hh:mm:ss,mmm --> "
            r"hh:mm:ss,mmm', got 'Hello'$",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nA: x\n\n2\n00:00:03,000 -> 00:00:04,000\nA: y\n",
            r"^t\.srt:6: expected a timing line .* after the cue number '2', got '00:00:03,000 "
            r"-> 00:00:04,000'$",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nA: x\n\n2\n00:00:03,000 --> 00:00:04\nA: y\n",
            r"^t\.srt:6: malformed cue timing '00:00:03,000 --> 00:00:04'; expected "
            r"'hh:mm:ss,mmm --> hh:mm:ss,mmm'$",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nA --> B\n",
            r"^t\.srt:3: malformed cue timing 'A --> B'",
        ),
    ],
)
def test_srt_errors_name_the_line_and_value(text: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message):
        parse_srt(text, "t.srt")


def test_srt_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nA: x\n\n2\n00:00:61,000 --> x\n")
    with pytest.raises(TranscriptError, match=rf"^{re.escape(str(path))}:6: malformed cue timing"):
        read_transcript(path)
