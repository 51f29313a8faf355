"""Per-turn prosody: duration, pauses, speaking rate, energy, pitch and spectral centroid.

:func:`turn_features` reads one speaker's audio and that speaker's turns and returns one
JSON-ready dict per turn, keyed by :data:`FEATURES`. Pitch comes from
:func:`importers.pitch.pitch_track` (pYIN as ``librosa.pyin`` computes it, with a banded
Viterbi pass and numba kernels cached on disk; see :mod:`importers.pitch`, whose public
names are also importable from here). Analysis runs on a 16 kHz copy of each turn only.

Example
-------
>>> import numpy as np
>>> sr = 16_000
>>> t = np.arange(2 * sr) / sr
>>> voice = (0.3 * np.sign(np.sin(2 * np.pi * 120 * t)) * (t < 1.0)).astype(np.float32)
>>> rows = turn_features(voice, sr, [(0.0, 1.0, "one two three"), (1.2, 1.8)], workers=1)
>>> round(rows[0]["f0_median_hz"]), rows[0]["words_per_s"], round(rows[1]["pause_before_s"], 3)
(120, 3.0, 0.2)
>>> rows[1]["f0_median_hz"] is None  # silence: no pitch
True
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from importers.pitch import (
    ANALYSIS_RATE,
    PitchParams,
    configure_numba_cache,
    frame_view,
    numba_cache_dir,
    pitch_track,
    prepare,
    warm_up,
)
from schemas.errors import SessionError

__all__ = [
    "ANALYSIS_RATE",
    "FEATURES",
    "PitchParams",
    "configure_numba_cache",
    "noise_floor_db",
    "numba_cache_dir",
    "pitch_track",
    "turn_features",
    "warm_up",
]

#: The features of a turn, in output order. Units are in the names:
#:
#: ``duration_s``          end - start, seconds.
#: ``pause_before_s``      seconds from the end of the latest earlier turn of any speaker to
#:                         this turn's start; negative when they overlap; None for the first.
#: ``words_per_s``         words of the turn's text per second; None when no text is given.
#: ``syllables_per_s``     acoustic speaking rate: syllable nuclei (voiced intensity peaks
#:                         with a dip of at least 2 dB on each side) per second.
#: ``energy_db_mean``      RMS level of the turn, dB re full scale (10 log10 of mean power).
#: ``energy_db_range``     95th minus 5th percentile of the 32 ms frame levels (10 ms apart),
#:                         dB; levels more than 60 dB below the loudest frame count as 60.
#: ``f0_median_hz``        median F0 of the voiced frames, Hz.
#: ``f0_range_st``         95th minus 5th percentile of voiced F0, semitones.
#: ``f0_slope_st_per_s``   least-squares slope of voiced F0 against time, semitones/second.
#: ``f0_std_st``           standard deviation of voiced F0, semitones.
#: ``voiced_fraction``     voiced pitch frames / all pitch frames of the turn (0-1).
#:
#: Pitch frames (64 ms) within 10 dB of the recording's noise floor (:func:`noise_floor_db`)
#: and more than 25 dB below the turn's loud frames (95th percentile) are silence: pYIN
#: skips them (``skip_silence=False`` turns this and the next rule off).
#: Voiced frames are pYIN's, less the voiced runs without one frame whose voiced probability
#: exceeds twice pYIN's no-trough fallback (pYIN decodes noise as voiced near ``fmin``).
#: ``spectral_centroid_hz`` mean spectral centroid of the frames within 40 dB of the turn's
#:                         loudest frame, Hz, on the 16 kHz analysis copy (0-8 kHz band).
#:
#: The five ``f0_*`` fields are None when fewer than :data:`MIN_VOICED_FRAMES` frames are
#: voiced; the acoustic fields are None for a turn without samples.
FEATURES: tuple[str, ...] = (
    "duration_s",
    "pause_before_s",
    "words_per_s",
    "syllables_per_s",
    "energy_db_mean",
    "energy_db_range",
    "f0_median_hz",
    "f0_range_st",
    "f0_slope_st_per_s",
    "f0_std_st",
    "voiced_fraction",
    "spectral_centroid_hz",
)
PITCH_FEATURES = ("f0_median_hz", "f0_range_st", "f0_slope_st_per_s", "f0_std_st")

#: A turn needs this many voiced pitch frames (20 ms apart) to get pitch features.
MIN_VOICED_FRAMES = 3
#: Turn ends may pass the end of the audio by this much (decoders differ by a few samples);
#: the turn is cut at the end of the audio. Further is an error.
END_TOLERANCE_S = 0.05

_ENERGY_FRAME = 512  # 32 ms at 16 kHz
_ENERGY_HOP = 160  # 10 ms
_POWER_FLOOR = 1e-10  # -100 dB re full scale
_CENTROID_SPAN_DB = 40.0
_RANGE_WINDOW_DB = 60.0
_SILENCE_ABOVE_FLOOR_DB = 10.0
_SILENCE_BELOW_PEAK_DB = 25.0
_NUCLEUS_DIP_DB = 2.0
_NUCLEUS_FLOOR_DB = 25.0  # peaks within this of the turn's 99th-percentile level
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def _resample(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` at :data:`ANALYSIS_RATE`, float32 (soxr, high quality)."""
    if sr == ANALYSIS_RATE:
        return np.asarray(y, dtype=np.float32)
    import soxr  # librosa's resampler; installed with it

    return soxr.resample(y.astype(np.float32, copy=False), sr, ANALYSIS_RATE, quality="HQ")


