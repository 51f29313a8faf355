"""Tests for importers.vad: voice activity from the noise floor, per channel, into turns.

Speech-like bursts (a harmonic tone with a 4 Hz syllable envelope) separated by pauses,
over clean silence, over a noisy floor at 20 dB SNR (where the peak-relative threshold of
``librosa.effects.split`` fails), and on two channels with -20 dB bleed; then real
synthetic speech (espeak-ng) through a real ffmpeg encode.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from importers.media import read_audio
from importers.vad import (
    UNKNOWN_SPEAKER,
    Activity,
    frame_levels,
    segments_to_turns,
    voice_activity,
)
from schemas.errors import MediaError

SEED = 440
SR = 16_000
TOLERANCE = 0.1  # seconds: every burst's start and end must be found this close


def spans_with_pauses(
    rng: np.random.Generator, n: int, start: float = 0.7
) -> list[tuple[float, float]]:
    """``n`` bursts of 0.6-1.8 s separated by 0.4-1.0 s pauses."""
    spans, t = [], start
    for _ in range(n):
        length = float(rng.uniform(0.6, 1.8))
        spans.append((round(t, 3), round(t + length, 3)))
        t += length + float(rng.uniform(0.4, 1.0))
    return spans


def bursts(
    rng: np.random.Generator, spans: list[tuple[float, float]], seconds: float, f0: float = 150
) -> np.ndarray:
    """Harmonic bursts (8 harmonics, random phases, 4 Hz syllable envelope, 20 ms fades)
    over ``spans``, normalised to RMS 0.1 while active; 1-D float64."""
    t = np.arange(round(seconds * SR)) / SR
    y = np.zeros_like(t)
    active = np.zeros(len(t), dtype=bool)
    for start, end in spans:
        inside = (t >= start) & (t < end)
        tt = t[inside] - start
        tone = sum(
            np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 9)
        )
        envelope = 0.5 + 0.5 * np.abs(np.sin(np.pi * 4 * tt))
        fade = np.minimum(1.0, np.minimum(tt, end - start - tt) / 0.02)
        y[inside] = tone * envelope * fade
        active |= inside
    return y * 0.1 / np.sqrt(np.mean(y[active] ** 2))


def noise(rng: np.random.Generator, n: int, rms: float, channels: int = 1) -> np.ndarray:
    return rms * rng.standard_normal((channels, n) if channels > 1 else n)


def assert_found(found: list[Activity], spans: list[tuple[float, float]]) -> None:
    """One activity per span, each edge within TOLERANCE."""
    assert len(found) == len(spans), [(a.start, a.end) for a in found]
    for activity, (start, end) in zip(found, spans, strict=True):
        assert activity.start == pytest.approx(start, abs=TOLERANCE)
        assert activity.end == pytest.approx(end, abs=TOLERANCE)


# --- one channel -----------------------------------------------------------------------------


def test_bursts_over_clean_silence() -> None:
    rng = np.random.default_rng(SEED)
    spans = spans_with_pauses(rng, 8)
    y = bursts(rng, spans, spans[-1][1] + 0.5).astype(np.float32)
    found = voice_activity(y, SR)
    assert_found(found, spans)
    assert {a.channel for a in found} == {None}


@pytest.mark.parametrize("top_db", [30, 60])
def test_bursts_over_a_noisy_floor_where_a_peak_threshold_fails(top_db: int) -> None:
    rng = np.random.default_rng(SEED + 1)
    spans = spans_with_pauses(rng, 8)
    clean = bursts(rng, spans, spans[-1][1] + 0.5)
    y = (clean + noise(rng, len(clean), rms=0.01)).astype(np.float32)  # 20 dB SNR
    # The peer: a threshold relative to the peak lies under the noise floor, so the
    # whole recording is one "non-silent" interval.
    assert len(librosa.effects.split(y, top_db=top_db)) == 1
    # Ours, from the noise floor: every burst, each edge within 100 ms.
    assert_found(voice_activity(y, SR), spans)


def test_short_gaps_are_bridged_and_blips_dropped() -> None:
    rng = np.random.default_rng(SEED + 2)
    y = bursts(rng, [(0.5, 1.5), (1.6, 2.6), (3.5, 3.55), (4.5, 5.5)], 6.0)
    y = (y + noise(rng, len(y), rms=0.003)).astype(np.float32)
    found = voice_activity(y, SR)  # min_silence 0.2 s, min_speech 0.15 s
    assert_found(found, [(0.5, 2.6), (4.5, 5.5)])
    kept = voice_activity(y, SR, min_silence=0.05, min_speech=0.03)
    assert_found(kept, [(0.5, 1.5), (1.6, 2.6), (3.5, 3.55), (4.5, 5.5)])


def test_silence_only_finds_nothing() -> None:
    rng = np.random.default_rng(SEED + 3)
    assert voice_activity(noise(rng, 3 * SR, rms=0.01).astype(np.float32), SR) == []
    assert voice_activity(np.zeros(SR, dtype=np.float32), SR) == []


def test_frame_levels_in_chunks_equal_one_pass() -> None:
    rng = np.random.default_rng(SEED + 4)
    y = rng.standard_normal((2, 70 * SR)).astype(np.float32)  # more than one chunk
    levels = frame_levels(y, SR)
    assert levels.shape == (2, 1 + y.shape[1] // 160)
    rms = librosa.feature.rms(
        y=y, frame_length=400, hop_length=160, center=True, pad_mode="constant"
    )
    np.testing.assert_allclose(levels, 20 * np.log10(rms[:, 0, :]), atol=1e-3)
    mixed = frame_levels(y, SR, downmix=True)
    rms = librosa.feature.rms(
        y=y.mean(axis=0), frame_length=400, hop_length=160, center=True, pad_mode="constant"
    )
    np.testing.assert_allclose(mixed, 20 * np.log10(rms), atol=1e-3)


# --- two channels ----------------------------------------------------------------------------


def dialogue(
    rng: np.random.Generator, bleed_db: float = -20.0, overlap: bool = False
) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """Two performers, one per channel, alternating; each also reaches the other's channel
    ``bleed_db`` down; a -50 dB floor. Returns the audio (2, samples) and (start, end,
    channel) per turn."""
    turns = [(0.6, 2.0, 0), (2.5, 4.2, 1), (4.8, 5.9, 0), (6.4, 8.1, 1), (8.7, 9.6, 0)]
    if overlap:
        turns.append((9.2, 10.4, 1))  # starts while performer 0 is still speaking
    seconds = 11.0
    a = bursts(rng, [(s, e) for s, e, c in turns if c == 0], seconds, f0=120)
    b = bursts(rng, [(s, e) for s, e, c in turns if c == 1], seconds, f0=220)
    g = 10 ** (bleed_db / 20)
    audio = np.stack([a + g * b, b + g * a]) + noise(rng, len(a), rms=0.0003, channels=2)
    return audio.astype(np.float32), sorted(turns)


def test_two_channels_with_bleed_give_the_right_speakers() -> None:
    rng = np.random.default_rng(SEED + 5)
    audio, turns = dialogue(rng, bleed_db=-20)
    found = voice_activity(audio, SR)  # separate=None: channel_roles decides
    assert [a.channel for a in found] == [c for _, _, c in turns]
    assert_found(found, [(s, e) for s, e, _ in turns])
    named = segments_to_turns(found, "call", speakers=["maya", "theo"])
    assert [t.speaker for t in named] == ["maya", "theo", "maya", "theo", "maya"]
    assert [t.id for t in named][:2] == ["call-t00000", "call-t00001"]
    assert {t.text for t in named} == {""}


def test_bleed_makes_turns_when_channels_are_mixed_down() -> None:
    # The contrast: with separate=False the bleed is part of one mix and the speakers are
    # unknown; with per-channel thresholds but no ownership rule, bleed would be a turn.
    rng = np.random.default_rng(SEED + 6)
    audio, turns = dialogue(rng, bleed_db=-20)
    mixed = voice_activity(audio, SR, separate=False)
    assert {a.channel for a in mixed} == {None}
    assert len(mixed) == len(turns)
    no_ownership = voice_activity(audio, SR, separate=True, own_db=200)
    assert len(no_ownership) == 2 * len(turns)  # each turn once more, as bleed
    assert len(voice_activity(audio, SR, separate=True)) == len(turns)


def test_overlapping_speech_is_a_turn_for_both() -> None:
    rng = np.random.default_rng(SEED + 7)
    audio, turns = dialogue(rng, bleed_db=-20, overlap=True)
    found = voice_activity(audio, SR, separate=True)
    assert [(a.channel) for a in found] == [c for _, _, c in turns]
    assert_found(found, [(s, e) for s, e, _ in turns])


# --- turns ------------------------------------------------------------------------------------


def test_segments_to_turns_for_mono_and_channels() -> None:
    acts = [Activity(2.0, 3.0, None), Activity(0.5, 1.25, None)]
    turns = segments_to_turns(acts, "solo")
    assert [(t.index, t.speaker, t.start, t.end, t.text) for t in turns] == [
        (0, UNKNOWN_SPEAKER, 0.5, 1.25, ""),
        (1, UNKNOWN_SPEAKER, 2.0, 3.0, ""),
    ]
    by_channel = segments_to_turns([Activity(1.0, 2.0, 1), Activity(1.0, 1.5, 0)], "duo")
    assert [t.speaker for t in by_channel] == ["0", "1"]


def test_segments_to_turns_names_a_channel_without_speaker() -> None:
    with pytest.raises(MediaError, match=r"channel 2; expected a channel below 2 .*\['a', 'b'\]"):
        segments_to_turns([Activity(0.0, 1.0, 2)], "s", speakers=["a", "b"])


def test_rejects_empty_audio() -> None:
    with pytest.raises(
        MediaError, match=r"audio of shape \(1, 0\); expected \(channels, samples\)"
    ):
        voice_activity(np.zeros(0, dtype=np.float32), SR)


# --- real synthetic speech through a real encoder ---------------------------------------------


LINES = [
    ("en-us+m3", 0, "Where did you put the coffee"),
    ("en-us+f2", 1, "I never touched your coffee"),
    ("en-us+m3", 0, "Then who drank it"),
    ("en-us+f2", 1, "The cat did"),
]


def test_espeak_dialogue_through_m4a(tmp_path: Path) -> None:
    rate = 22_050
    rng = np.random.default_rng(SEED + 8)
    pieces, t = [], 0.6
    for i, (voice, channel, text) in enumerate(LINES):
        wav = tmp_path / f"line{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
        y, got = sf.read(wav, dtype="float32")
        assert got == rate
        voiced = np.flatnonzero(np.abs(y) > 1e-3)
        y = y[voiced[0] : voiced[-1] + 1]
        pieces.append((round(t * rate), channel, y))
        t += len(y) / rate + float(rng.uniform(0.5, 0.9))
    stereo = np.zeros((2, round((t + 0.5) * rate)), dtype=np.float32)
    for start, channel, y in pieces:
        stereo[channel, start : start + len(y)] += 0.5 * y
        stereo[1 - channel, start : start + len(y)] += 0.05 * y  # -20 dB bleed
    stereo += 0.001 * rng.standard_normal(stereo.shape).astype(np.float32)
    sf.write(tmp_path / "scene.wav", stereo.T, rate)
    m4a = tmp_path / "scene.m4a"
    encode = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(tmp_path / "scene.wav")]
    subprocess.run([*encode, "-c:a", "aac", "-b:a", "96k", str(m4a)], check=True)
    audio = read_audio(m4a, SR)
    turns = segments_to_turns(voice_activity(audio, SR), "scene", speakers=["ana", "ben"])
    assert [t.speaker for t in turns] == ["ana", "ben", "ana", "ben"]
    for turn, (start, _, y) in zip(turns, pieces, strict=True):
        assert turn.start == pytest.approx(start / rate, abs=TOLERANCE)
        assert turn.end == pytest.approx(start / rate + len(y) / rate, abs=TOLERANCE)
