"""Per-turn prosody: known pitch contours, agreement with librosa.pyin, edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soxr

from importers import pitch as pyin
from importers import prosody
from importers.prosody import FEATURES, PitchParams, pitch_track, turn_features
from schemas.errors import SessionError
from tests.voice_builders import RATE, espeak, fricative, glide, harmonic_voice

SENTENCE = (
    "Well I never thought I would see you here again, not after what happened at the bus "
    "stop last summer."
)
# espeak-ng utterances for the agreement test: (voice, pitch 0-99, rate wpm, text).
UTTERANCES = (
    ("en-us+m3", 30, 150, "Really? You remember that? Of course I do."),
    ("en-us+m3", 70, 190, "It was the worst day of my life and you just stood there laughing."),
    ("en-us+f2", 40, 160, "Oh come on, it was funny and you know it."),
    ("en-us+f2", 85, 220, "Nobody got hurt, the coffee was cold anyway!"),
    ("en-us+m1", 50, 130, "Did he? I do not think he laughed at all."),
    ("en-us+f4", 60, 175, "Wait, what? The bus driver was my uncle."),
)


def semitones(a: float, b: float) -> float:
    """Signed distance from ``b`` to ``a`` in semitones."""
    return 12 * math.log2(a / b)


def one(y: np.ndarray, **kwargs: object) -> dict[str, float | None]:
    """Features of a single turn spanning all of ``y`` (16 kHz)."""
    return turn_features(y, RATE, [(0.0, len(y) / RATE)], workers=1, **kwargs)[0]


@pytest.mark.parametrize(
    ("start_hz", "end_hz", "seconds"),
    [(120, 180, 2.0), (220, 160, 1.5), (100, 100, 1.0), (300, 350, 2.0), (75, 65, 1.2)],
)
def test_known_contour_is_recovered(start_hz: float, end_hz: float, seconds: float) -> None:
    rng = np.random.default_rng(440)
    f0 = glide(seconds, start_hz, end_hz)
    row = one(harmonic_voice(f0, rng=rng))
    st = 12 * np.log2(f0)
    true_range = float(np.percentile(st, 95) - np.percentile(st, 5))
    true_slope = semitones(end_hz, start_hz) / seconds
    assert row["voiced_fraction"] is not None and row["voiced_fraction"] > 0.9
    assert abs(semitones(row["f0_median_hz"], float(np.median(f0)))) < 0.5
    assert abs(row["f0_range_st"] - true_range) < 0.5
    assert abs(row["f0_slope_st_per_s"] - true_slope) < max(0.15 * abs(true_slope), 0.3)
    assert row["f0_std_st"] == pytest.approx(float(np.std(st)), abs=0.3)


def test_pitch_only_counts_voiced_part_of_a_turn_with_gaps() -> None:
    rng = np.random.default_rng(7)
    f0 = glide(2.0, 200, 200)
    voiced = np.ones(len(f0), bool)
    voiced[RATE // 2 : RATE] = False  # a 0.5 s unvoiced gap
    row = one(harmonic_voice(f0, rng=rng, voiced=voiced))
    assert abs(semitones(row["f0_median_hz"], 200.0)) < 0.5
    assert 0.6 < row["voiced_fraction"] < 0.85


@pytest.fixture(scope="module")
def espeak_turns() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The utterances one after another with 0.4 s pauses, and their turns."""
    pieces, turns, t = [], [], 0.0
    for voice, pitch, rate, text in UTTERANCES:
        y = espeak(text, voice=voice, pitch=pitch, rate=rate)
        pieces += [y, np.zeros(int(0.4 * RATE), np.float32)]
        turns.append((t, t + len(y) / RATE, text))
        t += len(y) / RATE + 0.4
    return np.concatenate(pieces), turns


def test_agrees_with_librosa_pyin_on_espeak_speech(espeak_turns) -> None:
    librosa = pytest.importorskip("librosa")
    audio, turns = espeak_turns
    params = PitchParams()
    rows = turn_features(audio, RATE, turns, workers=1)
    errors, ours_range, ref_range = [], [], []
    for (start, end, _), row in zip(turns, rows, strict=True):
        y = audio[round(start * RATE) : round(end * RATE)]
        f0, voiced, _ = librosa.pyin(
            y,
            sr=RATE,
            fmin=params.fmin,
            fmax=params.fmax,
            frame_length=params.frame_length,
            hop_length=params.hop_length,
        )
        ref = 12 * np.log2(f0[voiced])
        errors.append(abs(semitones(row["f0_median_hz"], float(np.median(f0[voiced])))))
        ours_range.append(row["f0_range_st"])
        ref_range.append(float(np.percentile(ref, 95) - np.percentile(ref, 5)))
        # Frame by frame: the same voicing decisions and pitch bins.
        ours_f0, ours_voiced, _ = pitch_track(y, params)
        assert np.mean(ours_voiced == voiced) > 0.99
        both = ours_voiced & voiced
        assert np.mean(np.abs(12 * np.log2(ours_f0[both] / f0[both])) < 0.05) > 0.99
    assert max(errors) < 0.5
    assert np.corrcoef(ours_range, ref_range)[0, 1] >= 0.9


