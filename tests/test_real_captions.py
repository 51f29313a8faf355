"""Real caption and diarisation files imported as a new user would (no ``session.yaml``).

The files are in ``tests/data/real/captions/`` (see ``PROVENANCE.md`` there). Every figure
below was read off the file by hand, following the turn rules of the importer: one turn per
cue, split by voice or dialogue dash; an empty cue is no turn; a cue without a prefix in a
mostly prefixed file continues the previous speaker; a file without speakers gives one
``unknown`` speaker; one turn per RTTM line of the recording's file id. Counts on the longer
files were checked with ``grep -c -- '-->'``, ``awk`` over the RTTM columns and a few lines of
plain Python that split cues on timing lines and strip tags (none of it imports the
project). Nothing here comes from the reader under test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from schemas.errors import AnnotateError
from tests.realkit import import_real

UNKNOWN = "unknown"
NO_SPEAKER = (r"unknown|no speaker",)
"""A warning that the file names no speaker, so its turns went to ``unknown``."""


@dataclass(frozen=True)
class Case:
    """What a careful person reads off one real file."""

    file: str
    speakers: dict[str, int]
    turns: int
    first_start: float
    last_end: float
    seconds: float
    """Length of the silent recording: the last end plus a few seconds."""
    warns: tuple[tuple[str, ...], ...] = ()
    """Each entry: patterns that must all occur in one warning (case-insensitive)."""
    kwargs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert sum(self.speakers.values()) == self.turns, self.file


CASES = [
    # Zoom: 26 numbered cues, 25 with `Name: text`; cue 10 (`about.`) has no prefix and
    # continues cue 9 (Scott Thompson): 12 + 1 for Scott Thompson. Cue 18 has two spaces
    # after the colon; `mary` is written in lower case by Zoom and kept as written.
    Case(
        "zoom_henshaw_transcript.vtt",
        {"Scott Thompson": 13, "Andrew Henshaw": 8, "Scott Smith": 4, "mary": 1},
        turns=26,
        first_start=1.520,
        last_end=226.609,
        seconds=230,
        warns=((r"continu", r"\b1\b"),),
    ),
    # Teams: two `<v Name>` cues with the short timestamps Teams wrote (`0:0:0.0`).
    Case(
        "webvttpy_teams_timeframe.vtt",
        {"Yuri Bakulin": 1, "Adrian Petrescu": 1},
        turns=2,
        first_start=0.0,
        last_end=1.130,
        seconds=5,
    ),
    # YouTube via youtube-dl: header lines up to the first blank line (Kind, Language, a
    # Style block and `##`) are no cues; 4 timing lines, the third directly after the
    # second cue's text (a new cue). No speakers.
    Case(
        "webvttpy_youtube_dl.vtt",
        {UNKNOWN: 4},
        turns=4,
        first_start=286.070,
        last_end=305.400,
        seconds=310,
        warns=(NO_SPEAKER,),
    ),
    # YouTube via yt-dlp: 4 cues, each with text once the karaoke tags and the
    # one-space lines are removed (the 10 ms cues repeat a line, but are cues the tool
    # wrote). No speakers.
    Case(
        "youtube_simonw_demo.vtt",
        {UNKNOWN: 4},
        turns=4,
        first_start=0.0,
        last_end=4.560,
        seconds=8,
        warns=(NO_SPEAKER,),
    ),
    # Netflix SDH: 40 cues. Cues 18, 34 and 36 hold two dialogue-dash lines each (one
    # turn per dash: +3). Cue 1 starts `[Alba] ` and cue 39 `[Pedro] `, the bracketed
    # name form of a speaker prefix; the other cues carry no name and, with 2 prefixed
    # cues out of 40, do not continue anyone: they are `unknown`, as are the dashes.
    # `[ríen emocionadas]` (cue 32) is a bracket with no text after it: a sound
    # description, not a name, and still a cue with text.
    Case(
        "netflix_chicas_del_cable_trimmed.vtt",
        {"Alba": 1, "Pedro": 1, UNKNOWN: 41},
        turns=43,
        first_start=7.960,
        last_end=135.880,
        seconds=140,
        warns=((r"41 of 43 turns name no speaker", "unknown"),),
    ),
    # Seattle Channel: 36 cues, `&gt;&gt;` marks a change of speaker but names nobody
    # (`>> HERE.`); `9:31 A.M.` is no `Name:` prefix. No speakers.
    Case(
        "cdp_seattle_brief_080221.vtt",
        {UNKNOWN: 36},
        turns=36,
        first_start=5.872,
        last_end=72.972,
        seconds=76,
        warns=(NO_SPEAKER,),
    ),
    # Boston: 8 timing lines, the first (`00:00:00.000 --> 00:00:00.000`) with no text.
    Case(
        "cdp_boston_captions.vtt",
        {UNKNOWN: 7},
        turns=7,
        first_start=40.337,
        last_end=62.590,
        seconds=66,
        warns=(NO_SPEAKER, (r"empty", r"\b1\b")),
    ),
    # Oakland: 36 timing lines, the first empty; `>>` inside cues names nobody, so one
    # turn per cue; a line holding only `-` is text, not a dialogue dash.
    Case(
        "cdp_oakland_captions_trimmed.vtt",
        {UNKNOWN: 35},
        turns=35,
        first_start=148.168,
        last_end=258.643,
        seconds=262,
        warns=(NO_SPEAKER, (r"empty", r"\b1\b")),
    ),
    # Deepgram: 5 numbered cues, no speakers; the same recording as VTT and as SRT.
    Case(
        "deepgram_sample.vtt",
        {UNKNOWN: 5},
        turns=5,
        first_start=0.999,
        last_end=19.050,
        seconds=22,
        warns=(NO_SPEAKER,),
    ),
    Case(
        "deepgram_sample.srt",
        {UNKNOWN: 5},
        turns=5,
        first_start=0.999,
        last_end=19.050,
        seconds=22,
        warns=(NO_SPEAKER,),
    ),
    # OpenAI Whisper VTT, `MM:SS.mmm` times: 44 cues (grep -c), last `03:54.100 -->
    # 04:18.100`.
    Case(
        "whisper_batuhan_transcript.vtt",
        {UNKNOWN: 44},
        turns=44,
        first_start=0.0,
        last_end=258.100,
        seconds=262,
        warns=(NO_SPEAKER,),
    ),
    Case(
        "whisper_sample_fr_01.wav.vtt",
        {UNKNOWN: 23},
        turns=23,
        first_start=0.0,
        last_end=57.760,
        seconds=61,
        warns=(NO_SPEAKER,),
    ),
    # WhisperX without diarisation: 35 SRT cues; 2 JSON segments without `speaker`.
    Case(
        "whisperx_sample01.wav.srt",
        {UNKNOWN: 35},
        turns=35,
        first_start=1.185,
        last_end=59.960,
        seconds=63,
        warns=(NO_SPEAKER,),
    ),
    Case(
        "whisperx_reference_transcription.json",
        {UNKNOWN: 2},
        turns=2,
        first_start=0.151,
        last_end=8.318,
        seconds=12,
        warns=(NO_SPEAKER,),
    ),
    # WhisperX with diarisation: 2 segments, every word SPEAKER_00 except the unaligned
    # `1990.` (speaker null), which stays with the run before it: no split.
    Case(
        "whisperx_meet_sample_en_1_expected.json",
        {"SPEAKER_00": 2},
        turns=2,
        first_start=1.077,
        last_end=10.028,
        seconds=13,
    ),
    # WhisperLive: 123 cues as the client wrote them (12 distinct segments repeated, times
    # jumping back); earliest start 0.0, latest end `00:00:53,440`. No speakers.
    Case(
        "whisperlive_transcript.srt",
        {UNKNOWN: 123},
        turns=123,
        first_start=0.0,
        last_end=53.440,
        seconds=57,
        warns=(NO_SPEAKER,),
    ),
    # RTTM with one file id (`mixture`), not the recording's name: all 17 lines (awk).
    # The latest end is line 16: 44.46 + 15.54 = 60.00.
    Case(
        "pyannote_mixture.rttm",
        {"FEE016": 7, "FEE013": 3, "MEO015": 5, "MEE014": 2},
        turns=17,
        first_start=0.0,
        last_end=60.0,
        seconds=63,
    ),
    # VBx: 50 lines (awk), numeric labels; last line 304.42 + 2.17 = 306.59.
    Case(
        "vbx_ES2005a.rttm",
        {"1": 27, "7": 7, "9": 5, "14": 2, "16": 9},
        turns=50,
        first_start=0.0,
        last_end=306.590,
        seconds=310,
    ),
    # RTTM with two file ids: the lines of the recording's file id only. conv1 has three
    # lines (one on channel 2), conv2 one.
    Case(
        "pyannotedb_multichannel.rttm",
        {"speaker_A": 2, "speaker_B": 1},
        turns=3,
        first_start=0.0,
        last_end=4.0,
        seconds=7,
        kwargs={"media_name": "conv1.wav"},
    ),
    Case(
        "pyannotedb_multichannel.rttm",
        {"speaker_C": 1},
        turns=1,
        first_start=0.0,
        last_end=1.0,
        seconds=4,
        kwargs={"media_name": "conv2.wav"},
    ),
]


def _id(case: Case) -> str:
    media = case.kwargs.get("media_name")
    return f"{case.file}[{media}]" if media else case.file


@pytest.mark.parametrize("case", [pytest.param(c, id=_id(c)) for c in CASES])
def test_real_caption_file(tmp_path, case: Case) -> None:
    got = import_real(tmp_path, [f"captions/{case.file}"], seconds=case.seconds, **case.kwargs)
    assert got.speakers == case.speakers
    assert got.turns == case.turns
    assert got.first_start == pytest.approx(case.first_start, abs=0.002)
    assert got.last_end == pytest.approx(case.last_end, abs=0.002)
    for patterns in case.warns:
        assert any(all(re.search(p, w, re.IGNORECASE) for p in patterns) for w in got.warnings), (
            f"no warning matching {patterns} in {got.warnings}"
        )


def test_rttm_without_the_recordings_file_id_lists_the_ids(tmp_path) -> None:
    """A recording named after neither file id of a two-id RTTM is an error naming both."""
    with pytest.raises(AnnotateError) as caught:
        import_real(
            tmp_path,
            ["captions/pyannotedb_multichannel.rttm"],
            seconds=7,
            media_name="recording.wav",
        )
    message = str(caught.value)
    assert "conv1" in message
    assert "conv2" in message
