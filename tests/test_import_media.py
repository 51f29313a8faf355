"""Sessions as teams record them: video-call files, one performer per channel, no transcript,
prosody per turn, all the way to clip files and tasks.

The media are generated here: two espeak-ng voices, one per channel with bleed, muxed with
ffmpeg into the container under test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from importers import ImportOptions, import_sessions, prepare_session
from importers.media import probe
from importers.session import load_session
from importers.vad import UNKNOWN_SPEAKER
from schemas.errors import SessionError
from schemas.taxonomy import load_taxonomy
from tests.builders import write_meta
from tests.transcript_builders import write_srt

TAX = load_taxonomy()
RATE = 22_050
LINES = [
    ("en-us+m3", 0, "Where did you put the coffee", 40),
    ("en-us+f2", 1, "I never touched your coffee", 70),
    ("en-us+m3", 0, "Then who drank it, tell me now", 40),
    ("en-us+f2", 1, "The cat did it, obviously", 90),
]
PERFORMERS = [{"id": "ana", "name": "Ana"}, {"id": "ben", "name": "Ben"}]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def _dialogue(folder: Path, *, stereo: bool = True) -> list[tuple[str, float, float, str]]:
    """``folder/scene.wav``: the lines, one voice per channel with -20 dB bleed (or mixed to
    mono); returns (performer id, start, end, text) per line."""
    rng = np.random.default_rng(7)
    pieces, rows, t = [], [], 0.6
    for i, (voice, channel, text, pitch) in enumerate(LINES):
        wav = folder / f"line{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(wav), text], check=True
        )
        y, got = sf.read(wav, dtype="float32")
        wav.unlink()
        voiced = np.flatnonzero(np.abs(y) > 1e-3)
        y = y[voiced[0] : voiced[-1] + 1]
        pieces.append((round(t * got), channel, y))
        rows.append((PERFORMERS[channel]["id"], round(t, 3), round(t + len(y) / got, 3), text))
        t += len(y) / got + float(rng.uniform(0.5, 0.9))
    audio = np.zeros((2, round((t + 0.5) * RATE)), dtype=np.float32)
    for start, channel, y in pieces:
        audio[channel, start : start + len(y)] += 0.5 * y
        audio[1 - channel, start : start + len(y)] += 0.05 * y
    audio += 0.001 * rng.standard_normal(audio.shape).astype(np.float32)
    if not stereo:
        audio = audio.mean(axis=0, keepdims=True)
    sf.write(folder / "scene.wav", audio.T, RATE)
    return rows


def _video_call(folder: Path, container: str) -> Path:
    """The dialogue as a video-call recording: ``scene.<container>`` with a video track."""
    target = folder / f"scene.{container}"
    codecs = {
        "mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
        "webm": ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
        "mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "flac"],
    }[container]
    _ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=160x120:r=10",
        "-i", str(folder / "scene.wav"),
        "-shortest", *codecs, str(target),
    )  # fmt: skip
    return target


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A session folder holding an MP4 video call, no transcript."""
    folder = tmp_path_factory.mktemp("call") / "call"
    folder.mkdir()
    rows = _dialogue(folder)
    _video_call(folder, "mp4")
    (folder / "scene.wav").unlink()
    write_meta(
        folder,
        {"id": "call", "title": "Coffee", "prompt": "Who drank it?", "media": "scene.mp4",
         "performers": PERFORMERS},
    )  # fmt: skip
    return folder, rows


def test_a_video_call_without_transcript_gives_turns_per_channel(call: tuple[Path, list]) -> None:
    folder, rows = call
    warnings: list[str] = []
    session = load_session(folder, warnings=warnings)
    assert session.video == str((folder / "scene.mp4").resolve())
    assert [t.speaker for t in session.turns] == [r[0] for r in rows]
    for turn, (_, start, end, _) in zip(session.turns, rows, strict=True):
        assert turn.start == pytest.approx(start, abs=0.1)
        assert turn.end == pytest.approx(end, abs=0.1)
        assert turn.text == ""
    (note,) = warnings
    assert "no transcript; 4 turns found by voice activity (one performer per channel)" in note


def test_prosody_is_measured_on_each_performers_channel(call: tuple[Path, list]) -> None:
    folder, _ = call
    session = load_session(folder, prosody=True)
    features = [t.prosody for t in session.turns]
    assert all(f is not None and f["f0_median_hz"] for f in features)
    ana = [f["f0_median_hz"] for t, f in zip(session.turns, features, strict=True)
           if t.speaker == "ana"]  # fmt: skip
    ben = [f["f0_median_hz"] for t, f in zip(session.turns, features, strict=True)
           if t.speaker == "ben"]  # fmt: skip
    assert max(ana) < min(ben)  # the f2 voice at a higher pitch setting
    assert features[0]["pause_before_s"] is None
    assert features[1]["pause_before_s"] == pytest.approx(
        session.turns[1].start - session.turns[0].end, abs=1e-6
    )