def test_transition_band_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    params = PitchParams(fmin=100.0, fmax=200.0)
    model = pyin._model(params)
    width = model.log_band.shape[1]
    full = librosa.sequence.transition_local(model.n_bins, width, window="triangle", wrap=False)
    half = width // 2
    for k in (0, 3, model.n_bins // 2, model.n_bins - 1):
        for d in range(width):
            j = k + d - half
            if 0 <= j < model.n_bins:
                assert math.exp(model.log_band[k, d]) == pytest.approx(full[k, j], rel=1e-9)


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(RATE, np.float32),
        fricative(1.0, rng=np.random.default_rng(3)),
        (0.05 * np.random.default_rng(4).standard_normal(RATE)).astype(np.float32),
    ],
    ids=["silence", "fricative", "white-noise"],
)
def test_unvoiced_turn_has_no_pitch(signal: np.ndarray) -> None:
    row = one(signal)
    assert all(row[name] is None for name in prosody.PITCH_FEATURES)
    assert row["voiced_fraction"] is not None and row["voiced_fraction"] < 0.1
    json.dumps(row, allow_nan=False)  # JSON-ready: no NaN anywhere


def test_loud_turn_has_higher_energy_than_quiet_turn() -> None:
    voice = harmonic_voice(glide(1.0, 150, 170), rng=np.random.default_rng(5))
    loud, quiet = one(voice), one(voice * np.float32(0.1))
    assert loud["energy_db_mean"] == pytest.approx(quiet["energy_db_mean"] + 20.0, abs=0.5)
    assert quiet["f0_median_hz"] == pytest.approx(loud["f0_median_hz"], rel=0.03)


def test_fast_speech_has_higher_rate_than_slow_speech() -> None:
    slow = espeak(SENTENCE, rate=100)
    fast = espeak(SENTENCE, rate=260)
    rows = [
        turn_features(y, RATE, [(0.0, len(y) / RATE, SENTENCE)], workers=1)[0] for y in (slow, fast)
    ]
    assert rows[1]["words_per_s"] > 1.8 * rows[0]["words_per_s"]
    assert rows[1]["syllables_per_s"] > 1.5 * rows[0]["syllables_per_s"]
    # 26 syllables in the sentence; the acoustic count lands near it at a slow rate.
    assert 18 <= rows[0]["syllables_per_s"] * len(slow) / RATE <= 32


def test_every_row_has_the_declared_features_and_is_json_ready(espeak_turns) -> None:
    audio, turns = espeak_turns
    rows = turn_features(audio, RATE, turns, workers=1)
    assert [list(row) for row in rows] == [list(FEATURES)] * len(turns)
    text = json.dumps(rows, allow_nan=False)
    assert json.loads(text) == rows


def test_threads_give_the_same_rows_as_one_thread(espeak_turns) -> None:
    audio, turns = espeak_turns
    assert turn_features(audio, RATE, turns, workers=2) == turn_features(
        audio, RATE, turns, workers=1
    )


def test_other_sample_rates_are_resampled(espeak_turns) -> None:
    audio, turns = espeak_turns
    at_44k = soxr.resample(audio, RATE, 44_100, quality="HQ")
    native = turn_features(audio, RATE, turns, workers=1)
    resampled = turn_features(at_44k, 44_100, turns, workers=1)
    for a, b in zip(native, resampled, strict=True):
        assert abs(semitones(a["f0_median_hz"], b["f0_median_hz"])) < 0.2
        assert a["energy_db_mean"] == pytest.approx(b["energy_db_mean"], abs=0.5)


def test_pause_before_counts_turns_of_every_speaker() -> None:
    audio = np.zeros(10 * RATE, np.float32)
    mine = [(1.0, 2.0, "a"), (5.0, 6.0, "b"), (6.5, 8.0, "c")]
    everyone = [*mine, (2.5, 4.0, "other"), (7.5, 9.0, "overlap")]
    rows = turn_features(audio, RATE, mine, all_turns=everyone, workers=1)
    assert [r["pause_before_s"] for r in rows] == [None, pytest.approx(1.0), pytest.approx(0.5)]
    alone = turn_features(audio, RATE, mine, workers=1)
    assert [r["pause_before_s"] for r in alone] == [None, 3.0, 0.5]
    # The other speaker's turn starts inside mine: a negative pause (overlap).
    theirs = turn_features(audio, RATE, [(7.5, 9.0)], all_turns=everyone, workers=1)
    assert theirs[0]["pause_before_s"] == pytest.approx(-0.5)


def test_turn_shorter_than_a_frame() -> None:
    voice = harmonic_voice(glide(1.0, 150, 150), rng=np.random.default_rng(6))
    row = turn_features(voice, RATE, [(0.5, 0.53, "hi")], workers=1)[0]
    assert row["duration_s"] == pytest.approx(0.03)
    assert row["words_per_s"] == pytest.approx(1 / 0.03)
    assert row["energy_db_mean"] is not None
    assert row["f0_median_hz"] is None  # 2 pitch frames: fewer than MIN_VOICED_FRAMES
    empty = turn_features(voice, RATE, [(0.5, 0.5, "")], workers=1)[0]
    assert empty["duration_s"] == 0.0
    assert empty["words_per_s"] is None
    assert all(empty[name] is None for name in FEATURES[3:])


