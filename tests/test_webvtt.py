"""Tests for importers.webvtt: what parses, and errors naming the file and line."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from importers import webvtt as webvtt_module
from importers.webvtt import Cue, parse_webvtt, read_webvtt
from schemas.errors import AnnotateError, TranscriptError


def parse(text: str) -> list[Cue]:
    return list(parse_webvtt(text, "t.vtt"))


def test_doctests() -> None:
    result = doctest.testmod(webvtt_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_voices_times_and_lines() -> None:
    cues = parse(
        "WEBVTT\n"
        "\n"
        "00:00:00.500 --> 00:00:02.000\n"
        "<v Maya>Hi there.\n"
        "\n"
        "00:00:02.250 --> 00:00:04.125\n"
        "<v Theo Baker>Hello, Maya.\n"
    )
    assert cues == [
        Cue("Maya", 0.5, 2.0, "Hi there.", 3),
        Cue("Theo Baker", 2.25, 4.125, "Hello, Maya.", 6),
    ]


@pytest.mark.parametrize(
    ("timing", "start", "end"),
    [
        ("00:01.000 --> 00:02.500", 1.0, 2.5),
        ("01:02:03.004 --> 01:02:04.000", 3723.004, 3724.0),
        ("59:59.999 --> 1:00:00.000", 3599.999, 3600.0),
        ("00:00:01.000 --> 00:02.000", 1.0, 2.0),
        ("123:00:00.000 --> 123:00:00.001", 442800.0, 442800.001),
        ("00:01.000 --> 00:02.000 align:start position:10%", 1.0, 2.0),
        ("00:01.000\t-->\t00:02.000", 1.0, 2.0),
        # The specification's parser needs no spaces around the arrow.
        ("00:01.000-->00:02.000", 1.0, 2.0),
        # Short fields as some Teams versions write them: 0 h 0 min 0.0 s, 1.57 s.
        ("0:0:0.0 --> 0:0:1.57", 0.0, 1.57),
    ],
)
def test_timestamps_hours_optional(timing: str, start: float, end: float) -> None:
    (cue,) = parse(f"WEBVTT\n\n{timing}\n<v A>x\n")
    assert (cue.start, cue.end) == (start, end)


def test_cue_ids() -> None:
    cues = parse(
        "WEBVTT\n\nturn-0\n00:01.000 --> 00:02.000\n<v A>one\n\n"
        "7\n00:03.000 --> 00:04.000\n<v B>two\n"
    )
    assert [(c.speaker, c.text, c.line) for c in cues] == [("A", "one", 4), ("B", "two", 8)]


def test_header_text() -> None:
    (cue,) = parse("WEBVTT - my scene\n\n00:01.000 --> 00:02.000\n<v A>x\n")
    assert (cue.text, cue.line) == ("x", 3)


def test_header_metadata_lines() -> None:
    (cue,) = parse("WEBVTT\nKind: captions\nLanguage: en\n\n00:01.000 --> 00:02.000\n<v A>x\n")
    assert cue.line == 5


def test_note_style_and_region_blocks_are_skipped() -> None:
    cues = parse(
        "WEBVTT\n"
        "\n"
        "STYLE\n"
        "::cue { color: red }\n"
        "\n"
        "REGION\n"
        "id:left width:40%\n"
        "\n"
        "NOTE this is a comment\n"
        "00:99.000 --> garbage that must not be parsed\n"
        "\n"
        "NOTE\n"
        "multi-line\n"
        "comment\n"
        "\n"
        "00:01.000 --> 00:02.000\n"
        "<v A>kept\n"
        "\n"
        "NOTE trailing\n"
    )
    assert [(c.text, c.line) for c in cues] == [("kept", 16)]


@pytest.mark.parametrize(
    ("payload", "speaker", "text"),
    [
        ("<v Maya><b>Bold</b> and <i>italic</i>", "Maya", "Bold and italic"),
        ("<v Maya><c.loud.red>classed</c> text", "Maya", "classed text"),
        ("<v.first.loud Maya>voice with classes</v>", "Maya", "voice with classes"),
        (
            "<v Maya>Tom &amp; Jerry &lt;3 &quot;hi&quot; caf&eacute; &#233;",
            "Maya",
            'Tom & Jerry <3 "hi" café é',
        ),
        ("<v Maya>&lt;b&gt; stays literal", "Maya", "<b> stays literal"),
        ("<v Maya>one<00:00:01.500>two <u>three</u>", "Maya", "onetwo three"),
        ("<v  Maya  >padded name", "Maya", "padded name"),
        ("<v Maya>first line\nsecond   line", "Maya", "first line second line"),
        ("<v Maya>Ça va? Ja, natürlich! 你好", "Maya", "Ça va? Ja, natürlich! 你好"),
    ],
)
def test_tags_stripped_and_entities_decoded(payload: str, speaker: str, text: str) -> None:
    (cue,) = parse(f"WEBVTT\n\n00:01.000 --> 00:02.000\n{payload}\n")
    assert (cue.speaker, cue.text) == (speaker, text)


def test_crlf_line_endings() -> None:
    cues = parse(
        "WEBVTT\r\n\r\n00:01.000 --> 00:02.000\r\n<v A>x\r\n\r\n"
        "00:03.000 --> 00:04.000\r\n<v B>y\r\n"
    )
    assert [(c.speaker, c.line) for c in cues] == [("A", 3), ("B", 6)]


def test_bom_is_ignored_in_text_and_file(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>x\n"
    assert parse("\ufeff" + text) == parse(text)
    path = tmp_path / "bom.vtt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_webvtt(path) == parse(text)


def test_empty_transcript_has_no_cues() -> None:
    assert parse("WEBVTT\n") == []
    assert parse("WEBVTT\n\nNOTE nothing yet\n") == []


def test_cues_are_yielded_lazily() -> None:
    cues = parse_webvtt("WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>x\n\n00:03.000 --> nope\n<v A>y\n")
    assert next(cues).text == "x"
    with pytest.raises(TranscriptError, match=r"^<transcript>:6: malformed cue timing"):
        next(cues)


# --- errors ---------------------------------------------------------------------------------


ERRORS = {
    "empty document": ("", r"^t\.vtt:1: expected the header 'WEBVTT'$"),
    "missing header": ("00:01.000 --> 00:02.000\n<v A>x\n", r"^t\.vtt:1: expected the header"),
    "lower-case header": ("webvtt\n\n00:01.000 --> 00:02.000\n<v A>x\n", r"^t\.vtt:1: "),
    "malformed timing": (
        "WEBVTT\n\n00:01.000 --> 00:02\n<v A>x\n",
        r"^t\.vtt:3: malformed cue timing '00:01\.000 --> 00:02'; "
        r"expected 'HH:MM:SS\.mmm --> HH:MM:SS\.mmm'$",
    ),
    "comma decimal": ("WEBVTT\n\n00:01,000 --> 00:02,000\n<v A>x\n", r"^t\.vtt:3: malformed"),
    "minutes over 59": ("WEBVTT\n\n00:61:00.000 --> 00:62:00.000\n<v A>x\n", r"^t\.vtt:3: mal"),
    "three decimals and more": (
        "WEBVTT\n\n00:01.0000 --> 00:02.000\n<v A>x\n",
        r"^t\.vtt:3: mal",
    ),
    "timing after an id": (
        "WEBVTT\n\nturn-0\n00:01.000 --> 00:02:000\n<v A>x\n",
        r"^t\.vtt:4: malformed cue timing",
    ),
    "no timing line": (
        "WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>x\n\nhello\n<v A>y\n",
        r"^t\.vtt:6: expected a cue timing line 'HH:MM:SS\.mmm --> HH:MM:SS\.mmm', got 'hello'$",
    ),
    "timing too far down the block": (
        "WEBVTT\n\nid\nmore\n00:01.000 --> 00:02.000\n<v A>x\n",
        r"^t\.vtt:3: expected a cue timing line .*got 'id'$",
    ),
    "end equals start": (
        "WEBVTT\n\n00:02.000 --> 00:02.000\n<v A>x\n",
        r"^t\.vtt:3: cue ends at 2\.000s, not after its start 2\.000s$",
    ),
    "end before start": (
        "WEBVTT\n\n\n\n01:00:02.500 --> 01:00:01.000\n<v A>x\n",
        r"^t\.vtt:5: cue ends at 3601\.000s, not after its start 3602\.500s$",
    ),
    "cue without a voice": (
        "WEBVTT\n\n00:01.000 --> 00:02.000\nno speaker here\n",
        r"^t\.vtt:4: cue has no speaker; expected '<v Name>text'$",
    ),
    "cue without text": (
        "WEBVTT\n\nid\n00:01.000 --> 00:02.000\n",
        r"^t\.vtt:5: cue has no speaker",
    ),
    "second cue without a voice": (
        "WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>x\n\n00:03.000 --> 00:04.000\n<b>y</b>\n",
        r"^t\.vtt:7: cue has no speaker",
    ),
}


@pytest.mark.parametrize(("text", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message):
        parse(text)


def test_transcript_errors_are_value_errors() -> None:
    assert issubclass(TranscriptError, AnnotateError)
    assert issubclass(TranscriptError, ValueError)


def test_read_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "scene.vtt"
    path.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nno voice\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=rf"^{re.escape(str(path))}:4: cue has no speaker"):
        read_webvtt(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.vtt"
    with pytest.raises(TranscriptError, match=rf"^{re.escape(str(path))}: cannot read transcript"):
        read_webvtt(path)


@pytest.mark.parametrize("line", [1, 3, 4, 5])
def test_invalid_utf8_names_the_line(tmp_path: Path, line: int) -> None:
    lines = [b"WEBVTT", b"", b"00:01.000 --> 00:02.000", b"<v A>cafe", b"<v B>tea"]
    lines[line - 1] += b" caf\xe9 \xff"  # Latin-1, not UTF-8
    path = tmp_path / "latin1.vtt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(
        TranscriptError, match=rf"^{re.escape(str(path))}:{line}: not valid UTF-8 text$"
    ):
        read_webvtt(path)


def test_invalid_utf8_after_a_bom_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.vtt"
    path.write_bytes(b"\xef\xbb\xbfWEBVTT\n\n00:01.000 --> 00:02.000\n\xffbad\n")
    with pytest.raises(TranscriptError, match=r":4: not valid UTF-8 text$"):
        read_webvtt(path)


def test_line_separator_in_text_does_not_shift_line_numbers() -> None:
    text = (
        "WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>one\u2028two\n\n00:03.000 --> 00:02.000\n<v A>x\n"
    )
    with pytest.raises(TranscriptError, match=r"^t\.vtt:6: cue ends"):
        parse(text)


def test_cue_id_starting_with_note_is_a_cue() -> None:
    cues = parse("WEBVTT\n\nNOTEworthy\n00:01.000 --> 00:02.000\n<v A>x\n")
    assert [c.text for c in cues] == ["x"]
