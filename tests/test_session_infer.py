"""Session folders without a (complete) session.yaml: what is inferred, what is ambiguous,
transcripts without speakers, and every problem of a session reported in one run.

Expected values are written here from the files the tests write (names, counts, times),
never taken from the importer.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

import importers.session_meta
from importers.session import SessionProblems, find_sessions, load_session, read_meta
from importers.session_infer import candidates, unique_ids, valid_id
from importers.vad import UNKNOWN_SPEAKER
from schemas.errors import SessionError
from tests.builders import write_meta, write_wav
from tests.voice_builders import RATE, glide, harmonic_voice

# (speaker as written, start, end, text): Maya 3 turns, Théo Ng 2, SPEAKER_00 1
CUES = [
    ("Maya", 0.5, 1.5, "Hi."),
    ("Théo Ng", 1.8, 2.6, "Hello there."),
    ("Maya", 2.9, 3.8, "Coffee?"),
    ("SPEAKER_00", 4.0, 4.5, "Mm."),
    ("Théo Ng", 4.8, 5.9, "Yes, please."),
    ("Maya", 6.2, 7.0, "Two then."),
]


def vtt_time(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


def write_vtt(path: Path, cues: list[tuple[str | None, float, float, str]]) -> Path:
    """A WebVTT file: ``<v Name>`` voices, or bare text for a cue whose speaker is None."""
    blocks = ["WEBVTT", ""]
    for speaker, start, end, text in cues:
        voice = f"<v {speaker}>" if speaker is not None else ""
        blocks += [f"{vtt_time(start)} --> {vtt_time(end)}", f"{voice}{text}", ""]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def bare_folder(tmp_path: Path, name: str = "Take 2 — Café Scène") -> Path:
    """A folder with a recording and a transcript, no session.yaml."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    write_wav(folder / "recording.wav", 8.0)
    write_vtt(folder / "scene.vtt", CUES)
    return folder


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cafe-breakup", "cafe-breakup"),
        ("Take 2 — Café Scène", "take-2-cafe-scene"),
        ("SPEAKER_00", "speaker_00"),
        ("  Ørsted's Zoom (final).mp4", "rsted-s-zoom-final-mp4"),  # Ø has no decomposition
        ("__draft__", "draft"),
        ("-x-", "x"),
        ("Straße", "strae"),
        ("日本語", ""),
        ("...", ""),
    ],
)
def test_valid_id(text: str, expected: str) -> None:
    assert valid_id(text) == expected


def test_unique_ids_are_valid_and_distinct() -> None:
    assert unique_ids(["Maya", "MAYA.", "Theo", "山田", "maya"]) == [
        "maya",
        "maya-2",
        "theo",
        "speaker-4",
        "maya-3",
    ]


# --- inference -----------------------------------------------------------------------------


def test_a_folder_without_session_yaml_is_imported_with_everything_inferred(
    tmp_path: Path,
) -> None:
    folder = bare_folder(tmp_path)
    inferred: dict[str, object] = {}
    session = load_session(folder, inferred=inferred)
    performers = [
        {"id": "maya", "name": "Maya"},
        {"id": "theo-ng", "name": "Théo Ng"},
        {"id": "speaker_00", "name": "SPEAKER_00"},
    ]
    assert inferred == {
        "id": "take-2-cafe-scene",
        "title": "Take 2 — Café Scène",
        "media": "recording.wav",
        "transcript": "scene.vtt",
        "performers": performers,
    }
    assert session.id == "take-2-cafe-scene"
    assert session.title == "Take 2 — Café Scène"
    assert session.media == str((folder / "recording.wav").resolve())
    assert [(p.id, p.name) for p in session.performers] == [
        (p["id"], p["name"]) for p in performers
    ]
    ids = {"Maya": "maya", "Théo Ng": "theo-ng", "SPEAKER_00": "speaker_00"}
    assert [(t.speaker, t.start, t.end, t.text) for t in session.turns] == [
        (ids[s], a, b, text) for s, a, b, text in CUES
    ]