def _nuclei(level_db: np.ndarray, voiced_at: Callable[[int], bool]) -> int:
    """Syllable nuclei: voiced level peaks with a dip of 2 dB to the neighbouring peak.

    After de Jong & Wempe (2009): peaks within 25 dB of the turn's 99th-percentile level,
    a peak kept only when the dip between it and the next kept peak is at least 2 dB
    (otherwise the higher of the two stays a candidate), then only voiced peaks counted.
    """
    if len(level_db) < 3:
        return 0
    floor = np.percentile(level_db, 99) - _NUCLEUS_FLOOR_DB
    inner = level_db[1:-1]
    is_peak = (inner > level_db[:-2]) & (inner >= level_db[2:]) & (inner >= floor)
    peaks = np.flatnonzero(is_peak) + 1
    kept: list[int] = []
    candidate = -1
    for p in peaks:
        if candidate < 0:
            candidate = int(p)
            continue
        dip = float(level_db[candidate:p].min())
        if level_db[candidate] - dip >= _NUCLEUS_DIP_DB and level_db[p] - dip >= _NUCLEUS_DIP_DB:
            kept.append(candidate)
            candidate = int(p)
        elif level_db[p] > level_db[candidate]:
            candidate = int(p)
    if candidate >= 0:
        kept.append(candidate)
    return sum(1 for p in kept if voiced_at(p))


def noise_floor_db(audio: np.ndarray, sr: int) -> float:
    """A recording's noise floor: the 10th percentile of its 64 ms block levels, dB re full scale.

    Blocks of digital silence count at -100 dB. Pauses and the other performers' turns
    make up much of a performer's channel, so this is the level of the room (and bleed).
    """
    block = max(1, round(0.064 * sr))
    n = len(audio) // block
    if n == 0:
        return 10 * math.log10(_POWER_FLOOR)
    blocks = np.asarray(audio[: n * block], dtype=np.float32).reshape(n, block)
    power = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / block
    return float(np.percentile(10 * np.log10(np.maximum(power, _POWER_FLOOR)), 10))


def _silence_db(level_db: np.ndarray, floor_db: float) -> float:
    """Level (dB) under which a pitch frame of a turn counts as silence and is skipped.

    Within :data:`_SILENCE_ABOVE_FLOOR_DB` of the recording's noise floor, but never closer
    than :data:`_SILENCE_BELOW_PEAK_DB` to the turn's loud frames (95th percentile), so a
    loud floor (bleed, a noisy room) does not take quiet voiced frames.
    """
    loud = float(np.percentile(level_db, 95))
    return max(
        min(floor_db + _SILENCE_ABOVE_FLOOR_DB, loud - _SILENCE_BELOW_PEAK_DB),
        10 * math.log10(_POWER_FLOOR),
    )


def _confident_runs(voiced: np.ndarray, voiced_prob: np.ndarray, floor: float) -> np.ndarray:
    """``voiced`` without the runs in which no frame's voiced probability exceeds ``floor``.

    pYIN gives every frame without a YIN trough under any threshold a voiced probability of
    at most ``no_trough_prob`` at the deepest lag, and its HMM spreads the unvoiced
    probability over all pitch bins, so it decodes noise and room tone as voiced near
    ``fmin``. A voiced run needs one frame above ``floor`` (twice that fallback) to count.
    """
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    kept = voiced.copy()
    for a, b in zip(starts, ends, strict=True):
        if voiced_prob[a:b].max() <= floor:
            kept[a:b] = False
    return kept


