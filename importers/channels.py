"""Channel roles: a stereo recording with one performer per channel (a video call, two
lavalier microphones) told from plain stereo of one mix, by the channels' frame levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelLayout", "channel_roles"]


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """How a recording's channels relate, and the figures that decided it.

    ``kind`` is ``"mono"`` (one channel), ``"mix"`` (one mix on every channel: plain or
    panned stereo) or ``"separate"`` (one performer per channel). Figures over the active
    frames (the loudest channel above its noise floor): ``co_activity``, the fraction where
    the two loudest channels are within ``near_db`` of each other; ``level_difference``,
    the median dB gap between them; ``energy_correlation``, the Pearson correlation of the
    channels' frame levels (dB) over all frames (lowest pair); ``owner_share``, the fraction
    of active frames each channel is loudest in.
    """

    kind: str
    channels: int
    co_activity: float
    level_difference: float
    energy_correlation: float
    owner_share: tuple[float, ...]
    active_frames: int

    @property
    def separate(self) -> bool:
        """True if each channel carries its own performer."""
        return self.kind == "separate"


def channel_roles(
    audio: np.ndarray,
    sr: int,
    *,
    margin_db: float = 10.0,
    near_db: float = 10.0,
    max_co_activity: float = 0.5,
) -> ChannelLayout:
    """Decide whether a multi-channel recording has one performer per channel.

    The rule: take the frames (25 ms, hop 10 ms) where the loudest channel is more than
    ``margin_db`` above its noise floor. In one mix (plain stereo, panned stereo,
    dual-mono) every voice reaches every channel at a similar level, so the two loudest
    channels are within ``near_db`` of each other in nearly every active frame. With one
    performer per channel the other channel holds only bleed (typically 15-30 dB down)
    except where the performers overlap. So: ``"separate"`` if that co-activity is below
    ``max_co_activity`` and at least two channels are the loudest in some frames (>= 5 % of
    active frames each), else ``"mix"``.

    Parameters
    ----------
    audio : numpy.ndarray
        Shape (channels, samples) or (samples,).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    ChannelLayout
        The kind and the figures behind it.
    """
    from importers.vad import frame_levels, noise_floor  # librosa: imported only when used

    audio = np.atleast_2d(audio)
    channels = audio.shape[0]
    if channels == 1:
        return ChannelLayout("mono", 1, 1.0, 0.0, 1.0, (1.0,), 0)
    levels = frame_levels(audio, sr)
    floors = noise_floor(levels)
    above = levels - floors[:, None]
    loud = np.max(above, axis=0) > margin_db
    ordered = np.sort(levels[:, loud], axis=0)
    gap = ordered[-1] - ordered[-2] if loud.any() else np.zeros(0)
    active = int(loud.sum())
    owners = np.argmax(levels[:, loud], axis=0)
    share = tuple(float(np.mean(owners == c)) if active else 0.0 for c in range(channels))
    co_activity = float(np.mean(gap < near_db)) if active else 1.0
    correlation = 1.0
    for a in range(channels):
        for b in range(a + 1, channels):
            if np.std(levels[a]) > 0 and np.std(levels[b]) > 0:
                r = float(np.corrcoef(levels[a], levels[b])[0, 1])
                correlation = min(correlation, r)
    owning = sum(s >= 0.05 for s in share)
    kind = "separate" if active and co_activity < max_co_activity and owning >= 2 else "mix"
    return ChannelLayout(
        kind=kind,
        channels=channels,
        co_activity=round(co_activity, 4),
        level_difference=round(float(np.median(gap)) if active else 0.0, 2),
        energy_correlation=round(correlation, 4),
        owner_share=tuple(round(s, 4) for s in share),
        active_frames=active,
    )
