"""Pitch: the pYIN algorithm (Mauch & Dixon 2014) as ``librosa.pyin`` implements it.

:func:`pitch_track` gives the same probabilities and hidden Markov model as
``librosa.pyin``, decoded by a Viterbi pass that only visits the transition band the model
allows (``librosa.pyin`` visits every pair of states, a cost quadratic in the number of
pitch bins). :class:`PitchParams` holds the settings.

The compiled kernels are numba functions cached on disk: :func:`configure_numba_cache`
points numba at a persistent per-machine folder; call it before numba or librosa is imported
(a command line calls it first thing). A first call with a cold cache compiles for a few
seconds; later processes load the compiled code.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = [
    "ANALYSIS_RATE",
    "PitchParams",
    "configure_numba_cache",
    "frame_view",
    "numba_cache_dir",
    "pitch_track",
    "prepare",
    "warm_up",
]

#: Every turn is analysed on a copy resampled to this rate (Hz).
ANALYSIS_RATE = 16_000
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
    frames = frame_view(y, params.frame_length, params.hop_length)
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


def frame_view(y: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Centred, zero-padded frames of ``y``: (n, frame) view."""
    padded = np.pad(y, frame // 2)
    n = 1 + (len(padded) - frame) // hop
    return np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:n]


def prepare(params: PitchParams) -> None:
    """Check ``params`` (``ValueError`` naming the setting) and compile or load the kernels."""
    _model(params)
    _kernels()
