"""Importers: session folders in, Label Studio tasks out.

Public entry point: :func:`import_sessions`. A session that fails any check is reported and
not pushed at all; the other sessions of the same import still are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importers.clips import build_task, cut_clip_audio, cut_clip_video, make_clips
from importers.session import find_sessions, load_session
from schemas.errors import AnnotateError, SessionError
from schemas.records import Session
from schemas.taxonomy import Taxonomy

__all__ = ["ImportReport", "import_sessions", "load_session", "prepare_session"]


@dataclass(slots=True)
class ImportReport:
    """What an import did: sessions pushed, tasks created or already there, failures."""

    sessions: list[Session] = field(default_factory=list)
    created: int = 0
    existing: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def turns(self) -> int:
        """Turns in the sessions that were pushed."""
        return sum(len(s.turns) for s in self.sessions)


def media_url(session_id: str, file_name: str) -> str:
    """The URL Label Studio serves a file of the media root under (local-files storage)."""
    return f"/data/local-files/?d={session_id}/{file_name}"


def prepare_session(
    folder: Path,
    media_root: Path,
    taxonomy: Taxonomy,
    max_seconds: float,
    *,
    video: bool = False,
) -> tuple[Session, list[dict[str, Any]]]:
    """Load and check a session, cut its clips' media into ``media_root``, build its tasks.

    ``video``: the project shows video, so the session must have one (``video:`` in its
    session.yaml) and each clip gets its own cut.
    """
    session = load_session(folder)
    if video and session.video is None:
        raise SessionError(
            f"{folder / 'session.yaml'}: the project shows video (label_studio.video) but the "
            "session has none; expected a 'video:' file"
        )
    clips = make_clips(session, max_seconds)
    tasks = []
    for clip in clips:
        name = f"{clip.id}.wav"
        cut_clip_audio(session, clip, media_root / session.id / name)
        video_url = None
        if video:
            cut_clip_video(session, clip, media_root / session.id / f"{clip.id}.mp4")
            video_url = media_url(session.id, f"{clip.id}.mp4")
        tasks.append(
            build_task(session, clip, media_url(session.id, name), taxonomy, len(clips), video_url)
        )
    return session, tasks


def import_sessions(
    path: str | Path,
    *,
    media_root: Path,
    taxonomy: Taxonomy,
    max_seconds: float,
    push: Callable[[Session, list[dict[str, Any]]], tuple[int, int]] | None,
    progress: Callable[[str], None] = lambda _: None,
    video: bool = False,
) -> ImportReport:
    """Import every session at ``path`` (a session folder or a folder of them).

    ``push(session, tasks)`` sends one session's tasks and returns (created, existing);
    ``None`` is a dry run. Failures are collected per session in ``report.failed``.
    """
    report = ImportReport()
    for folder in find_sessions(path):
        progress(f"reading {folder}")
        try:
            session, tasks = prepare_session(folder, media_root, taxonomy, max_seconds, video=video)
        except AnnotateError as exc:
            report.failed[str(folder)] = str(exc)
            continue
        if push is not None:
            created, existing = push(session, tasks)
            report.created += created
            report.existing += existing
        report.sessions.append(session)
    return report
