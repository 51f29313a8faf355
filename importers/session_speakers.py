"""Who speaks each turn: transcript speakers matched to performers, or recording channels.

- :func:`speaker_map` matches a transcript's speaker names to performers by id, display
  name or alias, case-insensitively.
- :func:`unknown_speakers` describes every speaker no performer claims, with its turn
  count and the ``aliases:`` line of ``session.yaml`` that would map it.
- :func:`loudest_channels` gives each turn of a transcript without speakers the channel
  with the most energy over its span (one performer per channel).

Example
-------
>>> p = (Performer("p01", "Maya"), Performer("p02", "Theo"))
>>> raw = [{"id": "p01", "name": "Maya"}, {"id": "p02", "name": "Theo"}]
>>> lines = unknown_speakers({"SPEAKER_00": (3, "7")}, raw, p, {"p02"}, "t.vtt", "session.yaml")
>>> print(lines[0])
t.vtt:7: speaker 'SPEAKER_00' is not a performer of session.yaml (3 turns); expected one of \
['Maya', 'Theo']; to map it, give a performer its name as an alias, e.g. \
performers: - {id: p01, name: Maya, aliases: [SPEAKER_00]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import yaml

from importers.channels import ChannelLayout
from importers.session_infer import unique_ids, valid_id
from schemas.errors import SessionError
from schemas.records import Performer

__all__ = [
    "channel_performers",
    "key",
    "loudest_channels",
    "speaker_map",
    "speaker_per_channel",
    "unknown_speakers",
]


def key(name: str | None) -> str:
    """How speaker names are compared: whitespace collapsed, case folded."""
    return " ".join(str(name or "").split()).casefold()


def speaker_map(
    raw: list[dict[str, Any]], performers: tuple[Performer, ...], source: object
) -> dict[str, Performer]:
    """How transcript speakers name performers: by id, display name or one of the
    performer's ``aliases`` (e.g. a diariser's ``SPEAKER_00``), case-insensitively.

    Raises
    ------
    SessionError
        ``aliases`` that is not a list, or a name given to two performers.
    """
    found: dict[str, Performer] = {}
    for item, performer in zip(raw, performers, strict=True):
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list):
            raise SessionError(
                f"{source}: performer {performer.id!r}: aliases must be a list of names, "
                f"got {aliases!r}"
            )
        for name in (performer.id, performer.name, *map(str, aliases)):
            other = found.setdefault(key(name), performer)
            if other != performer:
                raise SessionError(
                    f"{source}: the name {name!r} is given to performers {other.id!r} and "
                    f"{performer.id!r}; expected each id, name and alias to name one performer"
                )
    return found


def _flow(item: dict[str, Any]) -> str:
    text = yaml.safe_dump(item, default_flow_style=True, allow_unicode=True, sort_keys=False)
    return text.strip()


def unknown_speakers(
    unknown: dict[str, tuple[int, str]],
    raw: list[dict[str, Any]],
    performers: tuple[Performer, ...],
    matched: set[str],
    transcript: object,
    source_name: str,
) -> list[str]:
    """One message per transcript speaker that is not a performer.

    Parameters
    ----------
    unknown : dict
        ``{speaker as written: (turns, where its first turn is)}``, in order of first turn.
    raw, performers : list of dict, tuple of Performer
        The performers as ``session.yaml`` gives them, and as read.
    matched : set of str
        Ids of the performers some turn already names.
    transcript, source_name : str
        The transcript's path and the session file's name, for the messages.

    Returns
    -------
    list of str
        ``"file:where: speaker 'X' is not a performer ... (N turns); ...; to map it ..."``
        with the ``aliases:`` line that would map it: on a performer no turn names yet (in
        order), else a new performer.
    """
    names = sorted(p.name for p in performers)
    free = [i for i, p in enumerate(performers) if p.id not in matched]
    taken = {p.id for p in performers}
    lines = []
    for speaker, (count, where) in unknown.items():
        if free:
            i = free.pop(0)
            item = {"id": performers[i].id, "name": performers[i].name}
            aliases = [str(a) for a in (raw[i].get("aliases") or [])]
            item["aliases"] = [*aliases, speaker]
            how = "give a performer its name as an alias"
        else:
            new = valid_id(speaker)
            if not new or new in taken:
                new = unique_ids([*sorted(taken), speaker])[-1]
            taken.add(new)
            item = {"id": new, "name": speaker}
            how = "add it as a performer"
        turns = f"{count} turn{'s' if count != 1 else ''}"
        lines.append(
            f"{transcript}:{where}: speaker {speaker!r} is not a performer of {source_name} "
            f"({turns}); expected one of {names}; to map it, {how}, e.g. performers: "
            f"- {_flow(item)}"
        )
    return lines


def channel_performers(channels: int) -> list[dict[str, Any]]:
    """Performers named after the recording's channels: ``channel-1`` on channel 0, ..."""
    return [
        {"id": f"channel-{c + 1}", "name": f"Channel {c + 1}", "channel": c}
        for c in range(channels)
    ]


def speaker_per_channel(
    performers: tuple[Performer, ...],
    channel_of: dict[str, int],
    layout: ChannelLayout,
    channels: int,
) -> list[str] | None:
    """Performer id per channel when each performer has a channel of their own, else None."""
    if not layout.separate:
        return None
    if channel_of:
        by_channel = {c: p for p, c in channel_of.items()}
        if len(by_channel) == channels:
            return [by_channel[c] for c in range(channels)]
        return None
    if len(performers) == channels:
        return [p.id for p in performers]
    return None


def loudest_channels(audio: np.ndarray, sr: int, spans: Sequence[tuple[float, float]]) -> list[int]:
    """The channel with the most energy (mean power of 25 ms frames) over each span.

    Parameters
    ----------
    audio : numpy.ndarray
        Shape (channels, samples).
    sr : int
        Sample rate in Hz.
    spans : sequence of (start, end)
        Seconds; a span shorter than a frame uses the frame nearest its middle.
    """
    from importers.vad import frame_levels  # librosa: imported only when used

    hop = 0.010
    power = 10.0 ** (frame_levels(audio, sr, hop_seconds=hop).astype(np.float64) / 10.0)
    frames = power.shape[1]
    found = []
    for start, end in spans:
        lo = min(frames - 1, max(0, round(start / hop)))
        hi = min(frames, max(lo + 1, round(end / hop) + 1))
        found.append(int(np.argmax(power[:, lo:hi].mean(axis=1))))
    return found
