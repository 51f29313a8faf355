"""Per-turn prosody: duration, pauses, speaking rate, energy, pitch and spectral centroid.

:func:`turn_features` reads one speaker's audio and that speaker's turns and returns one
JSON-ready dict per turn, keyed by :data:`FEATURES`. Pitch comes from :func:`pitch_track`, the
pYIN algorithm (Mauch & Dixon 2014) as ``librosa.pyin`` implements it, with the same
probabilities and hidden Markov model, decoded by a Viterbi pass that only visits the
transition band the model allows (``librosa.pyin`` visits every pair of states, a cost
quadratic in the number of pitch bins). Analysis runs on a 16 kHz copy of each turn only.

The compiled kernels are numba functions cached on disk: :func:`configure_numba_cache`
points numba at a persistent per-machine folder; call it before numba or librosa is imported
(a command line calls it first thing). A first call with a cold cache compiles for a few
seconds; later processes load the compiled code.

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
import functools
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

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

#: Every turn is analysed on a copy resampled to this rate (Hz).
ANALYSIS_RATE = 16_000
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
_CACHE_ENV = "NUMBA_CACHE_DIR"


@dataclass(frozen=True, slots=True)
class PitchParams:
    """pYIN settings; the defaults are librosa.pyin's except the speech band and framing.

    ``fmin``/``fmax`` (Hz) bound the pitch search; ``frame_length``/``hop_length`` are in
    samples at ``sr``; ``resolution`` is the pitch bin width in semitones; the rest are the
    pYIN model's parameters with librosa's meaning.
    """

    sr: int = ANALYSIS_RATE
    fmin: float = 50.0
    fmax: float = 800.0
    frame_length: int = 1024
    hop_length: int = 320
    n_thresholds: int = 100
    beta_parameters: tuple[float, float] = (2.0, 18.0)
    boltzmann_parameter: float = 2.0
    resolution: float = 0.1
    max_transition_rate: float = 35.92
    switch_prob: float = 0.01
    no_trough_prob: float = 0.01

    def check(self) -> None:
        """Raise ``ValueError`` naming the setting that pYIN cannot work with."""
        if not 0 < self.fmin < self.fmax <= self.sr / 2:
            raise ValueError(
                f"pitch band fmin={self.fmin} Hz, fmax={self.fmax} Hz; expected "
                f"0 < fmin < fmax <= {self.sr / 2} Hz (half the rate {self.sr})"
            )
        if self.sr / self.fmin >= self.frame_length - 1:
            raise ValueError(
                f"fmin={self.fmin} Hz does not fit a frame of {self.frame_length} samples at "
                f"{self.sr} Hz; expected fmin > {self.sr / (self.frame_length - 1):.1f} Hz"
            )
        if self.hop_length < 1 or not 0 < self.resolution < 1:
            raise ValueError(
                f"hop_length={self.hop_length}, resolution={self.resolution}; expected "
                "hop_length >= 1 and 0 < resolution < 1"
            )


# --------------------------------------------------------------------------------------
# numba: cache location and the compiled kernels
# --------------------------------------------------------------------------------------


def numba_cache_dir() -> Path:
    """Where numba keeps compiled code: ``$NUMBA_CACHE_DIR`` if set, else the user cache.

    The default is ``$XDG_CACHE_HOME/improv-annotate/numba`` (``~/.cache/...`` when
    ``XDG_CACHE_HOME`` is unset).
    """
    chosen = os.environ.get(_CACHE_ENV)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "improv-annotate" / "numba"


def configure_numba_cache(path: str | Path | None = None) -> Path:
    """Keep numba's compiled code in a persistent folder, so compiling is paid once.

    Call before numba or librosa is imported: numba reads ``NUMBA_CACHE_DIR`` when it is
    imported, and librosa compiles its kernels as it is imported. This module imports numba
    only when it first compiles, so calling this right after importing it is early enough
    for its own kernels.

    Parameters
    ----------
    path : str or Path, optional
        The folder; default :func:`numba_cache_dir` (``$NUMBA_CACHE_DIR`` or the user
        cache).

    Returns
    -------
    Path
        The folder now in use (created if missing).
    """
    folder = Path(path) if path is not None else numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        # Unwritable cache: numba then compiles in memory each run; slower, not wrong.
        return folder
    os.environ[_CACHE_ENV] = str(folder)
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.CACHE_DIR = str(folder)
    return folder


def _troughs_kernel(
    cmndf: np.ndarray,
    thresholds: np.ndarray,
    beta_probs: np.ndarray,
    boltzmann: float,
    no_trough_prob: float,
    min_period: int,
    sr: float,
    fmin: float,
    bins_per_octave: float,
    n_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pYIN observation model per frame, as librosa's ``__pyin_helper``.

    ``cmndf`` is (frames, lags). Returns the voiced candidates in CSR form (``ptr`` of
    length frames + 1, pitch ``bins`` and their ``probs``) and each frame's voiced
    probability. Compiled with numba by :func:`_kernels`.
    """
    n_frames, n_lags = cmndf.shape
    n_thr = beta_probs.shape[0]
    ptr = np.zeros(n_frames + 1, dtype=np.int64)
    cap = n_frames * (n_lags // 2 + 1) + 1
    bins = np.empty(cap, dtype=np.int32)
    probs = np.empty(cap, dtype=np.float64)
    voiced = np.zeros(n_frames, dtype=np.float64)
    trough = np.empty(n_lags, dtype=np.int64)
    trough_prob = np.empty(n_lags, dtype=np.float64)
    norm_base = 1.0 - math.exp(-boltzmann)
    count = 0
    for i in range(n_frames):
        x = cmndf[i]
        n_tr = 0
        for j in range(n_lags):
            if j == 0:
                is_min = n_lags > 1 and x[0] < x[1]
            elif j == n_lags - 1:
                is_min = x[j] < x[j - 1]
            else:
                is_min = x[j] < x[j - 1] and x[j] <= x[j + 1]
            if is_min:
                trough[n_tr] = j
                n_tr += 1
        ptr[i + 1] = count
        if n_tr == 0:
            continue
        global_min = 0
        for m in range(n_tr):
            trough_prob[m] = 0.0
            if x[trough[m]] < x[trough[global_min]]:
                global_min = m
        for k in range(n_thr):
            thr = thresholds[k + 1]
            below = 0
            for m in range(n_tr):
                if x[trough[m]] < thr:
                    below += 1
            if below == 0:
                continue
            scale = norm_base / (1.0 - math.exp(-boltzmann * below)) * beta_probs[k]
            pos = 0
            for m in range(n_tr):
                if x[trough[m]] < thr:
                    trough_prob[m] += scale * math.exp(-boltzmann * pos)
                    pos += 1
        missing = 0.0
        height = x[trough[global_min]]
        for k in range(n_thr):
            if not height < thresholds[k + 1]:
                missing += beta_probs[k]
        trough_prob[global_min] += no_trough_prob * missing
        total = 0.0
        last_bin = -1
        for m in range(n_tr):
            p = trough_prob[m]
            if p <= 0.0:
                continue
            j = trough[m]
            shift = 0.0
            if 0 < j < n_lags - 1:
                a = x[j + 1] + x[j - 1] - 2.0 * x[j]
                b = (x[j + 1] - x[j - 1]) / 2.0
                if abs(b) < abs(a):
                    shift = -b / a
            f0 = sr / (min_period + j + shift)
            b_index = np.rint(bins_per_octave * math.log2(f0 / fmin))
            b_index = min(max(b_index, 0.0), float(n_bins))
            bi = int(b_index)
            if bi >= n_bins:  # above the band: librosa's clip lands it in unvoiced state 0
                continue
            if bi == last_bin:  # same bin as the previous trough: the later one wins
                total -= probs[count - 1]
                probs[count - 1] = p
            else:
                bins[count] = bi
                probs[count] = p
                count += 1
                last_bin = bi
            total += p
        voiced[i] = min(max(total, 0.0), 1.0)
        ptr[i + 1] = count
    return ptr, bins[:count].copy(), probs[:count].copy(), voiced


def _viterbi_kernel(
    ptr: np.ndarray,
    bins: np.ndarray,
    probs: np.ndarray,
    voiced: np.ndarray,
    log_band: np.ndarray,
    log_stay: float,
    log_switch: float,
) -> np.ndarray:
    """Most likely pYIN state path, visiting only the allowed transitions.

    States ``0..n-1`` are voiced pitch bins, ``n..2n-1`` unvoiced ones. ``log_band[k, d]``
    is the log probability of moving from bin ``k`` to bin ``k + d - width // 2`` (a row of
    librosa's ``transition_local`` triangle); voicing stays with ``log_stay`` and switches
    with ``log_switch``. Ties go to the lowest state index, as in ``librosa.sequence``.
    Compiled with numba by :func:`_kernels`.
    """
    n_frames = voiced.shape[0]
    n, width = log_band.shape
    half = width // 2
    n_states = 2 * n
    tiny = 2.2250738585072014e-308
    log_tiny = math.log(tiny)
    log_init = math.log(1.0 / n_states + tiny)
    prev = np.empty(n_states, dtype=np.float64)
    cur = np.empty(n_states, dtype=np.float64)
    obs = np.full(n, log_tiny, dtype=np.float64)
    back = np.empty((max(n_frames, 1), n_states), dtype=np.uint16)
    best_v = np.empty(n, dtype=np.float64)
    arg_v = np.empty(n, dtype=np.int64)
    best_u = np.empty(n, dtype=np.float64)
    arg_u = np.empty(n, dtype=np.int64)
    states = np.zeros(n_frames, dtype=np.int64)
    if n_frames == 0:
        return states
    for t in range(n_frames):
        for c in range(ptr[t], ptr[t + 1]):
            obs[bins[c]] = math.log(probs[c] + tiny)
        log_unvoiced = math.log((1.0 - voiced[t]) / n + tiny)
        if t == 0:
            for j in range(n):
                prev[j] = obs[j] + log_init
                prev[n + j] = log_unvoiced + log_init
        else:
            # Best predecessor of bin j among voiced and among unvoiced states (same band).
            for j in range(n):
                lo = max(0, j - half)
                hi = min(n - 1, j + half)
                bv = -np.inf
                av = lo
                bu = -np.inf
                au = lo
                for k in range(lo, hi + 1):
                    w = log_band[k, j - k + half]
                    v = prev[k] + w
                    if v > bv:
                        bv = v
                        av = k
                    u = prev[n + k] + w
                    if u > bu:
                        bu = u
                        au = k
                best_v[j] = bv
                arg_v[j] = av
                best_u[j] = bu
                arg_u[j] = au
            for j in range(n):
                stay = best_v[j] + log_stay
                switch = best_u[j] + log_switch
                if stay >= switch:
                    cur[j] = obs[j] + stay
                    back[t, j] = arg_v[j]
                else:
                    cur[j] = obs[j] + switch
                    back[t, j] = n + arg_u[j]
                switch = best_v[j] + log_switch
                stay = best_u[j] + log_stay
                if switch >= stay:
                    cur[n + j] = log_unvoiced + switch
                    back[t, n + j] = arg_v[j]
                else:
                    cur[n + j] = log_unvoiced + stay
                    back[t, n + j] = n + arg_u[j]
            for s in range(n_states):
                prev[s] = cur[s]
        for c in range(ptr[t], ptr[t + 1]):
            obs[bins[c]] = log_tiny
    last = 0
    for s in range(n_states):
        if prev[s] > prev[last]:
            last = s
    states[n_frames - 1] = last
    for t in range(n_frames - 2, -1, -1):
        states[t] = back[t + 1, states[t + 1]]
    return states


@functools.cache
def _kernels() -> SimpleNamespace:
    """The numba-compiled kernels (compiled, or loaded from the cache, on first use)."""
    if _CACHE_ENV not in os.environ:
        configure_numba_cache()
    import numba

    jit = numba.njit(cache=True, nogil=True)
    return SimpleNamespace(troughs=jit(_troughs_kernel), viterbi=jit(_viterbi_kernel))


def warm_up() -> None:
    """Compile (or load from the cache) the kernels now, on one second of a test tone."""
    sr = ANALYSIS_RATE
    t = np.arange(sr, dtype=np.float64) / sr
    pitch_track(np.sin(2 * np.pi * 150 * t).astype(np.float32), PitchParams())


# --------------------------------------------------------------------------------------
# pitch
# --------------------------------------------------------------------------------------


@functools.cache
def _model(params: PitchParams) -> SimpleNamespace:
    """Arrays that depend on the settings only: thresholds, priors, transition band."""
    from scipy.special import betainc

    params.check()
    thresholds = np.linspace(0.0, 1.0, params.n_thresholds + 1)
    a, b = params.beta_parameters
    beta_probs = np.diff(betainc(a, b, thresholds))
    bins_per_semitone = int(np.ceil(1.0 / params.resolution))
    n_bins = int(np.floor(12 * bins_per_semitone * np.log2(params.fmax / params.fmin))) + 1
    semitones_per_frame = round(params.max_transition_rate * 12 * params.hop_length / params.sr)
    width = semitones_per_frame * bins_per_semitone + 1
    # librosa.sequence.transition_local(n_bins, width, window="triangle", wrap=False):
    # a symmetric triangle centred on each bin, cut at the edges, each row summing to 1.
    m = np.arange(1, (width + 1) // 2 + 1)
    if width % 2:
        tri = 2 * m / (width + 1.0)
        tri = np.concatenate([tri, tri[-2::-1]])
    else:
        tri = (2 * m - 1.0) / width
        tri = np.concatenate([tri, tri[::-1]])
    half = width // 2
    rows = np.tile(tri, (n_bins, 1))
    targets = np.arange(n_bins)[:, None] + np.arange(width)[None, :] - half
    rows[(targets < 0) | (targets >= n_bins)] = 0.0
    rows /= rows.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_band = np.log(rows)
    freqs = params.fmin * 2 ** (np.arange(n_bins) / (12 * bins_per_semitone))
    return SimpleNamespace(
        thresholds=thresholds,
        beta_probs=beta_probs,
        bins_per_octave=12.0 * bins_per_semitone,
        n_bins=n_bins,
        log_band=np.ascontiguousarray(log_band),
        log_stay=math.log(1.0 - params.switch_prob),
        log_switch=math.log(params.switch_prob),
        freqs=freqs,
        min_period=int(np.floor(params.sr / params.fmax)),
        max_period=min(int(np.ceil(params.sr / params.fmin)), params.frame_length - 1),
    )


def _cmndf(frames: np.ndarray, params: PitchParams, model: SimpleNamespace) -> np.ndarray:
    """Cumulative mean normalised difference, (frames, lags), as librosa's yin/pyin."""
    frame = params.frame_length
    n_frames = len(frames)
    max_period = model.max_period
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=2 * frame, axis=1)
    acf = acf[:, : max_period + 1]
    energy = np.cumsum(np.square(frames[:, :max_period]), axis=1)
    diff = np.empty((n_frames, max_period + 1), dtype=acf.dtype)
    diff[:, 0] = 0
    diff[:, 1:] = 2 * (acf[:, :1] - acf[:, 1:]) - energy
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_period + 1)
    numerator = diff[:, model.min_period : max_period + 1]
    denominator = cumulative[:, model.min_period - 1 : max_period]
    tiny = np.finfo(denominator.dtype).tiny
    return np.ascontiguousarray(numerator / (denominator + tiny))