def _acoustic(
    y: np.ndarray, duration: float, params: PitchParams, floor_db: float | None
) -> dict[str, float | None]:
    """Energy, rate, pitch and centroid of one turn's 16 kHz samples."""
    out: dict[str, float | None] = dict.fromkeys(FEATURES[3:])
    if len(y) == 0:
        return out
    y64 = y.astype(np.float64)
    out["energy_db_mean"] = 10 * math.log10(max(float(np.mean(y64 * y64)), _POWER_FLOOR))
    frames = frame_view(y, _ENERGY_FRAME, _ENERGY_HOP)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / _ENERGY_FRAME
    level_db = 10 * np.log10(np.maximum(power, _POWER_FLOOR))
    # Silence (digital zero in synthetic audio) would set the range alone: clip the frame
    # levels to a window of _RANGE_WINDOW_DB below the loudest frame.
    p5, p95 = np.percentile(np.maximum(level_db, level_db.max() - _RANGE_WINDOW_DB), [5, 95])
    out["energy_db_range"] = float(p95 - p5)

    window = np.hanning(_ENERGY_FRAME + 2)[1:-1].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(_ENERGY_FRAME, 1.0 / ANALYSIS_RATE)
    total = spectrum.sum(axis=1)
    loud = (level_db >= level_db.max() - _CENTROID_SPAN_DB) & (power > _POWER_FLOOR)
    loud &= total > 0
    if loud.any():
        centroid = (spectrum[loud] @ freqs) / total[loud]
        out["spectral_centroid_hz"] = float(centroid.mean())

    pitch_frames = frame_view(y, params.frame_length, params.hop_length)
    pitch_power = np.einsum("ij,ij->i", pitch_frames, pitch_frames, dtype=np.float64)
    pitch_db = 10 * np.log10(np.maximum(pitch_power / params.frame_length, _POWER_FLOOR))
    if floor_db is None:
        f0, voiced, _ = pitch_track(y, params)
    else:
        active = pitch_db > _silence_db(pitch_db, floor_db)
        f0, voiced, voiced_prob = pitch_track(y, params, active=active)
        voiced = _confident_runs(voiced, voiced_prob, 2 * params.no_trough_prob)
    out["voiced_fraction"] = float(voiced.mean()) if len(voiced) else None
    ratio = params.hop_length / _ENERGY_HOP * params.sr / ANALYSIS_RATE

    def voiced_at(i: int) -> bool:
        k = round(i / ratio)
        return 0 <= k < len(voiced) and bool(voiced[k])

    if duration > 0:
        # Smooth over 30 ms so that pitch periods inside a frame make no peaks of their own.
        smooth = np.convolve(power, np.ones(3) / 3, mode="same")
        smooth_db = 10 * np.log10(np.maximum(smooth, _POWER_FLOOR))
        out["syllables_per_s"] = _nuclei(smooth_db, voiced_at) / duration
    if int(voiced.sum()) >= MIN_VOICED_FRAMES:
        st = 12 * np.log2(f0[voiced])
        times = np.flatnonzero(voiced) * params.hop_length / params.sr
        out["f0_median_hz"] = float(np.median(f0[voiced]))
        lo, hi = np.percentile(st, [5, 95])
        out["f0_range_st"] = float(hi - lo)
        out["f0_std_st"] = float(np.std(st))
        centred = times - times.mean()
        out["f0_slope_st_per_s"] = float(centred @ (st - st.mean()) / (centred @ centred))
    return out


def _pauses(
    spans: Sequence[tuple[float, float]], context: Sequence[tuple[float, float]]
) -> list[float | None]:
    """For each span: its start minus the latest end of the ``context`` spans starting earlier.

    None when no context span starts earlier; negative when the speakers overlap.
    """
    ordered = sorted(context)
    starts = [s for s, _ in ordered]
    latest = np.maximum.accumulate([e for _, e in ordered]) if ordered else np.zeros(0)
    pauses: list[float | None] = []
    for start, _ in spans:
        k = bisect.bisect_left(starts, start)
        pauses.append(None if k == 0 else start - float(latest[k - 1]))
    return pauses


