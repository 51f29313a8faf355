"""Tests for importers.session and importers.clips: session folders, clips, clip audio, tasks."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from importers import import_sessions
from importers.clips import MARGIN, audio_window, build_task, cut_clip_audio, make_clips
from importers.session import find_sessions, load_session, media_duration
from schemas.codec import PREDICTION_VERSION, turn_regions
from schemas.errors import MediaError, SessionError, TranscriptError
from schemas.records import Clip, Performer, Session
from schemas.taxonomy import load_taxonomy
from tests import builders
from tests.builders import RATE, edit_meta, make_session, turn_spans, write_session, write_wav

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sessions" / "cafe-breakup"


def esc(path: Path) -> str:
    return re.escape(str(path))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_session(tmp_path / "scene-1", n_turns=6, rng=np.random.default_rng(1))


def test_builders_doctest() -> None:
    result = doctest.testmod(builders)
    assert result.attempted > 0
    assert result.failed == 0


# --- load_session ---------------------------------------------------------------------------


def test_load_built_session(folder: Path) -> None:
    session = load_session(folder)
    spans = turn_spans(6, np.random.default_rng(1))
    assert session.id == "scene-1"
    assert session.title == "Test scene scene-1"
    assert session.prompt == "Two friends meet at a cafe."
    assert session.media == str((folder / "audio.wav").resolve())
    assert session.synthetic is True
    assert session.performers == (Performer("p01", "Maya"), Performer("p02", "Theo"))
    assert [t.id for t in session.turns] == [f"scene-1-t{i:05d}" for i in range(6)]
    assert [t.index for t in session.turns] == list(range(6))
    assert all(t.session_id == "scene-1" for t in session.turns)
    assert [t.speaker for t in session.turns] == ["p01", "p02"] * 3
    assert [(t.start, t.end) for t in session.turns] == spans
    assert all(t.text.endswith(".") and len(t.text.split()) == 3 for t in session.turns)
    assert session.duration == pytest.approx(spans[-1][1] + 0.5, abs=1 / RATE)


def test_intended_arc_is_read(folder: Path) -> None:
    session = load_session(folder)
    assert len(session.intended) == 6
    for turn, item in zip(session.turns, session.intended, strict=True):
        assert (item.turn, item.performer, item.start, item.end) == (
            turn.index,
            turn.speaker,
            turn.start,
            turn.end,
        )
        assert session.intended_for(turn) == item.emotion
    assert set(i.emotion for i in session.intended) <= set(load_taxonomy().emotion.values)


def test_builder_is_deterministic(tmp_path: Path) -> None:
    a = write_session(tmp_path / "a", rng=np.random.default_rng(5))
    b = write_session(tmp_path / "b", rng=np.random.default_rng(5))
    for name in ("transcript.vtt", "audio.wav"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert load_session(a).turns[3].text == load_session(b).turns[3].text


def test_three_performers(tmp_path: Path) -> None:
    folder = write_session(tmp_path / "trio", n_turns=5, speakers=("Ana", "Bo", "Cy"))
    session = load_session(folder)
    assert [p.id for p in session.performers] == ["p01", "p02", "p03"]
    assert [t.speaker for t in session.turns] == ["p01", "p02", "p03", "p01", "p02"]


def test_voices_may_use_performer_ids(tmp_path: Path) -> None:
    text = (
        "WEBVTT\n\n00:00.500 --> 00:01.500\n<v p02>Hi.\n\n00:02.000 --> 00:03.000\n<v Maya>Hey.\n"
    )
    folder = write_session(tmp_path / "ids", transcript_text=text, media_seconds=4.0)
    assert [t.speaker for t in load_session(folder).turns] == ["p02", "p01"]


def test_defaults_for_optional_keys(folder: Path) -> None:
    edit_meta(folder, title=None, prompt=None, synthetic=None, intended=None)
    session = load_session(folder)
    assert (session.title, session.prompt, session.synthetic) == ("scene-1", "", False)
    assert session.intended == ()


def test_performer_name_defaults_to_id(folder: Path) -> None:
    edit_meta(folder, performers=[{"id": "Maya"}, {"id": "Theo"}])
    session = load_session(folder)
    assert session.performers == (Performer("Maya", "Maya"), Performer("Theo", "Theo"))


def test_cue_may_end_at_the_media_end(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:00.500 --> 00:02.000\n<v Maya>Hi.\n"
    folder = write_session(tmp_path / "edge", transcript_text=text, media_seconds=2.0)
    assert load_session(folder).turns[0].end == 2.0


def test_media_duration_reads_the_header(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 1.25)
    assert media_duration(path) == 1.25


def test_session_round_trips_through_dict(folder: Path) -> None:
    session = load_session(folder)
    assert Session.from_dict(session.to_dict()) == session


# --- load_session errors --------------------------------------------------------------------


def test_missing_session_yaml(tmp_path: Path) -> None:
    with pytest.raises(
        SessionError,
        match=rf"^{esc(tmp_path / 'session.yaml')}: not found; a session folder needs a "
        r"session\.yaml or a recording \(.*\.mp3, .*\.wav.*\)$",
    ):
        load_session(tmp_path)


def test_missing_media(folder: Path) -> None:
    (folder / "audio.wav").unlink()
    expected = r"audio\.wav: media file not found; expected an audio or video file"
    with pytest.raises(MediaError, match=expected):
        load_session(folder)


def test_unreadable_media(folder: Path) -> None:
    (folder / "audio.wav").write_bytes(np.random.default_rng(3).bytes(2048))
    with pytest.raises(
        MediaError, match=r"audio\.wav: cannot read the media header .*; expected an audio or video"
    ):
        load_session(folder)


def test_media_without_samples(folder: Path) -> None:
    sf.write(folder / "audio.wav", np.zeros(0, dtype=np.float32), RATE)
    expected = r"audio\.wav: the WAV header declares 0 audio samples; expected a recording$"
    with pytest.raises(MediaError, match=expected):
        load_session(folder)


def test_media_errors_are_os_errors() -> None:
    assert issubclass(MediaError, OSError)
    assert issubclass(SessionError, ValueError)


def test_transcript_parse_error_names_file_and_line(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:00.500 --> 00:01.500\n<v Maya>Hi.\n\n00:02.000 -> 00:03.000\n<v Theo>x\n"
    folder = write_session(tmp_path / "bad", transcript_text=text, media_seconds=4.0)
    transcript = folder.resolve() / "transcript.vtt"
    with pytest.raises(TranscriptError, match=rf"^{esc(transcript)}:6: expected a cue timing"):
        load_session(folder)


def test_missing_transcript(folder: Path) -> None:
    (folder / "transcript.vtt").unlink()
    with pytest.raises(TranscriptError, match=r"transcript\.vtt: cannot read transcript"):
        load_session(folder)


def test_cue_past_the_media_end_names_the_line(tmp_path: Path) -> None:
    spans = turn_spans(6, np.random.default_rng(2))
    cut = (spans[3][0] + spans[3][1]) / 2  # inside turn 3 (the 4th cue)
    folder = write_session(
        tmp_path / "short", n_turns=6, rng=np.random.default_rng(2), media_seconds=cut
    )
    transcript = folder.resolve() / "transcript.vtt"
    # every cue past the end is listed, each with its line (header, blank; 4 lines per cue)
    lines = [
        rf"{esc(transcript)}:{3 + 4 * i + 1}: ends at {spans[i][1]:.3f}s, past the end of the "
        rf"media \({cut:.3f}s\)"
        for i in range(3, 6)
    ]
    message = rf"^{esc(transcript)}: 3 problems:\n" + r"\n".join(lines) + "$"
    with pytest.raises(TranscriptError, match=message):
        load_session(folder)


def test_speaker_not_a_performer(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:00.500 --> 00:01.500\n<v Maya>Hi.\n\n00:02.000 --> 00:03.000\n<v Zed>Yo.\n"
    folder = write_session(tmp_path / "zed", transcript_text=text, media_seconds=4.0)
    transcript = folder.resolve() / "transcript.vtt"
    message = (
        rf"^{esc(transcript)}:6: speaker 'Zed' is not a performer of session\.yaml "
        r"\(1 turn\); expected one of \['Maya', 'Theo'\]; to map it, give a performer its "
        r"name as an alias, e\.g\. performers: - \{id: p02, name: Theo, aliases: \[Zed\]\}$"
    )
    with pytest.raises(SessionError, match=message):
        load_session(folder)


def test_media_escaping_the_folder(folder: Path) -> None:
    write_wav(folder.parent / "x.wav", 20.0)  # exists, so only the location is wrong
    edit_meta(folder, media="../x.wav")
    with pytest.raises(
        SessionError, match=r"session\.yaml: media '\.\./x\.wav' points outside the session folder"
    ):
        load_session(folder)


def test_absolute_transcript_outside_the_folder(folder: Path) -> None:
    outside = folder.parent / "other.vtt"
    outside.write_text((folder / "transcript.vtt").read_text(encoding="utf-8"), encoding="utf-8")
    edit_meta(folder, transcript=str(outside))
    with pytest.raises(SessionError, match=r"transcript '.*other\.vtt' points outside the session"):
        load_session(folder)


def test_media_in_a_sub_folder_is_fine(folder: Path) -> None:
    (folder / "media").mkdir()
    (folder / "audio.wav").rename(folder / "media" / "audio.wav")
    edit_meta(folder, media="media/audio.wav")
    assert load_session(folder).media.endswith("media/audio.wav")


@pytest.mark.parametrize("bad_id", ["Scene 1", "scene.1", "-scene", "Scene", "scène"])
def test_bad_id(folder: Path, bad_id: str) -> None:
    edit_meta(folder, id=bad_id)
    with pytest.raises(
        SessionError,
        match=rf"session\.yaml: id {re.escape(repr(bad_id))} must be lower-case letters, "
        r"digits, '-' or '_'$",
    ):
        load_session(folder)


def test_numeric_id_is_a_string(folder: Path) -> None:
    edit_meta(folder, id=2024)
    session = load_session(folder)
    assert session.id == "2024"
    assert session.turns[0].id == "2024-t00000"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("id", "scene-1"),  # the folder's name
        ("media", "audio.wav"),  # the one recording
        ("performers", [{"id": "maya", "name": "Maya"}, {"id": "theo", "name": "Theo"}]),
    ],
)
def test_a_key_left_out_is_inferred(folder: Path, key: str, expected: object) -> None:
    edit_meta(folder, **{key: None})
    inferred: dict[str, object] = {}
    session = load_session(folder, inferred=inferred)
    assert inferred[key] == expected
    assert len(session.turns) == 6


def test_performer_without_id(folder: Path) -> None:
    edit_meta(folder, performers=[{"name": "Maya"}])
    with pytest.raises(SessionError, match=r"missing required key 'id'$"):
        load_session(folder)


def test_performers_not_a_list(folder: Path) -> None:
    edit_meta(folder, performers={"p01": "Maya"})
    with pytest.raises(SessionError, match=r"performers must be a list of \{id, name\} mappings$"):
        load_session(folder)


def test_not_valid_yaml(folder: Path) -> None:
    (folder / "session.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(SessionError, match=r"session\.yaml: not valid YAML"):
        load_session(folder)


def test_not_a_mapping(folder: Path) -> None:
    (folder / "session.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(
        SessionError, match=r"session\.yaml: expected a mapping of session metadata"
    ):
        load_session(folder)


def test_no_cues(tmp_path: Path) -> None:
    folder = write_session(tmp_path / "empty", transcript_text="WEBVTT\n", media_seconds=1.0)
    with pytest.raises(SessionError, match=r"transcript\.vtt: no cues; expected at least one turn"):
        load_session(folder)


def test_bad_intended_entry(folder: Path) -> None:
    edit_meta(folder, intended=[{"turn": 0, "performer": "p01", "start": 0.5, "end": 1.0}])
    with pytest.raises(
        SessionError,
        match=r"session\.yaml: intended\[0\]: 'emotion'; "
        r"expected turn, performer, start, end, emotion$",
    ):
        load_session(folder)


def test_performers_as_plain_names(folder: Path) -> None:
    edit_meta(folder, performers=["Maya", "Theo"])
    with pytest.raises(SessionError):
        load_session(folder)


def test_session_yaml_not_utf8(folder: Path) -> None:
    path = folder / "session.yaml"
    path.write_bytes(path.read_bytes().replace(b"cafe", b"caf\xe9"))
    with pytest.raises(SessionError):
        load_session(folder)


# --- find_sessions and import_sessions ------------------------------------------------------


def test_find_sessions_in_a_folder_of_folders(tmp_path: Path) -> None:
    for name in ("b-scene", "a-scene", "c-scene"):
        write_session(tmp_path / name, n_turns=2)
    (tmp_path / "not-a-session").mkdir()
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert find_sessions(tmp_path) == [tmp_path / n for n in ("a-scene", "b-scene", "c-scene")]
    assert find_sessions(str(tmp_path / "b-scene")) == [tmp_path / "b-scene"]


def test_find_sessions_errors(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=rf"^{esc(tmp_path / 'nope')}: not a folder; expected"):
        find_sessions(tmp_path / "nope")
    with pytest.raises(SessionError, match=rf"^{esc(tmp_path)}: no session\.yaml in it or in its"):
        find_sessions(tmp_path)


def test_import_sessions_dry_run_reports_failures(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    write_session(sessions / "good", n_turns=4)
    bad = write_session(sessions / "bad", n_turns=4)
    edit_meta(bad, media="../escape.wav")
    messages: list[tuple[str, str, int, int]] = []
    report = import_sessions(
        sessions,
        media_root=tmp_path / "media",
        taxonomy=load_taxonomy(),
        max_seconds=3.0,
        push=None,
        progress=lambda *args: messages.append(args),
    )
    assert [s.id for s in report.sessions] == ["good"]
    assert report.turns == 4
    assert list(report.failed) == [str(bad)]
    assert "points outside the session folder" in report.failed[str(bad)]
    assert (report.created, report.existing, report.updated) == (0, 0, 0)
    assert report.dry_run and report.clips == len(messages) - 1 > 0
    assert {m[:2] for m in messages} == {("good", "cutting clips")}
    assert messages[-1][2:] == (report.clips, report.clips)
    clips = sorted(p.name for p in (tmp_path / "media" / "good").iterdir())
    assert len(clips) == report.clips
    assert all(re.fullmatch(r"good-c\d{3}_\d+-\d+\.wav", name) for name in clips)


# --- make_clips -----------------------------------------------------------------------------


def random_session(seed: int, n_turns: int = 40) -> Session:
    rng = np.random.default_rng(seed)
    spans, t = [], 0.3
    for _ in range(n_turns):
        length = float(rng.choice([rng.uniform(0.3, 4.0), rng.uniform(8.0, 14.0)], p=[0.9, 0.1]))
        spans.append((round(t, 3), round(t + length, 3)))
        t += length + float(rng.uniform(0.0, 1.5))
    return make_session(spans, session_id=f"r{seed}")


@pytest.mark.parametrize("max_seconds", [3.0, 10.0, 45.0])
@pytest.mark.parametrize("seed", range(5))
def test_clips_cover_every_turn_once_in_order(seed: int, max_seconds: float) -> None:
    session = random_session(seed)
    clips = make_clips(session, max_seconds)
    assert [tid for clip in clips for tid in clip.turn_ids] == [t.id for t in session.turns]
    assert [c.index for c in clips] == list(range(len(clips)))
    assert [c.id for c in clips] == [f"r{seed}-c{i:03d}" for i in range(len(clips))]
    turns = {t.id: t for t in session.turns}
    for clip in clips:
        assert clip.session_id == session.id
        assert clip.start == turns[clip.turn_ids[0]].start
        assert clip.end == max(turns[tid].end for tid in clip.turn_ids)
        if len(clip.turn_ids) > 1:
            assert clip.duration <= max_seconds
    # Greedy: the next clip's first turn would not have fitted.
    for clip, following in itertools.pairwise(clips):
        assert turns[following.turn_ids[0]].end - clip.start > max_seconds


def test_one_long_turn_makes_its_own_clip() -> None:
    session = make_session([(0.0, 2.0), (2.5, 4.0), (4.5, 30.0), (30.5, 32.0), (32.5, 33.0)])
    clips = make_clips(session, 10.0)
    assert [c.turn_ids for c in clips] == [
        ("s-t00000", "s-t00001"),
        ("s-t00002",),
        ("s-t00003", "s-t00004"),
    ]
    assert clips[1].duration == 25.5


def test_clip_ends_exactly_at_the_limit() -> None:
    session = make_session([(1.0, 2.0), (2.0, 6.0), (6.0, 6.5)])
    assert [c.turn_ids for c in make_clips(session, 5.0)] == [
        ("s-t00000", "s-t00001"),
        ("s-t00002",),
    ]


def test_session_as_one_clip() -> None:
    session = make_session(turn_spans(10))
    (clip,) = make_clips(session, 1000.0)
    assert len(clip.turn_ids) == 10


def test_no_turns_no_clips() -> None:
    assert make_clips(make_session([]), 10.0) == ()


# --- clip audio and tasks -------------------------------------------------------------------


def test_audio_window_adds_a_clamped_margin() -> None:
    session = make_session([(0.1, 1.0), (5.0, 9.9)], duration=10.0)
    first, last = make_clips(session, 2.0)
    assert audio_window(session, first) == (0.0, 1.0 + MARGIN)
    assert audio_window(session, last) == (5.0 - MARGIN, 10.0)


def test_cut_clip_audio_matches_the_window(folder: Path, tmp_path: Path) -> None:
    session = load_session(folder)
    source, rate = sf.read(session.media, dtype="float32")
    for clip in make_clips(session, 3.0):
        target = tmp_path / "media" / session.id / f"{clip.id}.wav"
        assert cut_clip_audio(session, clip, target) == target
        start, end = audio_window(session, clip)
        info = sf.info(str(target))
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        assert info.frames == round((end - start) * rate)
        assert abs(info.frames / rate - (end - start)) <= 1 / rate
        samples, _ = sf.read(target, dtype="float32")
        first = round(start * rate)
        np.testing.assert_array_equal(samples, source[first : first + info.frames])
    assert not list((tmp_path / "media").rglob("*.part.wav"))


def test_cut_clip_audio_keeps_an_existing_file(folder: Path, tmp_path: Path) -> None:
    session = load_session(folder)
    clip = make_clips(session, 3.0)[0]
    target = tmp_path / "clip.wav"
    target.write_bytes(b"already here")
    cut_clip_audio(session, clip, target)
    assert target.read_bytes() == b"already here"


def test_cut_clip_audio_mixes_stereo_to_mono(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    stereo = (0.1 * rng.standard_normal((RATE * 3, 2))).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, RATE, subtype="FLOAT")
    session = make_session([(1.0, 2.0)], duration=3.0, media=str(tmp_path / "stereo.wav"))
    clip = make_clips(session, 5.0)[0]
    target = cut_clip_audio(session, clip, tmp_path / "out" / "c.wav")
    mono, _ = sf.read(target, dtype="float32")
    expected = stereo[round(0.75 * RATE) : round(2.25 * RATE)].mean(axis=1)
    np.testing.assert_allclose(mono, expected, atol=1 / 2**15)


def test_build_task(folder: Path) -> None:
    session = load_session(folder)
    taxonomy = load_taxonomy()
    clips = make_clips(session, 3.0)
    clip = clips[1]
    task = build_task(session, clip, "/data/local-files/?d=x.wav", taxonomy, len(clips))
    data = task["data"]
    offset = audio_window(session, clip)[0]
    assert offset > 0
    assert data["audio_offset"] == round(offset, 6)
    turns = {t.id: t for t in session.turns}
    assert [line["turn_id"] for line in data["dialogue"]] == list(clip.turn_ids)
    for line in data["dialogue"]:
        turn = turns[line["turn_id"]]
        assert line["start"] == round(turn.start - offset, 3)
        assert line["end"] == round(turn.end - offset, 3)
        assert (line["performer"], line["turn_index"], line["text"]) == (
            turn.speaker,
            turn.index,
            turn.text,
        )
        assert line["speaker"] == {"p01": "Maya", "p02": "Theo"}[turn.speaker]
    assert data["dialogue"][0]["start"] == MARGIN
    assert {k: data[k] for k in ("audio", "session_id", "clip_id", "clip_index")} == {
        "audio": "/data/local-files/?d=x.wav",
        "session_id": session.id,
        "clip_id": clip.id,
        "clip_index": 1,
    }
    assert (data["clip_start"], data["clip_end"]) == (clip.start, clip.end)
    assert (data["taxonomy"], data["taxonomy_version"]) == ("improv-emotion-shift", "1.0.0")
    assert data["prompt"] == session.prompt
    assert data["title"].startswith(f"Test scene scene-1: clip 2 of {len(clips)} (0:")
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == PREDICTION_VERSION
    assert prediction["result"] == turn_regions(data["dialogue"])
    assert len(prediction["result"]) == len(clip.turn_ids)
    assert [r["value"]["start"] for r in prediction["result"]] == [
        str(i) for i in range(len(clip.turn_ids))
    ]


def test_build_task_title_minutes() -> None:
    session = make_session([(75.5, 80.0), (121.25, 130.0)], duration=131.0)
    clips = make_clips(session, 10.0)
    titles = [build_task(session, c, "u", load_taxonomy(), 2)["data"]["title"] for c in clips]
    assert titles == [
        "Scene s: clip 1 of 2 (1:15.5-1:20.0)",
        "Scene s: clip 2 of 2 (2:01.2-2:10.0)",
    ]


def test_build_task_title_rounds_into_the_next_minute() -> None:
    session = make_session([(59.96, 61.0)], duration=62.0)
    clip = make_clips(session, 10.0)[0]
    assert "(1:00.0-1:01.0)" in build_task(session, clip, "u", load_taxonomy(), 1)["data"]["title"]


def test_build_task_unknown_performer_keeps_the_id() -> None:
    session = make_session([(1.0, 2.0)])
    session = dataclasses.replace(session, performers=())
    clip = Clip("s-c000", "s", 0, 1.0, 2.0, ("s-t00000",))
    (line,) = build_task(session, clip, "u", load_taxonomy(), 1)["data"]["dialogue"]
    assert line["speaker"] == line["performer"] == "p01"


# --- the committed example ------------------------------------------------------------------


def test_committed_example() -> None:
    session = load_session(EXAMPLE)
    taxonomy = load_taxonomy()
    assert session.id == "cafe-breakup"
    assert session.duration >= 120.0
    assert len(session.performers) == 2
    assert {t.speaker for t in session.turns} == {p.id for p in session.performers}
    info = sf.info(str(EXAMPLE / "audio.wav"))
    assert (info.samplerate, info.channels) == (RATE, 1)
    assert session.turns[-1].end <= session.duration
    for turn in session.turns:
        emotion = session.intended_for(turn)
        assert emotion in taxonomy.emotion.values, turn.id
    by_turn = {i.turn: i for i in session.intended}
    for turn in session.turns:
        item = by_turn[turn.index]
        assert (item.performer, item.start, item.end) == (turn.speaker, turn.start, turn.end)


def test_committed_example_clips_fit_the_default_limit() -> None:
    session = load_session(EXAMPLE)
    clips = make_clips(session, 45.0)
    assert len(clips) >= 3
    assert all(c.duration <= 45.0 for c in clips)
