"""Importers: session folders in, Label Studio tasks out.

Public entry point: :func:`import_sessions`. A session that fails any check is reported and
not pushed at all; the other sessions of the same import still are. Warnings (a transcript
read as Windows-1252, a speaker guessed from a channel, ...) are reported per session and do
not stop it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from importers.clips import build_task, clip_file, cut_clip_audio, cut_clip_video, make_clips
from importers.media import probe
from importers.session import find_sessions, load_session, problems_of
from importers.session_infer import SESSION_FILE, valid_id
from importers.session_meta import read_meta
from schemas.errors import AnnotateError, SessionError
from schemas.records import Session
from schemas.taxonomy import Taxonomy

__all__ = [
    "ImportOptions",
    "ImportReport",
    "import_sessions",
    "load_session",
    "prepare_session",
    "shown",
]


class Progress(Protocol):
    """Told how far an import is: ``(session id, stage, done, total)``."""

    def __call__(self, session: str, stage: str, done: int, total: int) -> None: ...


def _quiet(session: str, stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How sessions become tasks.

    ``max_seconds``: longest clip (turns are never split); ``context_turns``: turns shown
    before each clip; ``video``: the project shows video; ``prosody``: compute per-turn
    prosody features (``noise_gate``: see :func:`importers.session.load_session`);
    ``transcript_format``: read every transcript as this format instead of choosing by its
    extension; ``media_base_url``: where the media root is served from, when
    not by Label Studio's local-files storage.
    """

    max_seconds: float = 45.0
    context_turns: int = 2
    video: bool = False
    prosody: bool = False
    noise_gate: bool = True
    transcript_format: str | None = None
    media_base_url: str | None = None


@dataclass(slots=True)
class SessionOutcome:
    """What happened to one session folder: ``inferred`` holds the keys session.yaml left
    out and the values found for them; ``errors`` every problem, one per entry (``error``
    joins them)."""

    folder: str
    id: str | None = None
    session: Session | None = None
    clips: int = 0
    created: int = 0
    existing: int = 0
    updated: int = 0
    removed: int = 0
    duplicate_keys: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    inferred: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self, pushed: bool = False) -> dict[str, Any]:
        """The session as the JSON report gives it.

        ``{"id", "folder", "status": "ok" | "skipped", "turns", "speakers": {display name:
        turns}, "duration_s", "end_s" (end of the last turn), "clips", "inferred",
        "warnings", "errors"}``, plus ``"tasks": {"created", "existing", "updated"}`` when
        ``pushed``. A skipped session (one with errors, not pushed) has 0 turns and null
        times.
        """
        session = self.session if self.error is None else None
        names = {p.id: p.name for p in session.performers} if session else {}
        turns = session.turns if session else ()
        found: dict[str, Any] = {
            "id": session.id if session else self.id,
            "folder": self.folder,
            "status": "ok" if session else "skipped",
            "turns": len(turns),
            "speakers": dict(Counter(names.get(t.speaker, t.speaker) for t in turns)),
            "duration_s": session.duration if session else None,
            "end_s": round(max(t.end for t in turns), 3) if turns else None,
            "clips": self.clips if session else 0,
            "inferred": self.inferred,
            "warnings": list(self.warnings),
            "errors": list(self.errors),
        }
        if pushed:
            found["tasks"] = {
                "created": self.created,
                "existing": self.existing,
                "updated": self.updated,
            }
        return found


@dataclass(slots=True)
class ImportReport:
    """What an import did: per session, and totals."""

    outcomes: list[SessionOutcome] = field(default_factory=list)
    dry_run: bool = False
    skipped_folders: list[str] = field(default_factory=list)
    """Sub-folders that are not sessions (neither a session.yaml nor a recording)."""

    def as_json(self) -> dict[str, Any]:
        """``{"sessions": [SessionOutcome.summary(), ...], "skipped_folders": [...]}``."""
        return {
            "sessions": [o.summary(pushed=not self.dry_run) for o in self.outcomes],
            "skipped_folders": list(self.skipped_folders),
        }

    @property
    def sessions(self) -> list[Session]:
        """The sessions read without errors (pushed unless it was a dry run)."""
        return [o.session for o in self.outcomes if o.session is not None and o.error is None]

    @property
    def failed(self) -> dict[str, str]:
        """``{folder: problem}`` of the sessions that were not pushed."""
        return {o.folder: o.error for o in self.outcomes if o.error is not None}

    @property
    def warnings(self) -> dict[str, list[str]]:
        """``{folder: warnings}`` of the sessions that had any."""
        return {o.folder: o.warnings for o in self.outcomes if o.warnings}

    @property
    def turns(self) -> int:
        """Turns in the sessions read without errors."""
        return sum(len(s.turns) for s in self.sessions)

    @property
    def clips(self) -> int:
        """Clips (tasks) of the sessions read without errors."""
        return sum(o.clips for o in self.outcomes if o.error is None)

    @property
    def hours(self) -> float:
        """Hours of media of the sessions read without errors."""
        return sum(s.duration for s in self.sessions) / 3600

    @property
    def created(self) -> int:
        """Tasks created in Label Studio."""
        return sum(o.created for o in self.outcomes)

    @property
    def existing(self) -> int:
        """Tasks that were already there, unchanged."""
        return sum(o.existing for o in self.outcomes)

    @property
    def updated(self) -> int:
        """Tasks that were there and updated in place (their clip changed)."""
        return sum(o.updated for o in self.outcomes)

    @property
    def removed(self) -> int:
        """Duplicate tasks removed (a clip held by more than one task)."""
        return sum(o.removed for o in self.outcomes)

    @property
    def duplicate_keys(self) -> list[str]:
        """Clip keys that were held by more than one task."""
        return [key for o in self.outcomes for key in o.duplicate_keys]

    @property
    def conflicts(self) -> list[str]:
        """Clip keys held by several tasks that all have annotations (all kept: a person
        merges them)."""
        return [key for o in self.outcomes for key in o.conflicts]


