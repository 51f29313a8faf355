"""Voice activity from frame energy, for sessions that come without a transcript.

The threshold is set from each channel's noise floor (a low percentile of its frame levels)
plus a margin, not from the peak: a peak-relative threshold (``librosa.effects.split``'s
``top_db``) sits below the floor of a noisy recording and turns the whole file into one
segment. Hysteresis (a lower threshold to continue a segment than to start one), a minimum
silence (shorter gaps are bridged) and a minimum speech length (shorter blips dropped) make
the segments turn-like.

When each performer has a channel of their own (see
:func:`importers.channels.channel_roles`), segments are found per channel, and a channel
speaks in a frame only if it is within ``own_db`` of the loudest channel: the other
performer's voice bleeding into a microphone (typically 15-30 dB down) never makes a turn,
while overlapping speech (both channels loud) gives both performers a turn.

Example
-------
>>> import numpy as np
>>> sr = 16_000
>>> rng = np.random.default_rng(440)
>>> audio = 0.001 * rng.standard_normal(3 * sr).astype(np.float32)
>>> t = np.arange(sr) / sr
>>> audio[sr : 2 * sr] += 0.3 * np.sin(2 * np.pi * 200 * t)
>>> [(round(a.start, 2), round(a.end, 2), a.channel) for a in voice_activity(audio, sr)]
[(0.98, 2.02, None)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np

from importers.channels import channel_roles
from schemas.errors import MediaError
from schemas.records import Turn

__all__ = [
    "UNKNOWN_SPEAKER",
    "Activity",
    "frame_levels",
    "noise_floor",
    "segments_to_turns",
    "voice_activity",
]

#: Speaker of the turns found in a mono (or one-mix) recording.
UNKNOWN_SPEAKER = "unknown"
# Levels are floored here (dBFS), so digital silence is finite.
_SILENCE_DB = -120.0
# Frames per chunk in frame_levels: bounds the temporary framed copy librosa makes
# (6,000 frames x 400 samples x 4 bytes = 9.6 MB at 16 kHz).
_CHUNK_FRAMES = 6_000


@dataclass(frozen=True, slots=True)
class Activity:
    """A stretch of voice activity: seconds from the start of the audio, and the channel
    that carries it (``None`` when the channels hold one mix)."""

    start: float
    end: float
    channel: int | None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return round(self.end - self.start, 6)


def frame_levels(
    audio: np.ndarray,
    sr: int,
    *,
    frame_seconds: float = 0.025,
    hop_seconds: float = 0.010,
    downmix: bool = False,
) -> np.ndarray:
    """Frame RMS level in dBFS per channel (``librosa.feature.rms``), computed in chunks.

    Memory: the levels plus one chunk of frames (about 10 MB), whatever the length.

    Parameters
    ----------
    audio : numpy.ndarray
        Shape (channels, samples) or (samples,), float.
    sr : int
        Sample rate in Hz.
    frame_seconds, hop_seconds : float
        Frame length and hop in seconds; frame ``t`` is centred at ``t * hop_seconds``.
    downmix : bool
        Levels of the channels' average (one row), mixed chunk by chunk.

    Returns
    -------
    numpy.ndarray
        float32, shape (channels, 1 + samples // hop) (one row if ``downmix``), in dB
        (silence floored at -120 dB).
    """
    audio = np.atleast_2d(audio)
    channels, n = audio.shape
    if downmix:
        channels = 1
    frame = max(2, round(frame_seconds * sr))
    hop = max(1, round(hop_seconds * sr))
    half = frame // 2
    n_frames = 1 + n // hop
    levels = np.empty((channels, n_frames), dtype=np.float32)
    for t0 in range(0, n_frames, _CHUNK_FRAMES):
        t1 = min(n_frames, t0 + _CHUNK_FRAMES)
        lo, hi = t0 * hop - half, (t1 - 1) * hop - half + frame
        chunk = np.asarray(audio[:, max(lo, 0) : min(hi, n)], dtype=np.float32)
        if downmix:
            chunk = chunk.mean(axis=0, keepdims=True)
        chunk = np.pad(chunk, ((0, 0), (max(0, -lo), max(0, hi - n))))
        rms = librosa.feature.rms(y=chunk, frame_length=frame, hop_length=hop, center=False)
        levels[:, t0:t1] = librosa.amplitude_to_db(
            rms[:, 0, :], ref=1.0, amin=10 ** (_SILENCE_DB / 20), top_db=None
        )
    return levels


def noise_floor(levels: np.ndarray, percentile: float = 5.0) -> np.ndarray:
    """Noise floor in dB per channel: the ``percentile`` of the frame levels.

    Parameters
    ----------
    levels : numpy.ndarray
        Shape (channels, frames), from :func:`frame_levels`.
    percentile : float
        Low percentile; the recording must be quiet at least this share of the time.

    Returns
    -------
    numpy.ndarray
        Shape (channels,).
    """
    return np.percentile(levels, percentile, axis=-1)


def _runs(mask: np.ndarray) -> np.ndarray:
    """(start, stop) frame indices of the runs of True in a 1-D mask, shape (runs, 2)."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _segments(
    start_mask: np.ndarray,
    keep_mask: np.ndarray,
    min_speech: int,
    min_silence: int,
) -> list[tuple[int, int]]:
    """Hysteresis, gap bridging and short-segment removal, all in frames."""
    runs = _runs(keep_mask)
    started = np.concatenate(([0], np.cumsum(start_mask)))
    runs = runs[started[runs[:, 1]] - started[runs[:, 0]] > 0]
    merged: list[list[int]] = []
    for s, e in runs.tolist():
        if merged and s - merged[-1][1] < min_silence:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged if e - s >= min_speech]


