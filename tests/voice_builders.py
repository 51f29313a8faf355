"""Seeded builders of voice-like test audio with known pitch, and espeak-ng speech.

:func:`harmonic_voice` synthesises a vowel from a known F0 contour: a harmonic series
(glottal-pulse-like 1/k spectrum) with jitter and shimmer, shaped by formant resonators,
plus background noise and optional unvoiced gaps. :func:`espeak` renders real synthetic
speech with the espeak-ng command (Debian package ``espeak-ng``).

Example
-------
>>> f0 = glide(1.0, 120.0, 180.0)
>>> y = harmonic_voice(f0, rng=np.random.default_rng(440))
>>> y.dtype, y.shape, bool(np.abs(y).max() <= 1.0)
(dtype('float32'), (16000,), True)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import lfilter

RATE = 16_000
SEED = 440
#: Formant (frequency Hz, bandwidth Hz) of an /a/-like vowel.
VOWEL_A = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0))


def glide(duration: float, start_hz: float, end_hz: float, sr: int = RATE) -> np.ndarray:
    """An F0 contour per sample moving linearly in semitones from ``start_hz`` to ``end_hz``.

    Its slope is ``12 * log2(end_hz / start_hz) / duration`` semitones per second.
    """
    n = round(duration * sr)
    return start_hz * (end_hz / start_hz) ** (np.arange(n) / max(n - 1, 1))


def harmonic_voice(
    f0: np.ndarray,
    sr: int = RATE,
    *,
    rng: np.random.Generator | None = None,
    jitter: float = 0.005,
    shimmer: float = 0.05,
    noise_db: float = -35.0,
    amplitude: float = 0.3,
    formants: Sequence[tuple[float, float]] = VOWEL_A,
    voiced: np.ndarray | None = None,
) -> np.ndarray:
    """A sustained vowel following the F0 contour ``f0`` (Hz per sample).

    Parameters
    ----------
    f0 : np.ndarray [shape=(n,)]
        Fundamental frequency of each sample, Hz.
    sr : int
        Sample rate, Hz.
    rng : numpy.random.Generator, optional
        Randomness for jitter, shimmer and noise; default seeded with :data:`SEED`.
    jitter : float
        Relative random F0 deviation per glottal cycle (0.005 = 0.5 %).
    shimmer : float
        Relative random amplitude deviation per glottal cycle.
    noise_db : float
        White background noise level relative to ``amplitude``, dB.
    amplitude : float
        Peak level of the voiced part (full scale 1.0).
    formants : sequence of (Hz, bandwidth Hz)
        Resonators applied in cascade.
    voiced : np.ndarray [shape=(n,), dtype=bool], optional
        Where the voice sounds; elsewhere only the noise (an unvoiced gap).

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    rng = rng if rng is not None else np.random.default_rng(SEED)
    f0 = np.asarray(f0, dtype=np.float64)
    n = len(f0)
    # One random deviation per ~10 ms (about a glottal cycle), held in between.
    steps = max(1, n // (sr // 100) + 1)
    hold = np.repeat(rng.standard_normal(steps), sr // 100)[:n]
    hold_amp = np.repeat(rng.standard_normal(steps), sr // 100)[:n]
    inst = f0 * (1.0 + jitter * hold)
    phase = 2 * np.pi * np.cumsum(inst) / sr
    top = int(min(4000.0, sr / 2 - 200) / max(float(f0.min()), 1.0))
    source = np.zeros(n)
    for k in range(1, max(top, 1) + 1):
        below = inst * k < sr / 2 - 200
        source += below * np.sin(k * phase) / k
    source *= 1.0 + shimmer * hold_amp
    y = source
    for freq, bandwidth in formants:
        r = np.exp(-np.pi * bandwidth / sr)
        theta = 2 * np.pi * freq / sr
        a = [1.0, -2 * r * np.cos(theta), r * r]
        y = lfilter([1.0 - r], a, y)
    if voiced is not None:
        ramp = np.convolve(voiced.astype(float), np.hanning(161) / np.hanning(161).sum(), "same")
        y = y * ramp
    y = amplitude * y / max(float(np.abs(y).max()), 1e-12)
    y = y + amplitude * 10 ** (noise_db / 20) * rng.standard_normal(n)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def fricative(
    duration: float,
    sr: int = RATE,
    *,
    rng: np.random.Generator | None = None,
    amplitude: float = 0.1,
) -> np.ndarray:
    """An /s/-like unvoiced hiss: white noise high-passed above ~3 kHz (no pitch)."""
    rng = rng if rng is not None else np.random.default_rng(SEED)
    noise = rng.standard_normal(round(duration * sr))
    y = lfilter([1.0, -1.0], [1.0, -0.3], lfilter([1.0, -1.0], [1.0], noise))
    return (amplitude * y / max(float(np.abs(y).max()), 1e-12)).astype(np.float32)


def espeak(
    text: str,
    *,
    voice: str = "en-us+m3",
    pitch: int = 50,
    rate: int = 175,
    amplitude: int = 100,
    sr: int = RATE,
) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at ``sr``.

    ``pitch`` is espeak's 0-99 scale, ``rate`` words per minute, ``amplitude`` 0-200.
    Raises ``RuntimeError`` when espeak-ng is missing or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found on PATH; install the Debian package espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "say.wav"
        cmd = [exe, "-v", voice, "-p", str(pitch), "-s", str(rate), "-a", str(amplitude)]
        done = subprocess.run(
            [*cmd, "-w", str(out), text], capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"espeak-ng failed ({done.returncode}): {done.stderr.strip()}")
        y, native = sf.read(str(out), dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    if native != sr:
        y = soxr.resample(y, native, sr, quality="HQ")
    return np.asarray(y, dtype=np.float32)
