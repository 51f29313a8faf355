"""Cut a session into clips (one Label Studio task each) and build the tasks.

A clip is a run of consecutive turns no longer than ``max_seconds`` (a single longer turn
makes a clip of its own); turns are never split. Each clip's audio is cut to its own file
under the media root so the waveform annotators see matches the dialogue beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from importers.media import MediaInfo, cut_audio
from schemas.codec import PREDICTION_VERSION, turn_regions
from schemas.errors import MediaError
from schemas.records import Clip, Session
from schemas.taxonomy import Taxonomy

# Audio kept around a clip's turns, in seconds.
MARGIN = 0.25


def make_clips(session: Session, max_seconds: float) -> tuple[Clip, ...]:
    """Group the session's turns into clips of at most ``max_seconds``, in order."""
    groups: list[list[int]] = []
    for i, turn in enumerate(session.turns):
        if groups and turn.end - session.turns[groups[-1][0]].start <= max_seconds:
            groups[-1].append(i)
        else:
            groups.append([i])
    clips = []
    for index, group in enumerate(groups):
        start = session.turns[group[0]].start
        end = max(session.turns[i].end for i in group)
        clips.append(
            Clip(
                id=f"{session.id}-c{index:03d}",
                session_id=session.id,
                index=index,
                start=start,
                end=end,
                turn_ids=tuple(session.turns[i].id for i in group),
            )
        )
    return tuple(clips)


def clip_file(clip: Clip, extension: str) -> str:
    """The file name of a clip's media cut, e.g. ``cafe-c002_41250-80100.wav``: its id and
    its times in ms, so a clip whose times change after a re-import gets a new cut."""
    return f"{clip.id}_{round(clip.start * 1000)}-{round(clip.end * 1000)}.{extension}"


def audio_window(session: Session, clip: Clip) -> tuple[float, float]:
    """The session-time window of the clip's audio file (the clip plus a small margin)."""
    return max(0.0, clip.start - MARGIN), min(session.duration, clip.end + MARGIN)


def cut_clip_audio(
    session: Session, clip: Clip, target: Path, info: MediaInfo | None = None
) -> Path:
    """Write the clip's audio (mono 16-bit WAV, the media's sample rate) to ``target``; skip
    if present. Any format the importer reads (``info``: the media's probe, to skip it)."""
    if target.exists():
        return target
    start, end = audio_window(session, clip)
    return cut_audio(session.media, start, end, target, info=info)


# Clip videos are re-encoded at this frame rate, so frame numbers map to seconds exactly.
VIDEO_FPS = 25


def cut_clip_video(session: Session, clip: Clip, target: Path) -> Path:
    """Cut the clip's window of the session's video to an H.264 MP4 (no audio track: the
    clip's audio plays in sync beside it); skip if present."""
    if target.exists() or session.video is None:
        return target
    start, end = audio_window(session, clip)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part.mp4")  # see media.cut_audio
    done = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            f"{start:.3f}",
            "-t",
            f"{end - start:.3f}",
            "-i",
            session.video,
            "-an",
            "-vf",
            f"fps={VIDEO_FPS},scale=-2:360",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(partial),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise MediaError(f"{session.video}: cannot cut clip {clip.id} ({done.stderr.strip()})")
    partial.replace(target)
    return target


def _clock(seconds: float) -> str:
    """``m:ss.s`` for a time in seconds (rounded first, so 59.96 s is 1:00.0)."""
    tenths = round(seconds * 10)
    return f"{tenths // 600}:{(tenths % 600) / 10:04.1f}"


def build_task(
    session: Session,
    clip: Clip,
    audio_url: str,
    taxonomy: Taxonomy,
    n_clips: int,
    video_url: str | None = None,
    *,
    context_turns: int = 0,
) -> dict[str, Any]:
    """The Label Studio task of a clip, with one pre-annotated region per turn.

    ``context_turns`` turns before the clip are shown above it as read-only text (``context``),
    so annotators know what led into the clip's first turn. A turn's prosody features, when
    the import computed them, travel in its dialogue line (``prosody``). The session's
    intended emotions never do: every member of the Label Studio organisation can read a
    task's data, so the push sends them to the service instead
    (:func:`annotate.labelstudio.session_pusher`).
    """
    offset = audio_window(session, clip)[0]
    names = {p.id: p.name for p in session.performers}
    turns = {t.id: t for t in session.turns}
    dialogue = []
    for turn_id in clip.turn_ids:
        turn = turns[turn_id]
        line = {
            "speaker": names.get(turn.speaker, turn.speaker),
            "performer": turn.speaker,
            "text": turn.text,
            "start": round(turn.start - offset, 3),
            "end": round(turn.end - offset, 3),
            "turn_id": turn.id,
            "turn_index": turn.index,
        }
        if turn.prosody is not None:
            line["prosody"] = dict(turn.prosody)
        dialogue.append(line)
    first = turns[clip.turn_ids[0]].index
    before = session.turns[max(0, first - context_turns) : first] if context_turns > 0 else ()
    if before:
        context = "Before this clip: " + " / ".join(
            f"{names.get(t.speaker, t.speaker)}: {t.text or '(no transcript)'}" for t in before
        )
    else:
        context = "" if context_turns <= 0 or first > 0 else "(the scene starts here)"
    minutes = f"{_clock(clip.start)}-{_clock(clip.end)}"
    data = {
        "audio": audio_url,
        "dialogue": dialogue,
        "title": f"{session.title}: clip {clip.index + 1} of {n_clips} ({minutes})",
        "prompt": session.prompt,
        "context": context,
        "session_id": session.id,
        "clip_id": clip.id,
        "clip_index": clip.index,
        "clip_start": clip.start,
        "clip_end": clip.end,
        "audio_offset": round(offset, 6),
        "taxonomy": taxonomy.name,
        "taxonomy_version": taxonomy.version,
    }
    if video_url is not None:
        data.update(video=video_url, fps=VIDEO_FPS)
    # where the session came from, for the data card (session.yaml; null: not given)
    data["provenance"] = {
        "synthetic": session.synthetic,
        "licence": session.licence,
        "consent": session.consent,
    }
    data["clip_key"] = clip_key(clip)
    prediction = {"model_version": PREDICTION_VERSION, "result": turn_regions(dialogue)}
    task = {"data": data, "predictions": [prediction]}
    data["content_hash"] = content_hash(task)
    return task


def clip_key(clip: Clip) -> str:
    """A clip's identity across imports: its session and times (ms), e.g. ``cafe@1.250-39.800``.

    Re-importing a session finds its tasks by this key: the same clip is not imported twice,
    a clip whose text or features changed is updated in place.
    """
    return f"{clip.session_id}@{clip.start:.3f}-{clip.end:.3f}"


def content_hash(task: dict[str, Any]) -> str:
    """A digest of everything a task shows (its data, but not this hash, and its
    pre-annotations), to tell a changed clip from an unchanged one."""
    data = {k: v for k, v in task["data"].items() if k != "content_hash"}
    text = json.dumps([data, task.get("predictions")], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