def voice_activity(
    audio: np.ndarray,
    sr: int,
    *,
    separate: bool | None = None,
    frame_seconds: float = 0.025,
    hop_seconds: float = 0.010,
    floor_percentile: float = 5.0,
    margin_db: float = 10.0,
    hysteresis_db: float = 4.0,
    range_db: float = 60.0,
    min_speech: float = 0.15,
    min_silence: float = 0.2,
    own_db: float = 10.0,
) -> list[Activity]:
    """Stretches of voice activity in a recording, per channel when channels are separate.

    A frame is voiced on a channel when its level is more than ``margin_db`` above that
    channel's noise floor (a segment continues down to ``margin_db - hysteresis_db``). On
    digital silence the floor is meaningless, so the threshold never drops below the
    channel's peak level minus ``range_db``. Gaps shorter than ``min_silence`` are bridged,
    then segments shorter than ``min_speech`` dropped. With separate channels a channel
    also has to be within ``own_db`` of the loudest channel in that frame, so bleed from
    the other performer's microphone is not a turn.

    Parameters
    ----------
    audio : numpy.ndarray
        Shape (channels, samples) or (samples,), float (as from
        :func:`importers.media.read_audio`).
    sr : int
        Sample rate in Hz.
    separate : bool, optional
        One performer per channel; ``None`` decides with
        :func:`importers.channels.channel_roles`. When False the channels are averaged and
        the activities have ``channel=None``.
    frame_seconds, hop_seconds : float
        Analysis frame and hop in seconds.
    floor_percentile : float
        Percentile of the frame levels taken as the noise floor.
    margin_db, hysteresis_db, range_db, own_db : float
        Thresholds in dB, see above.
    min_speech, min_silence : float
        Minimum segment and minimum gap, in seconds.

    Returns
    -------
    list of Activity
        Sorted by start time, then channel.
    """
    audio = np.atleast_2d(audio)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise MediaError(
            f"audio of shape {audio.shape}; expected (channels, samples) with samples > 0"
        )
    if sr <= 0:
        raise MediaError(f"sample rate {sr!r}; expected a positive number of Hz")
    channels = audio.shape[0]
    if separate is None:
        separate = channels > 1 and channel_roles(audio, sr).separate
    levels = frame_levels(
        audio,
        sr,
        frame_seconds=frame_seconds,
        hop_seconds=hop_seconds,
        downmix=channels > 1 and not separate,
    )
    floors = noise_floor(levels, floor_percentile)
    peaks = levels.max(axis=1)
    high = np.maximum(floors + margin_db, peaks - range_db)
    low = high - hysteresis_db
    owned = np.ones_like(levels, dtype=bool)
    if levels.shape[0] > 1:
        owned = levels >= levels.max(axis=0, keepdims=True) - own_db
    n = audio.shape[1]
    found: list[Activity] = []
    for c in range(levels.shape[0]):
        segments = _segments(
            (levels[c] >= high[c]) & owned[c],
            (levels[c] >= low[c]) & owned[c],
            max(1, round(min_speech / hop_seconds)),
            max(1, round(min_silence / hop_seconds)),
        )
        channel = c if levels.shape[0] > 1 else None
        for s, e in segments:
            start = max(0.0, (s - 0.5) * hop_seconds)
            end = min(n / sr, (e - 0.5) * hop_seconds)
            found.append(Activity(round(start, 4), round(end, 4), channel))
    return sorted(found, key=lambda a: (a.start, -1 if a.channel is None else a.channel))


def segments_to_turns(
    activities: Sequence[Activity],
    session_id: str,
    *,
    speakers: Sequence[str] | None = None,
) -> tuple[Turn, ...]:
    """Turns with unknown text (``""``) from voice activity, in time order.

    Parameters
    ----------
    activities : sequence of Activity
        From :func:`voice_activity`.
    session_id : str
        The session the turns belong to (turn ids ``f"{session_id}-t{index:05d}"``).
    speakers : sequence of str, optional
        Speaker (performer id) of each channel; by default the channel index as a string
        (``"0"``, ``"1"``). Activities without a channel get :data:`UNKNOWN_SPEAKER`.

    Returns
    -------
    tuple of Turn
        Times rounded to milliseconds.
    """
    ordered = sorted(activities, key=lambda a: (a.start, -1 if a.channel is None else a.channel))
    turns = []
    for index, act in enumerate(ordered):
        if act.channel is None:
            speaker = UNKNOWN_SPEAKER
        elif speakers is None:
            speaker = str(act.channel)
        elif 0 <= act.channel < len(speakers):
            speaker = speakers[act.channel]
        else:
            raise MediaError(
                f"activity at {act.start:.3f} s is on channel {act.channel}; expected a "
                f"channel below {len(speakers)} (the speakers given: {list(speakers)})"
            )
        turns.append(
            Turn.make(session_id, index, speaker, round(act.start, 3), round(act.end, 3), "")
        )
    return tuple(turns)
