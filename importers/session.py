"""Read a session folder: ``session.yaml``, the media file's header and the transcript.

A session folder holds::

    session.yaml      id, title, prompt, media, transcript, performers, optional intended arc
    <media>           the recording (WAV/FLAC/MP3 read by header)
    <transcript>      WebVTT with <v Speaker> voices

Everything is checked before anything is pushed: a problem raises an error naming the file
(and line) and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from importers.media import ChannelLayout, channel_roles, probe, read_audio
from importers.prosody import ANALYSIS_RATE, turn_features
from importers.transcripts import read_transcript
from importers.vad import UNKNOWN_SPEAKER, segments_to_turns, voice_activity
from schemas.errors import MediaError, SessionError
from schemas.records import IntendedEmotion, Performer, Session, Turn

SESSION_FILE = "session.yaml"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Cue times are rounded to milliseconds; allow that much past the media's end.
_END_TOLERANCE = 0.0015
# Prosody features are kept to this many decimals (Hz, dB, semitones, seconds).
PROSODY_DECIMALS = 4


def media_duration(path: Path) -> float:
    """Duration in seconds of a recording's audio, read from its header only."""
    return probe(path).duration


def video_duration(path: Path) -> float:
    """Duration in seconds of a video file's first video stream (ffprobe, header only)."""
    if not path.is_file():
        raise MediaError(f"{path}: video file not found")
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise MediaError(f"{path}: reading video needs ffprobe (Debian package ffmpeg)")
    probe = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=duration:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info = json.loads(probe.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if probe.returncode != 0 or not info.get("streams"):
        raise MediaError(f"{path}: no video stream ({probe.stderr.strip() or 'ffprobe failed'})")
    stream = info["streams"][0]
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    return float(duration or 0.0)


def _field(meta: dict[str, Any], key: str, source: Path) -> Any:
    if meta.get(key) in (None, ""):
        raise SessionError(f"{source}: missing required key {key!r}")
    return meta[key]


def _inside(folder: Path, name: str, source: Path, key: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise SessionError(f"{source}: {key} {name!r} points outside the session folder")
    return path


def _flag(value: Any, source: Path, key: str) -> bool:
    if not isinstance(value, bool):
        raise SessionError(f"{source}: {key} must be true or false, got {value!r}")
    return value


def _key(name: str | None) -> str:
    return " ".join(str(name or "").split()).casefold()


def _speaker_map(
    raw: list[dict[str, Any]], performers: tuple[Performer, ...], source: Path
) -> dict[str, Performer]:
    """How transcript speakers name performers: by id, display name or one of the
    performer's ``aliases`` (e.g. a diariser's ``SPEAKER_00``), case-insensitively."""
    found: dict[str, Performer] = {}
    for item, performer in zip(raw, performers, strict=True):
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list):
            raise SessionError(
                f"{source}: performer {performer.id!r}: aliases must be a list of names, "
                f"got {aliases!r}"
            )
        for name in (performer.id, performer.name, *map(str, aliases)):
            other = found.setdefault(_key(name), performer)
            if other != performer:
                raise SessionError(
                    f"{source}: the name {name!r} is given to performers {other.id!r} and "
                    f"{performer.id!r}; expected each id, name and alias to name one performer"
                )
    return found


def _transcript_turns(
    folder: Path,
    meta: dict[str, Any],
    source: Path,
    session_id: str,
    cast: tuple[list[dict[str, Any]], tuple[Performer, ...]],
    duration: float,
    transcript_format: str | None,
    notes: list[str],
) -> list[Turn]:
    """The turns of the session's transcript (any format), speakers matched to performers."""
    performers_raw, performers = cast
    transcript = _inside(folder, str(_field(meta, "transcript", source)), source, "transcript")
    companion = None
    if meta.get("transcript_text"):
        companion = _inside(folder, str(meta["transcript_text"]), source, "transcript_text")
    read = read_transcript(
        transcript,
        transcript_format or meta.get("transcript_format"),
        text=companion,
        media_duration=duration,
    )
    notes.extend(f"{transcript.name}: {w}" for w in read.warnings)
    speaker_of = _speaker_map(performers_raw, performers, source)
    turns = []
    unknown: dict[str, str] = {}
    for index, seg in enumerate(read.segments):
        performer = speaker_of.get(_key(seg.speaker))
        if performer is None:
            unknown.setdefault(str(seg.speaker), seg.where)
            continue
        turns.append(Turn.make(session_id, index, performer.id, seg.start, seg.end, seg.text))
    if unknown:
        names = sorted(p.name for p in performers)
        raise SessionError(
            "\n".join(
                f"{transcript}:{where}: speaker {name!r} is not a performer of {source.name}; "
                f"expected one of {names}"
                for name, where in unknown.items()
            )
        )
    if not turns:
        raise SessionError(f"{transcript}: no cues; expected at least one turn")
    return turns


def _channels(
    raw: list[dict[str, Any]], performers: tuple[Performer, ...], source: Path, channels: int
) -> dict[str, int]:
    """``{performer id: channel}`` from the performers' ``channel:`` keys (0-based)."""
    found: dict[str, int] = {}
    for item, performer in zip(raw, performers, strict=True):
        if "channel" not in item:
            continue
        channel = item["channel"]
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < channels:
            raise SessionError(
                f"{source}: performer {performer.id!r}: channel {channel!r}; expected a whole "
                f"number from 0 to {channels - 1} (the media has {channels} channel(s))"
            )
        found[performer.id] = channel
    return found


def _speaker_per_channel(
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


def _with_prosody(
    turns: list[Turn],
    audio: np.ndarray,
    layout: ChannelLayout,
    channel_of: dict[str, int],
    progress: Callable[[str, int, int], None] | None,
    noise_gate: bool = True,
) -> list[Turn]:
    """The turns with their prosody features, each measured on its speaker's channel when
    performers have channels of their own (declared, or one per channel in the order of
    session.yaml), else on the mix."""
    mix: np.ndarray | None = None
    features: dict[str, dict[str, float | None]] = {}
    spans = [(t.start, t.end) for t in turns]
    groups: dict[int | None, list[Turn]] = {}
    for turn in turns:
        channel = channel_of.get(turn.speaker) if layout.separate else None
        groups.setdefault(channel, []).append(turn)
    done = 0
    for channel, group in groups.items():
        if progress is not None:
            progress("prosody", done, len(turns))
        if channel is None:
            if mix is None:
                mix = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
            signal = mix
        else:
            signal = audio[channel]
        values = turn_features(
            signal,
            ANALYSIS_RATE,
            [(t.start, t.end, t.text or None) for t in group],
            all_turns=spans,
            skip_silence=noise_gate,
        )
        for turn, row in zip(group, values, strict=True):
            # rounded: enough for any analysis, and stable across runs for content hashes
            features[turn.id] = {
                k: round(v, PROSODY_DECIMALS) if isinstance(v, float) else v for k, v in row.items()
            }
        done += len(group)
    if progress is not None:
        progress("prosody", len(turns), len(turns))
    return [dataclasses.replace(t, prosody=features[t.id]) for t in turns]


def load_session(
    folder: str | Path,
    *,
    transcript_format: str | None = None,
    prosody: bool = False,
    warnings: list[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    noise_gate: bool = True,
) -> Session:
    """Read and validate the session in ``folder``.

    ``prosody`` adds per-turn prosody features (``noise_gate``: skip pitch frames near the
    noise floor, where pYIN labels room noise as voiced; false gives plain pYIN, identical
    to ``librosa.pyin``). Raises :class:`SessionError`, :class:`MediaError` or
    ``TranscriptError`` (all ``AnnotateError``) naming the file, line and value that is
    wrong.
    """
    folder = Path(folder)
    notes = warnings if warnings is not None else []
    source = folder / SESSION_FILE
    try:
        meta = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise SessionError(f"{source}: not valid UTF-8 text") from None
    except FileNotFoundError:
        raise SessionError(
            f"{source}: not found; a session folder needs a {SESSION_FILE}"
        ) from None
    except yaml.YAMLError as exc:
        raise SessionError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise SessionError(f"{source}: expected a mapping of session metadata")
    session_id = str(_field(meta, "id", source))
    if not _ID.match(session_id):
        raise SessionError(
            f"{source}: id {session_id!r} must be lower-case letters, digits, '-' or '_'"
        )
    performers_raw = _field(meta, "performers", source)
    if not isinstance(performers_raw, list) or not all(isinstance(p, dict) for p in performers_raw):
        raise SessionError(f"{source}: performers must be a list of {{id, name}} mappings")
    performers = tuple(
        Performer(str(_field(p, "id", source)), str(p.get("name") or p["id"]))
        for p in performers_raw
    )
    media = _inside(folder, str(_field(meta, "media", source)), source, "media")
    info = probe(media)
    duration = info.duration
    video = None
    if meta.get("video"):
        video = _inside(folder, str(meta["video"]), source, "video")
        video_duration(video)
    elif info.has_video:
        video = media
    audio: np.ndarray | None = None
    layout: ChannelLayout | None = None

    def decoded() -> tuple[np.ndarray, ChannelLayout]:
        nonlocal audio, layout
        if audio is None or layout is None:
            if progress is not None:
                progress("decoding audio", 0, 1)
            audio = read_audio(media, ANALYSIS_RATE, info=info)
            layout = channel_roles(audio, ANALYSIS_RATE)
        return audio, layout

    channel_of = _channels(performers_raw, performers, source, info.channels)
    if meta.get("transcript"):
        turns = _transcript_turns(
            folder,
            meta,
            source,
            session_id,
            (performers_raw, performers),
            duration,
            transcript_format,
            notes,
        )
    else:
        samples, found = decoded()
        activity = voice_activity(samples, ANALYSIS_RATE, separate=found.separate)
        speakers = _speaker_per_channel(performers, channel_of, found, info.channels)
        turns = list(segments_to_turns(activity, session_id, speakers=speakers))
        if not turns:
            raise SessionError(
                f"{media}: no transcript and no voice activity found; expected speech above "
                "the recording's noise floor, or a 'transcript:' in session.yaml"
            )
        how = "one performer per channel" if found.separate else f"{found.kind} audio"
        notes.append(
            f"{media.name}: no transcript; {len(turns)} turns found by voice activity "
            f"({how}), text left empty" + ("" if speakers else "; speakers unknown")
        )
        if not speakers:
            performers = (*performers, Performer(UNKNOWN_SPEAKER, "Unknown speaker"))
    if prosody:
        samples, found = decoded()
        if found.separate and not channel_of and len(performers) == info.channels:
            channel_of = {p.id: i for i, p in enumerate(performers)}
        turns = _with_prosody(turns, samples, found, channel_of, progress, noise_gate)
    intended = []
    for i, item in enumerate(meta.get("intended") or []):
        try:
            intended.append(
                IntendedEmotion(
                    int(item["turn"]),
                    str(item["performer"]),
                    float(item["start"]),
                    float(item["end"]),
                    str(item["emotion"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionError(
                f"{source}: intended[{i}]: {exc!s}; expected turn, performer, start, end, emotion"
            ) from None
    return Session(
        id=session_id,
        title=str(meta.get("title") or session_id),
        prompt=str(meta.get("prompt") or ""),
        media=str(media),
        duration=round(duration, 6),
        performers=performers,
        turns=tuple(turns),
        intended=tuple(intended),
        synthetic=_flag(meta.get("synthetic", False), source, "synthetic"),
        video=None if video is None else str(video),
    )


def find_sessions(path: str | Path) -> list[Path]:
    """The session folders at ``path``: itself if it holds a session.yaml, else its children."""
    path = Path(path)
    if (path / SESSION_FILE).exists():
        return [path]
    if not path.is_dir():
        raise SessionError(f"{path}: not a folder; expected a session folder or a folder of them")
    found = sorted(p.parent for p in path.glob(f"*/{SESSION_FILE}"))
    if not found:
        raise SessionError(f"{path}: no {SESSION_FILE} in it or in its sub-folders")
    return found