def test_hidden_files_session_yaml_and_other_files_are_not_candidates(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_wav(folder / ".recording.wav", 1.0)  # hidden (e.g. a macOS resource fork)
    (folder / "clip.wav.partial").write_bytes((folder / "recording.wav").read_bytes()[:100])
    (folder / "notes.txt").write_text("not a transcript", encoding="utf-8")
    (folder / "~$scene.vtt").write_text("lock file", encoding="utf-8")
    sub = folder / "raw"
    sub.mkdir()
    write_wav(sub / "backup.wav", 1.0)  # sub-folders are not looked into
    assert candidates(folder) == (["recording.wav"], ["scene.vtt"])
    assert len(load_session(folder).turns) == len(CUES)


def test_a_folder_name_with_no_letter_or_digit_needs_an_id(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "日本語")
    with pytest.raises(SessionError) as caught:
        load_session(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: no session id can be made from the folder's name")
    assert "'日本語'" in message and "'id: <name>' in session.yaml" in message
    write_meta(folder, {"id": "nihongo"})
    assert load_session(folder).id == "nihongo"


def test_two_recordings_and_two_transcripts_are_both_reported_with_their_keys(
    tmp_path: Path,
) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_wav(folder / "backup.flac", 8.0)
    write_vtt(folder / "other.vtt", CUES[:2])
    with pytest.raises(SessionProblems) as caught:
        load_session(folder)
    assert caught.value.problems == (
        f"{folder}: 2 recordings ('backup.flac', 'recording.wav'); expected one, or "
        "'media: <file>' in session.yaml naming the one to use",
        f"{folder}: 2 transcript files ('other.vtt', 'scene.vtt'); expected one, or "
        "'transcript: <file>' in session.yaml naming the one to use",
    )
    assert str(caught.value).startswith(f"{folder}: 2 problems:\n")


def test_an_explicit_value_always_wins(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_wav(folder / "backup.flac", 9.0)
    write_vtt(folder / "other.vtt", [("Ana", 0.5, 1.0, "Only me.")])
    write_meta(
        folder,
        {
            "id": "chosen",
            "title": "Chosen title",
            "media": "backup.flac",
            "transcript": "other.vtt",
            "performers": [{"id": "a1", "name": "Ana"}],
        },
    )
    inferred: dict[str, object] = {}
    session = load_session(folder, inferred=inferred)
    assert inferred == {}
    assert (session.id, session.title, session.duration) == ("chosen", "Chosen title", 9.0)
    assert [(t.speaker, t.text) for t in session.turns] == [("a1", "Only me.")]


def test_a_partial_session_yaml_gets_the_rest_inferred(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "Scene 3")
    (folder / "session.yaml").write_text(
        "title: The third scene\nprompt: A cafe, a secret.\n", encoding="utf-8"
    )
    inferred: dict[str, object] = {}
    session = load_session(folder, inferred=inferred)
    assert set(inferred) == {"id", "media", "transcript", "performers"}
    assert (session.id, session.title, session.prompt) == (
        "scene-3",
        "The third scene",
        "A cafe, a secret.",
    )
    assert len(session.turns) == len(CUES)


def test_explicit_performers_are_matched_and_the_media_is_still_inferred(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_meta(
        folder,
        {
            "performers": [
                {"id": "p1", "name": "Maya"},
                {"id": "p2", "name": "Theo", "aliases": ["Théo Ng"]},
                {"id": "p3", "name": "Extra", "aliases": ["speaker_00"]},
            ]
        },
    )
    inferred: dict[str, object] = {}
    session = load_session(folder, inferred=inferred)
    assert "performers" not in inferred and inferred["media"] == "recording.wav"
    ids = {"Maya": "p1", "Théo Ng": "p2", "SPEAKER_00": "p3"}
    assert [t.speaker for t in session.turns] == [ids[c[0]] for c in CUES]


def test_transcript_left_empty_means_none_even_with_a_file_there(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    sf.write(folder / "recording.wav", np.zeros(RATE * 2, dtype=np.float32), RATE)
    (folder / "session.yaml").write_text("transcript:\n", encoding="utf-8")
    # no transcript read, so turns would come from voice activity: there is none in silence
    with pytest.raises(SessionError, match=r"no transcript and no voice activity found"):
        load_session(folder)


def test_unknown_keys_are_warned_about_with_a_suggestion(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    (folder / "session.yaml").write_text("titel: Typo\n", encoding="utf-8")
    warnings: list[str] = []
    load_session(folder, warnings=warnings)
    assert warnings == [
        "session.yaml: unknown key 'titel' ignored (did you mean 'title'?); expected one of "
        "id, title, prompt, media, video, transcript, transcript_text, transcript_format, "
        "tiers, performers, synthetic, intended, licence, consent"
    ]


def test_tiers_and_the_recording_name_reach_the_transcript_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = bare_folder(tmp_path, "scene")
    (folder / "session.yaml").write_text("tiers: [Maya, Théo Ng]\n", encoding="utf-8")
    calls: list[dict[str, object]] = []
    real = importers.session_meta.read_transcript

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importers.session_meta, "read_transcript", spy)
    load_session(folder)
    assert calls and all(c["tiers"] == ("Maya", "Théo Ng") for c in calls)
    assert all(c["media_name"] == "recording.wav" for c in calls)


def test_tiers_must_be_names(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    (folder / "session.yaml").write_text("tiers: {a: 1}\n", encoding="utf-8")
    with pytest.raises(SessionError, match=r"session\.yaml: tiers \{'a': 1\}; expected a list"):
        load_session(folder)


# --- transcripts without speakers ----------------------------------------------------------

# (channel, start, end) of each voice in the stereo recording, and its pitch
VOICES = [(0, 0.5, 1.7, 120.0), (1, 2.2, 3.1, 210.0), (0, 3.6, 4.4, 125.0), (1, 5.0, 6.3, 220.0)]


def write_stereo(path: Path, seconds: float = 7.5) -> Path:
    """One voice per channel (each leaks into the other 26 dB down), over quiet noise."""
    rng = np.random.default_rng(5)
    audio = 0.0005 * rng.standard_normal((2, round(seconds * RATE))).astype(np.float32)
    for channel, start, end, f0 in VOICES:
        voice = harmonic_voice(glide(end - start, f0, f0 * 1.1), rng=rng)
        a = round(start * RATE)
        audio[channel, a : a + len(voice)] += voice
        audio[1 - channel, a : a + len(voice)] += 0.05 * voice
    sf.write(path, audio.T, RATE, subtype="PCM_16")
    return path


def unspoken_folder(tmp_path: Path, stereo: bool) -> Path:
    folder = tmp_path / "unspoken"
    folder.mkdir()
    if stereo:
        write_stereo(folder / "call.wav")
    else:
        write_wav(folder / "call.wav", 7.5)
    write_vtt(folder / "subs.vtt", [(None, a, b, f"line {i}") for i, (_, a, b, _) in
                                    enumerate(VOICES)])  # fmt: skip
    return folder


def test_no_speaker_on_a_mono_recording_gives_one_unknown_speaker(tmp_path: Path) -> None:
    folder = unspoken_folder(tmp_path, stereo=False)
    warnings: list[str] = []
    inferred: dict[str, object] = {}
    session = load_session(folder, warnings=warnings, inferred=inferred)
    assert [t.speaker for t in session.turns] == [UNKNOWN_SPEAKER] * 4
    assert [t.text for t in session.turns] == ["line 0", "line 1", "line 2", "line 3"]
    assert [p.id for p in session.performers] == [UNKNOWN_SPEAKER]
    assert inferred["performers"] == [{"id": "unknown", "name": "Unknown speaker"}]
    assert any(
        "no speaker in the transcript; all 4 turns are given the speaker 'unknown' "
        "(the recording is mono)" in w
        for w in warnings
    )


def test_no_speaker_on_one_voice_per_channel_gives_the_channels(tmp_path: Path) -> None:
    folder = unspoken_folder(tmp_path, stereo=True)
    warnings: list[str] = []
    inferred: dict[str, object] = {}
    session = load_session(folder, warnings=warnings, inferred=inferred)
    assert [t.speaker for t in session.turns] == [f"channel-{c + 1}" for c, *_ in VOICES]
    assert inferred["performers"] == [
        {"id": "channel-1", "name": "Channel 1", "channel": 0},
        {"id": "channel-2", "name": "Channel 2", "channel": 1},
    ]
    assert any("given to the performer of the channel loudest over it" in w for w in warnings)


def test_no_speaker_with_performers_given_uses_their_order_or_their_channels(
    tmp_path: Path,
) -> None:
    folder = unspoken_folder(tmp_path, stereo=True)
    write_meta(folder, {"performers": [{"id": "ana", "name": "Ana"}, {"id": "ben"}]})
    by_order = {0: "ana", 1: "ben"}
    assert [t.speaker for t in load_session(folder).turns] == [by_order[c] for c, *_ in VOICES]
    write_meta(
        folder,
        {"performers": [{"id": "ana", "channel": 1}, {"id": "ben", "channel": 0}]},
    )
    swapped = {0: "ben", 1: "ana"}
    assert [t.speaker for t in load_session(folder).turns] == [swapped[c] for c, *_ in VOICES]


def test_segments_without_a_speaker_beside_named_ones_are_unknown(tmp_path: Path) -> None:
    """A file naming speakers on some segments only: the others get ``unknown``, and one
    warning counts them and names their lines."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_wav(folder / "call.wav", 8.0)
    cues = [("Maya", 0.5, 1.0, "a"), (None, 1.5, 2.0, "b"), ("Theo", 2.5, 3.0, "c"),
            (None, 3.5, 4.0, "d")]  # fmt: skip
    write_vtt(folder / "subs.vtt", cues)
    warnings: list[str] = []
    session = load_session(folder, warnings=warnings)
    assert [t.speaker for t in session.turns] == ["maya", UNKNOWN_SPEAKER, "theo", UNKNOWN_SPEAKER]
    assert {p.id for p in session.performers} == {"maya", "theo", UNKNOWN_SPEAKER}
    (note,) = [w for w in warnings if "name no speaker" in w]
    # the cues' text lines: 3 lines per cue after the 2-line header
    lines = re.findall(r"\b(\d+)\b", note.split("(", 1)[1])
    assert note.startswith("subs.vtt: 2 of 4 turns name no speaker")
    assert sorted(int(n) for n in lines) in ([6, 12], [7, 13])  # timing or text line


# --- all problems at once ------------------------------------------------------------------


def test_every_problem_of_a_session_is_reported_in_one_run(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_meta(
        folder,
        {
            "id": "Bad Id",
            "media": "missing.wav",
            "performers": [{"id": "p1", "name": "Maya"}, {"id": "p2", "name": "Theo"}],
            "synthetic": "yes",
        },
    )
    with pytest.raises(SessionProblems) as caught:
        load_session(folder)
    problems = caught.value.problems
    source = folder / "session.yaml"
    transcript = (folder / "scene.vtt").resolve()
    assert problems[0] == f"{source}: id 'Bad Id' must be lower-case letters, digits, '-' or '_'"
    assert problems[1].startswith(f"{(folder / 'missing.wav').resolve()}: media file not found")
    # Théo Ng: 2 turns, first at the cue timing on line 6 (or its text line 7);
    # SPEAKER_00: 1 turn; mapped to Theo (no turn names him) and to a new performer
    assert re.fullmatch(
        rf"{re.escape(str(transcript))}:[67]: speaker 'Théo Ng' is not a performer of "
        r"session\.yaml \(2 turns\); expected one of \['Maya', 'Theo'\]; to map it, give a "
        r"performer its name as an alias, e\.g\. performers: - "
        r"\{id: p2, name: Theo, aliases: \[Théo Ng\]\}",
        problems[2],
    )
    assert re.fullmatch(
        rf"{re.escape(str(transcript))}:1[23]: speaker 'SPEAKER_00' is not a performer of "
        r"session\.yaml \(1 turn\); expected one of \['Maya', 'Theo'\]; to map it, add it as a "
        r"performer, e\.g\. performers: - \{id: speaker_00, name: SPEAKER_00\}",
        problems[3],
    )
    assert problems[4] == f"{source}: synthetic must be true or false, got 'yes'"
    assert len(problems) == 5


def test_the_suggested_aliases_line_does_map_the_speakers(tmp_path: Path) -> None:
    folder = bare_folder(tmp_path, "scene")
    write_meta(folder, {"performers": [{"id": "p1", "name": "Maya"}, {"id": "p2", "name": "T"}]})
    with pytest.raises(SessionProblems) as caught:
        load_session(folder)
    lines = [p.split("e.g. performers: ")[1] for p in caught.value.problems]
    suggested = yaml.safe_load("\n".join(lines))  # "- {...}" lines: a YAML list
    by_id = {p["id"]: p for p in [{"id": "p1", "name": "Maya"}, *suggested]}
    write_meta(folder, {"performers": list(by_id.values())})
    session = load_session(folder)
    assert len(session.turns) == len(CUES)


# --- finding sessions ----------------------------------------------------------------------


def test_find_sessions_finds_folders_without_yaml_and_lists_the_rest(tmp_path: Path) -> None:
    bare_folder(tmp_path, "b-bare")
    with_yaml = tmp_path / "a-yaml"
    with_yaml.mkdir()
    (with_yaml / "session.yaml").write_text("id: a\n", encoding="utf-8")
    (tmp_path / "notes").mkdir()
    (tmp_path / "transcripts-only").mkdir()
    write_vtt(tmp_path / "transcripts-only" / "x.vtt", CUES)
    (tmp_path / ".git").mkdir()
    skipped: list[Path] = []
    assert find_sessions(tmp_path, skipped) == [with_yaml, tmp_path / "b-bare"]
    assert skipped == [tmp_path / "notes", tmp_path / "transcripts-only"]
    assert find_sessions(tmp_path / "b-bare") == [tmp_path / "b-bare"]


def test_a_folder_with_neither_is_not_a_session(tmp_path: Path) -> None:
    write_vtt(tmp_path / "x.vtt", CUES)
    with pytest.raises(SessionError, match=r"session\.yaml: not found; a session folder needs"):
        read_meta(tmp_path)


def test_doctests() -> None:
    import doctest

    import importers.session_infer
    import importers.session_speakers

    for module in (importers.session_infer, importers.session_speakers):
        failures, tried = doctest.testmod(module)
        assert tried > 0 and failures == 0