def test_turn_at_the_end_of_the_file() -> None:
    voice = harmonic_voice(glide(2.0, 140, 160), rng=np.random.default_rng(8))
    end = len(voice) / RATE
    # A few milliseconds past the end (decoders differ): cut at the end of the audio.
    rows = turn_features(voice, RATE, [(1.0, end), (1.0, end + 0.01)], workers=1)
    assert rows[0]["f0_median_hz"] == pytest.approx(rows[1]["f0_median_hz"], rel=0.01)
    true_median = float(np.median(glide(2.0, 140, 160)[RATE:]))
    assert abs(semitones(rows[0]["f0_median_hz"], true_median)) < 0.5
    with pytest.raises(SessionError, match=r"turns\[0\]: ends at 3\.000 s, after the end"):
        turn_features(voice, RATE, [(1.0, 3.0)], workers=1)


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ((2.0, 1.0), r"turns\[0\]: start 2\.0 s, end 1\.0 s; expected 0 <= start <= end"),
        ((-1.0, 1.0), r"start -1\.0 s"),
        (("a", 1.0), r"turns\[0\]: \('a', 1\.0\); expected \(start, end\[, text\]\)"),
    ],
)
def test_bad_turns_are_refused(turn: tuple, message: str) -> None:
    with pytest.raises(SessionError, match=message):
        turn_features(np.zeros(RATE, np.float32), RATE, [turn], workers=1)


def test_bad_audio_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"audio of shape \(2, 16000\); expected one channel"):
        turn_features(np.zeros((2, RATE), np.float32), RATE, [(0.0, 1.0)])
    with pytest.raises(ValueError, match="audio of dtype int16; expected float samples"):
        turn_features(np.zeros(RATE, np.int16), RATE, [(0.0, 1.0)])
    with pytest.raises(ValueError, match="sample rate 0; expected a positive"):
        turn_features(np.zeros(RATE, np.float32), 0, [(0.0, 1.0)])
    with pytest.raises(ValueError, match=r"fmin=900\.0 Hz, fmax=800\.0 Hz; expected"):
        turn_features(
            np.zeros(RATE, np.float32), RATE, [(0.0, 1.0)], params=PitchParams(fmin=900.0)
        )


def test_numba_cache_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "given"))
    assert prosody.numba_cache_dir() == tmp_path / "given"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert prosody.numba_cache_dir() == tmp_path / "xdg" / "improv-annotate" / "numba"
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    chosen = prosody.configure_numba_cache(tmp_path / "mine")
    assert chosen.is_dir()
    assert str(tmp_path / "mine") == numba.config.CACHE_DIR
    assert prosody.numba_cache_dir() == tmp_path / "mine"


def test_room_noise_does_not_move_pitch_features() -> None:
    """Against plain pYIN on the clean render, noise-robust features stay close.

    Sentences with pauses inside, room noise at -55 dBFS.
    """
    text = f"{UTTERANCES[0][3]} {UTTERANCES[4][3]}"
    speech = espeak(text, voice="en-us+m3", pitch=30, rate=150)
    pause = np.zeros(RATE, np.float32)
    clean = np.concatenate([pause, speech, pause])
    noise = 10 ** (-55 / 20) * np.random.default_rng(11).standard_normal(len(clean))
    noisy = (clean + noise).astype(np.float32)
    turn = [(1.0, 1.0 + len(speech) / RATE)]
    f0, voiced, _ = pitch_track(speech)
    truth_median = float(np.median(f0[voiced]))
    truth_st = 12 * np.log2(f0[voiced])
    truth_range = float(np.percentile(truth_st, 95) - np.percentile(truth_st, 5))
    ours = turn_features(noisy, RATE, turn, workers=1)[0]
    plain = turn_features(noisy, RATE, turn, workers=1, skip_silence=False)[0]
    assert prosody.noise_floor_db(noisy, RATE) == pytest.approx(-55.0, abs=1.5)
    assert abs(semitones(ours["f0_median_hz"], truth_median)) < 0.5
    assert abs(ours["f0_range_st"] - truth_range) < 1.5
    # Plain pYIN decodes room noise as voiced near fmin; ours stays nearer the clean value.
    assert abs(ours["f0_range_st"] - truth_range) < abs(plain["f0_range_st"] - truth_range)


def test_skip_silence_off_is_plain_pyin(espeak_turns) -> None:
    audio, turns = espeak_turns
    rows = turn_features(audio, RATE, turns, workers=1, skip_silence=False)
    for (start, end, _), row in zip(turns, rows, strict=True):
        f0, voiced, _ = pitch_track(audio[round(start * RATE) : round(end * RATE)])
        assert row["voiced_fraction"] == pytest.approx(float(voiced.mean()))
        assert row["f0_median_hz"] == pytest.approx(float(np.median(f0[voiced])))