def _spans(turns: Sequence[Sequence[Any]], what: str) -> list[tuple[float, float]]:
    """(start, end) of each turn, checked: numbers, 0 <= start <= end."""
    spans = []
    for i, turn in enumerate(turns):
        try:
            start, end = float(turn[0]), float(turn[1])
        except (TypeError, ValueError, IndexError):
            raise SessionError(
                f"{what}[{i}]: {turn!r}; expected (start, end[, text]) in seconds"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise SessionError(
                f"{what}[{i}]: start {start!r} s, end {end!r} s; expected 0 <= start <= end"
            )
        spans.append((start, end))
    return spans


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def turn_features(
    audio: np.ndarray,
    sr: int,
    turns: Sequence[Sequence[Any]],
    *,
    all_turns: Sequence[Sequence[Any]] | None = None,
    params: PitchParams | None = None,
    workers: int | None = None,
    skip_silence: bool = True,
    noise_floor: float | None = None,
) -> list[dict[str, float | None]]:
    """Prosody features of each turn of one speaker.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        That speaker's mono audio (their channel, or the mix for a one-channel recording),
        float, full scale 1.0, starting at time 0 of the session.
    sr : int
        Sample rate of ``audio`` in Hz; turns are resampled to 16 kHz for analysis, so
        passing 16 kHz audio saves that step.
    turns : sequence of (start, end) or (start, end, text)
        The speaker's turns in seconds; ``text`` (str or None) gives ``words_per_s``.
    all_turns : sequence of (start, end[, ...]), optional
        Every turn of the session, any speaker, for ``pause_before_s``; default ``turns``.
    params : PitchParams, optional
        Pitch band and pYIN settings; default 50-800 Hz, 1024-sample frames, 20 ms hop.
    workers : int, optional
        Threads analysing turns in parallel (the kernels release the GIL); default the
        number of usable cores.
    skip_silence : bool
        Skip pitch frames near the noise floor and drop voiced runs without one confident
        frame (see :data:`FEATURES`); False gives plain pYIN, as ``librosa.pyin``.
    noise_floor : float, optional
        The recording's noise floor in dB re full scale; default :func:`noise_floor_db` of
        ``audio``.

    Returns
    -------
    list of dict
        One dict per turn, in the order of ``turns``, with the keys of :data:`FEATURES`;
        values are floats or None (never NaN), ready for JSON.

    Raises
    ------
    SessionError
        A turn is not (start, end) with 0 <= start <= end, or ends more than
        :data:`END_TOLERANCE_S` after the audio.
    ValueError
        ``audio`` is not 1-D float, ``sr`` is not positive, or ``params`` is unusable.
    """
    params = params or PitchParams()
    if params.sr != ANALYSIS_RATE:
        raise ValueError(f"params.sr={params.sr}; turn_features analyses at {ANALYSIS_RATE} Hz")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(
            f"audio of shape {audio.shape}; expected one channel (1-D), e.g. audio[:, 0]"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(
            f"audio of dtype {audio.dtype}; expected float samples with full scale 1.0"
        )
    if not sr or sr <= 0 or int(sr) != sr:
        raise ValueError(f"sample rate {sr!r}; expected a positive whole number of Hz")
    sr = int(sr)
    prepare(params)  # validate the settings and load the kernels before any work
    spans = _spans(turns, "turns")
    context = spans if all_turns is None else _spans(all_turns, "all_turns")
    audio_end = len(audio) / sr
    for i, (_, end) in enumerate(spans):
        if end > audio_end + END_TOLERANCE_S:
            raise SessionError(
                f"turns[{i}]: ends at {end:.3f} s, after the end of the audio "
                f"({audio_end:.3f} s); expected turns within the audio"
            )
    pauses = _pauses(spans, context)
    floor_db = None
    if skip_silence:
        floor_db = noise_floor_db(audio, sr) if noise_floor is None else float(noise_floor)

    def one(i: int) -> dict[str, float | None]:
        start, end = spans[i]
        text = turns[i][2] if len(turns[i]) > 2 else None
        lo = min(round(start * sr), len(audio))
        hi = min(round(end * sr), len(audio))
        y = _resample(audio[lo:hi], sr) if hi > lo else np.zeros(0, np.float32)
        duration = end - start
        row: dict[str, float | None] = {
            "duration_s": duration,
            "pause_before_s": pauses[i],
            "words_per_s": None,
        }
        if text is not None and duration > 0:
            row["words_per_s"] = len(_WORD.findall(str(text))) / duration
        row.update(_acoustic(y, duration, params, floor_db))
        return {name: row[name] for name in FEATURES}

    n_workers = _default_workers() if workers is None else max(1, int(workers))
    if n_workers == 1 or len(spans) < 2:
        return [one(i) for i in range(len(spans))]
    # Longest first keeps the threads evenly loaded; results go back in turn order.
    order = sorted(range(len(spans)), key=lambda i: spans[i][0] - spans[i][1])
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = dict(zip(order, pool.map(one, order), strict=True))
    return [results[i] for i in range(len(spans))]