def pitch_track(
    y: np.ndarray, params: PitchParams | None = None, active: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN fundamental frequency of a mono signal, frame by frame.

    The same model and defaults as ``librosa.pyin(y, sr=..., fmin=..., fmax=...,
    frame_length=..., hop_length=...)`` with centred, zero-padded frames; the result agrees
    with it except where two state paths tie to the last bit.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Audio at ``params.sr``; float32 is analysed in float32, like librosa.
    params : PitchParams, optional
        Band, framing and model settings; default :class:`PitchParams()`.
    active : np.ndarray [shape=(frames,), dtype=bool], optional
        Frames to analyse; the others (silence) are skipped and get no pitch candidates,
        so the model decodes them as unvoiced unless continuity says otherwise. Default all.

    Returns
    -------
    f0 : np.ndarray [shape=(frames,)]
        F0 in Hz, NaN where unvoiced. Frame ``i`` is centred on sample ``i * hop_length``.
    voiced_flag : np.ndarray [shape=(frames,), dtype=bool]
    voiced_prob : np.ndarray [shape=(frames,)]

    Examples
    --------
    >>> t = np.arange(16_000) / 16_000
    >>> f0, voiced, _ = pitch_track(np.sin(2 * np.pi * 200 * t).astype(np.float32))
    >>> f0.shape, round(float(np.nanmedian(f0)))
    ((51,), 200)
    """
    params = params or PitchParams()
    model = _model(params)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"pitch_track expects mono audio (1-D), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float32)
    kernels = _kernels()
    frames = _frames(y, params.frame_length, params.hop_length)
    n_frames = len(frames)
    if active is not None:
        active = np.asarray(active, dtype=bool)
        if active.shape != (n_frames,):
            raise ValueError(f"active has shape {active.shape}; expected ({n_frames},)")
        frames = frames[active]
    ptr, bins, probs, voiced_prob = kernels.troughs(
        _cmndf(frames, params, model),
        model.thresholds,
        model.beta_probs,
        float(params.boltzmann_parameter),
        float(params.no_trough_prob),
        model.min_period,
        float(params.sr),
        float(params.fmin),
        model.bins_per_octave,
        model.n_bins,
    )
    if active is not None:  # inactive frames: no candidates, voiced probability 0
        counts = np.zeros(n_frames, dtype=np.int64)
        counts[active] = np.diff(ptr)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        full = np.zeros(n_frames)
        full[active] = voiced_prob
        voiced_prob = full
    states = kernels.viterbi(
        ptr, bins, probs, voiced_prob, model.log_band, model.log_stay, model.log_switch
    )
    voiced_flag = states < model.n_bins
    f0 = model.freqs[states % model.n_bins]
    f0[~voiced_flag] = np.nan
    return f0, voiced_flag, voiced_prob


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def _resample(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` at :data:`ANALYSIS_RATE`, float32 (soxr, high quality)."""
    if sr == ANALYSIS_RATE:
        return np.asarray(y, dtype=np.float32)
    import soxr  # librosa's resampler; installed with it

    return soxr.resample(y.astype(np.float32, copy=False), sr, ANALYSIS_RATE, quality="HQ")


def _frames(y: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Centred, zero-padded frames of ``y``: (n, frame) view."""
    padded = np.pad(y, frame // 2)
    n = 1 + (len(padded) - frame) // hop
    return np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:n]


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
    frames = _frames(y, _ENERGY_FRAME, _ENERGY_HOP)
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

    pitch_frames = _frames(y, params.frame_length, params.hop_length)
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
    _model(params)  # validate the settings before any work
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

    _kernels()
    n_workers = _default_workers() if workers is None else max(1, int(workers))
    if n_workers == 1 or len(spans) < 2:
        return [one(i) for i in range(len(spans))]
    # Longest first keeps the threads evenly loaded; results go back in turn order.
    order = sorted(range(len(spans)), key=lambda i: spans[i][0] - spans[i][1])
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = dict(zip(order, pool.map(one, order), strict=True))
    return [results[i] for i in range(len(spans))]