def media_url(session_id: str, file_name: str, base_url: str | None = None) -> str:
    """The URL of a file of the media root: under ``base_url`` when the media root is served
    from elsewhere (``<base_url>/<session>/<file>``, e.g. a web server or a bucket), else the
    URL Label Studio serves it under (local-files storage)."""
    if base_url:
        return f"{base_url.rstrip('/')}/{quote(session_id)}/{quote(file_name)}"
    return f"/data/local-files/?d={session_id}/{file_name}"


def prepare_session(
    folder: Path,
    media_root: Path,
    taxonomy: Taxonomy,
    options: ImportOptions,
    *,
    progress: Progress = _quiet,
    warnings: list[str] | None = None,
    inferred: dict[str, Any] | None = None,
) -> tuple[Session, list[dict[str, Any]]]:
    """Load and check a session, cut its clips' media into ``media_root``, build its tasks.

    With ``options.video`` the session must have a video (``video:`` in its session.yaml)
    and each clip gets its own cut. Warnings are appended to ``warnings``, what was
    inferred is put in ``inferred`` (see :func:`importers.session.load_session`).
    """
    session = load_session(
        folder,
        transcript_format=options.transcript_format,
        prosody=options.prosody,
        noise_gate=options.noise_gate,
        warnings=warnings,
        progress=lambda stage, done, total: progress(folder.name, stage, done, total),
        inferred=inferred,
    )
    if options.video and session.video is None:
        raise SessionError(
            f"{folder / SESSION_FILE}: the project shows video (label_studio.video) but the "
            "session has none; expected a 'video:' file"
        )
    clips = make_clips(session, options.max_seconds)
    info = probe(session.media)
    tasks = []
    for done, clip in enumerate(clips):
        progress(session.id, "cutting clips", done, len(clips))
        name = clip_file(clip, "wav")
        cut_clip_audio(session, clip, media_root / session.id / name, info)
        video_url = None
        if options.video:
            video_name = clip_file(clip, "mp4")
            cut_clip_video(session, clip, media_root / session.id / video_name)
            video_url = media_url(session.id, video_name, options.media_base_url)
        tasks.append(
            build_task(
                session,
                clip,
                media_url(session.id, name, options.media_base_url),
                taxonomy,
                len(clips),
                video_url,
                context_turns=options.context_turns,
            )
        )
    progress(session.id, "cutting clips", len(clips), len(clips))
    return session, tasks


def import_sessions(
    path: str | Path,
    *,
    media_root: Path,
    taxonomy: Taxonomy,
    push: Callable[[Session, list[dict[str, Any]]], Any] | None,
    options: ImportOptions | None = None,
    progress: Progress = _quiet,
    **legacy: Any,
) -> ImportReport:
    """Import every session at ``path`` (a session folder or a folder of them).

    ``push(session, tasks)`` sends one session's tasks and returns its
    ``(created, existing, updated)`` counts, optionally followed by the duplicates it found
    ``(removed, duplicate keys, conflicts)``; ``None`` is a dry run (everything is read,
    checked and cut, nothing is sent). A session with an error is reported in
    ``report.failed`` and not pushed; the others are. ``max_seconds=`` and ``video=`` may be
    given directly instead of in ``options``.
    """
    options = ImportOptions(**{**(_fields(options) if options else {}), **legacy})
    report = ImportReport(dry_run=push is None)
    skipped: list[Path] = []
    for folder in find_sessions(path, skipped):
        outcome = SessionOutcome(shown(folder))
        report.outcomes.append(outcome)
        try:
            if shown(folder) != str(folder):
                raise SessionError(
                    f"{shown(folder)}: the folder's name is not valid UTF-8 (its bad bytes "
                    "shown as \\xNN); rename the folder"
                )
            session, tasks = prepare_session(
                folder,
                media_root,
                taxonomy,
                options,
                progress=progress,
                warnings=outcome.warnings,
                inferred=outcome.inferred,
            )
        except AnnotateError as exc:
            outcome.error = shown(str(exc))
            outcome.errors = [shown(e) for e in problems_of(exc)]
            outcome.id = outcome.inferred.get("id") or _declared_id(folder)
            continue
        outcome.session, outcome.clips, outcome.id = session, len(tasks), session.id
        if push is not None:
            progress(session.id, "pushing", 0, len(tasks))
            counts = tuple(push(session, tasks))
            outcome.created, outcome.existing = counts[0], counts[1]
            outcome.updated = counts[2] if len(counts) > 2 else 0
            if len(counts) > 5:  # duplicates found (see annotate.labelstudio.Pushed)
                outcome.removed, outcome.duplicate_keys, outcome.conflicts = counts[3:6]
            progress(session.id, "pushed", len(tasks), len(tasks))
    report.skipped_folders = [shown(f) for f in skipped]
    return report


def _declared_id(folder: Path) -> str | None:
    """The id session.yaml gives (as written), else the one the folder's name makes."""
    try:
        meta = read_meta(folder)
    except AnnotateError:
        meta = {}
    if meta.get("id") not in (None, ""):
        return str(meta["id"])
    return valid_id(folder.name) or None


def shown(text: str | Path) -> str:
    """``text`` (a path or a message naming one) printable as UTF-8: bytes of a file name
    that are not UTF-8 (which Python keeps as lone surrogates) are shown as ``\\xNN``.

    Examples
    --------
    >>> shown("sessions/bad-\\udcff-name")
    'sessions/bad-\\\\xff-name'
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _fields(options: ImportOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in ImportOptions.__slots__}
