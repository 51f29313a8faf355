"""Read a session folder: ``session.yaml`` (or none), the media file's header and the transcript.

A session folder holds::

    session.yaml      optional: id, title, prompt, media, transcript, tiers, performers, ...
    <media>           the recording (any audio or video :mod:`importers.media` reads)
    <transcript>      optional: any format :mod:`importers.transcripts` reads

What ``session.yaml`` leaves out is inferred (:mod:`importers.session_infer`): the id and
title from the folder's name, the one recording, the one transcript, the performers from
the transcript's speakers or the recording's channels. Everything is checked before
anything is pushed, and every independent problem of a session is reported at once
(:class:`SessionProblems`), each naming the file (and line) and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from importers.channels import ChannelLayout, channel_roles
from importers.media import MediaInfo, probe, read_audio
from importers.prosody import ANALYSIS_RATE, turn_features
from importers.session_infer import MEDIA_EXTENSIONS, SESSION_FILE, is_session_folder, unique_ids
from importers.session_meta import (
    SessionProblems,
    channels_of,
    collect,
    flag,
    given,
    inside,
    intended_of,
    media_of,
    performers_of,
    problems_of,
    read_checked,
    read_meta,
    session_id_of,
    text_of,
    tiers_of,
    transcript_file,
    unknown_keys,
)
from importers.session_speakers import (
    channel_performers,
    key,
    loudest_channels,
    speaker_map,
    speaker_per_channel,
    unknown_speakers,
)
from importers.transcripts import Segment, Transcript
from importers.vad import UNKNOWN_SPEAKER, segments_to_turns, voice_activity
from schemas.errors import AnnotateError, MediaError, SessionError
from schemas.records import IntendedEmotion, Performer, Session, Turn

__all__ = [
    "SESSION_FILE",
    "SessionProblems",
    "find_sessions",
    "load_session",
    "media_duration",
    "problems_of",
    "read_meta",
    "video_duration",
]

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


@dataclass
class _Cast:
    """The performers as session.yaml gives them (``raw``) and as read, and their channels."""

    raw: list[dict[str, Any]]
    performers: tuple[Performer, ...]
    channel_of: dict[str, int] = field(default_factory=dict)


def _from_speakers(segments: Sequence[Segment]) -> _Cast:
    """Performers inferred from the transcript: one per speaker, named as written."""
    names: dict[str, str] = {}
    for seg in segments:
        if seg.speaker is not None:
            names.setdefault(key(seg.speaker), seg.speaker.strip())
    ids = unique_ids(list(names.values()))
    raw = [{"id": i, "name": n} for i, n in zip(ids, names.values(), strict=True)]
    return _Cast(raw, tuple(Performer(i, n) for i, n in zip(ids, names.values(), strict=True)))


def _by_channel(channels: int) -> _Cast:
    raw = channel_performers(channels)
    performers = tuple(Performer(p["id"], p["name"]) for p in raw)
    return _Cast(raw, performers, {p["id"]: p["channel"] for p in raw})


def _unknown_cast(cast: _Cast | None) -> _Cast:
    """``cast`` with the ``unknown`` performer turns without a speaker are given."""
    cast = cast or _Cast([], ())
    if UNKNOWN_SPEAKER in {p.id for p in cast.performers}:
        return cast
    unknown = Performer(UNKNOWN_SPEAKER, "Unknown speaker")
    raw = [*cast.raw, {"id": unknown.id, "name": unknown.name}]
    return _Cast(raw, (*cast.performers, unknown), cast.channel_of)


def _unnamed_as_unknown(
    segments: Sequence[Segment], transcript: Path, notes: list[str]
) -> list[Segment]:
    """``segments`` with the speaker ``unknown`` where a file that names speakers elsewhere
    names none (subtitles naming a speaker only when off screen, VTC's ``NA`` class); one
    warning counts them and names their places."""
    unnamed = [s.where for s in segments if s.speaker is None]
    if not unnamed:
        return list(segments)
    shown = ", ".join(unnamed[:5]) + (" ..." if len(unnamed) > 5 else "")
    notes.append(
        f"{transcript.name}: {len(unnamed)} of {len(segments)} turns name no speaker and are "
        f"given the speaker {UNKNOWN_SPEAKER!r} ({shown}); name them in the transcript to "
        "tell them apart"
    )
    return [replace(s, speaker=UNKNOWN_SPEAKER) if s.speaker is None else s for s in segments]


def _matched_turns(
    segments: Sequence[Segment],
    cast: _Cast,
    session_id: str,
    transcript: Path,
    source: Path,
    problems: list[AnnotateError],
) -> list[Turn]:
    """Turns whose speakers name performers; every other speaker is one problem, with its
    turn count and the ``aliases:`` line that would map it."""
    speaker_of = speaker_map(cast.raw, cast.performers, source)
    turns, matched = [], set()
    unknown: dict[str, tuple[int, str]] = {}
    for index, seg in enumerate(segments):
        performer = speaker_of.get(key(seg.speaker))
        if performer is None:
            count, where = unknown.get(str(seg.speaker), (0, seg.where))
            unknown[str(seg.speaker)] = (count + 1, where)
            continue
        matched.add(performer.id)
        turns.append(Turn.make(session_id, index, performer.id, seg.start, seg.end, seg.text))
    for line in unknown_speakers(
        unknown, cast.raw, cast.performers, matched, transcript, source.name
    ):
        problems.append(SessionError(line))
    return turns


def load_session(
    folder: str | Path,
    *,
    transcript_format: str | None = None,
    prosody: bool = False,
    warnings: list[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    noise_gate: bool = True,
    inferred: dict[str, Any] | None = None,
) -> Session:
    """Read and validate the session in ``folder``.

    Keys ``session.yaml`` leaves out (or the whole file) are inferred from the folder (see
    :mod:`importers.session_infer`) and recorded in ``inferred`` (``{key: value}``, the
    performers as ``[{id, name}]``). ``prosody`` adds per-turn prosody features
    (``noise_gate``: skip pitch frames near the noise floor, where pYIN labels room noise as
    voiced; false gives plain pYIN, identical to ``librosa.pyin``).

    Raises
    ------
    AnnotateError
        :class:`SessionError`, :class:`MediaError` or ``TranscriptError`` naming the file,
        line and value that is wrong; when several independent problems are found (bad
        keys, media, transcript, unknown speakers), one :class:`SessionProblems` listing
        them all.
    """
    folder = Path(folder)
    notes = warnings if warnings is not None else []
    guessed = inferred if inferred is not None else {}
    source = folder / SESSION_FILE
    meta = read_meta(folder)
    notes.extend(unknown_keys(meta, source))
    problems: list[AnnotateError] = []
    session_id = "session"
    with collect(problems):
        session_id = session_id_of(folder, meta, source, guessed)
    if not given(meta, "title"):
        guessed["title"] = _printable(folder.resolve().name)
    title = str(meta.get("title") or guessed["title"])
    cast: _Cast | None = None
    performers_given = given(meta, "performers")
    if performers_given:
        with collect(problems):
            cast = _Cast(*performers_of(meta, source))
    media: Path | None = None
    info: MediaInfo | None = None
    with collect(problems):
        media, info = media_of(folder, meta, source, guessed)
    video = None
    with collect(problems):
        if meta.get("video"):
            video = inside(folder, str(meta["video"]), source, "video")
            video_duration(video)
        elif info is not None and info.has_video:
            video = media
    if cast is not None and info is not None:
        with collect(problems):
            cast.channel_of = channels_of(cast.raw, cast.performers, source, info.channels)
    audio: np.ndarray | None = None
    layout: ChannelLayout | None = None

    def decoded() -> tuple[np.ndarray, ChannelLayout]:
        nonlocal audio, layout
        assert media is not None and info is not None
        if audio is None or layout is None:
            if progress is not None:
                progress("decoding audio", 0, 1)
            audio = read_audio(media, ANALYSIS_RATE, info=info)
            layout = channel_roles(audio, ANALYSIS_RATE)
        return audio, layout

    before = len(problems)
    transcript: Path | None = None
    read: Transcript | None = None
    with collect(problems):
        transcript = transcript_file(folder, meta, source, guessed)
        if transcript is not None:
            companion = None
            if meta.get("transcript_text"):
                companion = inside(folder, str(meta["transcript_text"]), source, "transcript_text")
            read = read_checked(
                transcript,
                transcript_format or meta.get("transcript_format"),
                companion,
                None if info is None else info.duration,
                tiers_of(meta, source),
                None if media is None else media.name,
            )
            notes.extend(f"{transcript.name}: {w}" for w in read.warnings)
    turns: list[Turn] = []
    if read is not None and transcript is not None:
        if not read.segments:
            problems.append(SessionError(f"{transcript}: no cues; expected at least one turn"))
        elif all(s.speaker is None for s in read.segments):
            if info is not None:
                with collect(problems):  # decoding may find the media cut short
                    turns, cast = _unspoken(
                        read.segments, session_id, transcript, cast, performers_given, info,
                        decoded, notes,
                    )  # fmt: skip
        else:
            segments = _unnamed_as_unknown(read.segments, transcript, notes)
            if cast is None and not performers_given:
                cast = _from_speakers(segments)
            if cast is not None:
                if len(segments) != sum(s.speaker is not None for s in read.segments):
                    cast = _unknown_cast(cast)
                with collect(problems):
                    turns = _matched_turns(segments, cast, session_id, transcript, source, problems)
    elif transcript is None and len(problems) == before and info is not None and media is not None:
        with collect(problems):
            turns, cast = _by_voice(session_id, media, cast, performers_given, info, decoded, notes)
        if not turns and len(problems) == before:
            problems.append(
                SessionError(
                    f"{media}: no transcript and no voice activity found; expected speech "
                    f"above the recording's noise floor, or a transcript file"
                )
            )
    if cast is not None and not performers_given:
        guessed["performers"] = [dict(item) for item in cast.raw]
    intended: list[IntendedEmotion] = []
    synthetic = False
    with collect(problems):
        intended = intended_of(meta, source)
    with collect(problems):
        synthetic = flag(meta.get("synthetic", False), source, "synthetic")
    stated: dict[str, str | None] = {}
    for stated_key in ("licence", "consent"):
        with collect(problems):
            stated[stated_key] = text_of(meta, stated_key, source)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SessionProblems(folder, problems)
    assert cast is not None and media is not None and info is not None
    if prosody:
        samples, found = decoded()
        channel_of = cast.channel_of
        if found.separate and not channel_of and len(cast.performers) == info.channels:
            channel_of = {p.id: i for i, p in enumerate(cast.performers)}
        turns = _with_prosody(turns, samples, found, channel_of, progress, noise_gate)
    return Session(
        id=session_id,
        title=title,
        prompt=str(meta.get("prompt") or ""),
        media=str(media),
        duration=round(info.duration, 6),
        performers=cast.performers,
        turns=tuple(turns),
        intended=tuple(intended),
        synthetic=synthetic,
        licence=stated.get("licence"),
        consent=stated.get("consent"),
        video=None if video is None else str(video),
    )


def _unspoken(
    segments: Sequence[Segment],
    session_id: str,
    transcript: Path,
    cast: _Cast | None,
    performers_given: bool,
    info: MediaInfo,
    decoded: Callable[[], tuple[np.ndarray, ChannelLayout]],
    notes: list[str],
) -> tuple[list[Turn], _Cast]:
    """Turns of a transcript that names no speaker: each given the performer of the channel
    loudest over it when each performer has a channel of their own, else ``unknown``."""
    speakers = None
    reason = "the recording is mono"
    if info.channels > 1:
        samples, layout = decoded()
        reason = "the recording's channels hold one mix of the voices"
        if layout.separate:
            if cast is None and not performers_given:
                cast = _by_channel(info.channels)
            if cast is not None:
                speakers = speaker_per_channel(
                    cast.performers, cast.channel_of, layout, info.channels
                )
            reason = (
                f"the performers do not have one channel each of the {info.channels} "
                "(give each a 'channel:')"
            )
    if speakers is not None and cast is not None:
        loudest = loudest_channels(samples, ANALYSIS_RATE, [(s.start, s.end) for s in segments])
        notes.append(
            f"{transcript.name}: no speaker in the transcript; each of its {len(segments)} "
            "turns is given to the performer of the channel loudest over it (one performer "
            "per channel)"
        )
        turns = [
            Turn.make(session_id, i, speakers[c], s.start, s.end, s.text)
            for i, (s, c) in enumerate(zip(segments, loudest, strict=True))
        ]
        return turns, cast
    notes.append(
        f"{transcript.name}: no speaker in the transcript; all {len(segments)} turns are given "
        f"the speaker {UNKNOWN_SPEAKER!r} ({reason}); name the speakers in the transcript to "
        "tell them apart"
    )
    turns = [
        Turn.make(session_id, i, UNKNOWN_SPEAKER, s.start, s.end, s.text)
        for i, s in enumerate(segments)
    ]
    return turns, _unknown_cast(cast)


def _by_voice(
    session_id: str,
    media: Path,
    cast: _Cast | None,
    performers_given: bool,
    info: MediaInfo,
    decoded: Callable[[], tuple[np.ndarray, ChannelLayout]],
    notes: list[str],
) -> tuple[list[Turn], _Cast | None]:
    """Turns found by voice activity, for a session without a transcript."""
    samples, found = decoded()
    activity = voice_activity(samples, ANALYSIS_RATE, separate=found.separate)
    if cast is None and not performers_given and found.separate:
        cast = _by_channel(info.channels)
    speakers = None
    if cast is not None:
        speakers = speaker_per_channel(cast.performers, cast.channel_of, found, info.channels)
    turns = list(segments_to_turns(activity, session_id, speakers=speakers))
    if not turns:
        return turns, cast
    how = "one performer per channel" if found.separate else f"{found.kind} audio"
    notes.append(
        f"{media.name}: no transcript; {len(turns)} turns found by voice activity "
        f"({how}), text left empty" + ("" if speakers else "; speakers unknown")
    )
    if not speakers:
        cast = _unknown_cast(cast)
    return turns, cast


def _printable(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def find_sessions(path: str | Path, skipped: list[Path] | None = None) -> list[Path]:
    """The session folders at ``path``: itself if it is one, else its sub-folders that are.

    A folder is a session if it holds a ``session.yaml`` or a recording. Sub-folders that
    are neither are appended to ``skipped`` (hidden ones, such as ``.git``, are not
    considered).
    """
    path = Path(path)
    if is_session_folder(path):
        return [path]
    if not path.is_dir():
        raise SessionError(f"{path}: not a folder; expected a session folder or a folder of them")
    found, other = [], []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            (found if is_session_folder(child) else other).append(child)
    if skipped is not None:
        skipped.extend(other)
    if not found:
        raise SessionError(
            f"{path}: no {SESSION_FILE} in it or in its sub-folders, and no recording "
            f"({', '.join(sorted(MEDIA_EXTENSIONS))}); expected a session folder or a folder "
            "of them"
        )
    return found