def test_clips_of_a_video_call_are_cut_with_ffmpeg_and_tasks_carry_prosody(
    call: tuple[Path, list], tmp_path: Path
) -> None:
    folder, _ = call
    session, tasks = prepare_session(
        folder, tmp_path / "media", TAX, ImportOptions(max_seconds=4.0, prosody=True)
    )
    assert len(tasks) > 1
    for task in tasks:
        name = task["data"]["audio"].split("/")[-1]
        info = probe(tmp_path / "media" / "call" / name)
        assert (info.channels, info.codec) == (1, "pcm_16")
        assert info.duration == pytest.approx(
            task["data"]["clip_end"] - task["data"]["clip_start"] + 0.5, abs=0.05
        )
        for line in task["data"]["dialogue"]:
            assert set(line["prosody"]) >= {"f0_median_hz", "energy_db_mean", "duration_s"}
    assert [line["turn_id"] for t in tasks for line in t["data"]["dialogue"]] == [
        t.id for t in session.turns
    ]


@pytest.mark.parametrize("container", ["webm", "mkv"])
def test_other_containers_with_a_transcript(tmp_path: Path, container: str) -> None:
    folder = tmp_path / "scene"
    folder.mkdir()
    rows = _dialogue(folder)
    _video_call(folder, container)
    srt = [({"ana": "Ana", "ben": "Ben"}[p], s, e, text) for p, s, e, text in rows]
    (folder / "scene.srt").write_text(write_srt(srt), encoding="utf-8")
    write_meta(
        folder,
        {"id": "scene", "media": f"scene.{container}", "transcript": "scene.srt",
         "performers": PERFORMERS},
    )  # fmt: skip
    report = import_sessions(
        folder, media_root=tmp_path / "media", taxonomy=TAX, push=None,
        options=ImportOptions(max_seconds=30.0, prosody=True),
    )  # fmt: skip
    assert report.failed == {}
    (session,) = report.sessions
    assert [(t.speaker, t.start, t.end, t.text) for t in session.turns] == rows
    assert all(t.prosody and t.prosody["words_per_s"] for t in session.turns)


def test_mono_without_transcript_has_unknown_speakers(tmp_path: Path) -> None:
    folder = tmp_path / "mono"
    folder.mkdir()
    rows = _dialogue(folder, stereo=False)
    _ffmpeg("-i", str(folder / "scene.wav"), "-c:a", "flac", str(folder / "scene.flac"))
    write_meta(folder, {"id": "mono", "media": "scene.flac", "performers": PERFORMERS})
    warnings: list[str] = []
    session = load_session(folder, warnings=warnings)
    assert len(session.turns) == len(rows)
    assert {t.speaker for t in session.turns} == {UNKNOWN_SPEAKER}
    assert UNKNOWN_SPEAKER in {p.id for p in session.performers}
    assert warnings[0].endswith("speakers unknown")


def test_declared_channels_decide_the_speakers(tmp_path: Path) -> None:
    folder = tmp_path / "swap"
    folder.mkdir()
    rows = _dialogue(folder)
    swapped = [{**PERFORMERS[0], "channel": 1}, {**PERFORMERS[1], "channel": 0}]
    write_meta(folder, {"id": "swap", "media": "scene.wav", "performers": swapped})
    session = load_session(folder)
    other = {"ana": "ben", "ben": "ana"}
    assert [t.speaker for t in session.turns] == [other[r[0]] for r in rows]
    write_meta(
        folder,
        {"id": "swap", "media": "scene.wav", "performers": [{**PERFORMERS[0], "channel": 2},
                                                            PERFORMERS[1]]},
    )  # fmt: skip
    expected = r"performer 'ana': channel 2; expected a whole number from 0 to 1 \(the media has 2"
    with pytest.raises(SessionError, match=expected):
        load_session(folder)


def test_plain_pyin_without_the_noise_gate_is_librosa_pyin(call: tuple[Path, list]) -> None:
    import librosa

    from importers.media import read_audio
    from importers.prosody import PitchParams

    folder, _ = call
    session = load_session(folder, prosody=True, noise_gate=False)
    audio = read_audio(folder / "scene.mp4", 16_000)
    params = PitchParams()
    turn = session.turns[1]  # ben, channel 1
    y = audio[1][round(turn.start * 16_000) : round(turn.end * 16_000)]
    f0, voiced, _ = librosa.pyin(
        y, fmin=params.fmin, fmax=params.fmax, sr=16_000,
        frame_length=params.frame_length, hop_length=params.hop_length,
    )  # fmt: skip
    median = float(np.median(f0[voiced]))
    assert turn.prosody is not None
    assert turn.prosody["f0_median_hz"] == pytest.approx(median, abs=1e-3)
