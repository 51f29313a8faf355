"""``session.yaml``: read it, check its keys, and infer the files it leaves out.

Every function here raises :class:`~schemas.errors.SessionError` (or ``MediaError`` /
``TranscriptError`` from the readers) naming the file and value; :func:`collect` records
such an error instead, so that :func:`importers.session.load_session` reports every
independent problem of a session in one run (:class:`SessionProblems`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from importers.media import MediaInfo, probe
from importers.session_infer import (
    MEDIA_EXTENSIONS,
    SESSION_FILE,
    candidates,
    choose,
    is_session_folder,
    valid_id,
)
from importers.transcripts import Transcript, read_transcript
from schemas.errors import AnnotateError, SessionError
from schemas.records import IntendedEmotion, Performer

__all__ = [
    "KNOWN_KEYS",
    "SessionProblems",
    "collect",
    "problems_of",
    "read_meta",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

KNOWN_KEYS = (
    "id", "title", "prompt", "media", "video", "transcript", "transcript_text",
    "transcript_format", "tiers", "performers", "synthetic", "intended", "licence",
    "consent",
)  # fmt: skip


class SessionProblems(SessionError):
    """Several independent problems of one session folder, one per line after a header.

    ``problems`` holds each problem's message (a message may span lines, e.g. a
    transcript's list of bad cues).
    """

    def __init__(self, folder: Path, problems: Sequence[BaseException | str]) -> None:
        self.problems = tuple(str(p) for p in problems)
        super().__init__(f"{folder}: {len(self.problems)} problems:\n" + "\n".join(self.problems))


def problems_of(exc: BaseException) -> list[str]:
    """The separate problems an error of :func:`load_session` carries."""
    return list(exc.problems) if isinstance(exc, SessionProblems) else [str(exc)]


@contextmanager
def collect(problems: list[AnnotateError]) -> Iterator[None]:
    """Record an error in ``problems`` instead of stopping: problems that do not depend on
    each other are all reported in one run."""
    try:
        yield
    except AnnotateError as exc:
        problems.append(exc)


def given(meta: dict[str, Any], key: str) -> bool:
    """Whether ``key`` has a value (not left out, not null, not empty)."""
    return meta.get(key) not in (None, "")


def field_of(meta: dict[str, Any], key: str, source: Path) -> Any:
    """The value of a required ``key``, else an error naming it."""
    if not given(meta, key):
        raise SessionError(f"{source}: missing required key {key!r}")
    return meta[key]


def text_of(meta: dict[str, Any], key: str, source: Path) -> str | None:
    """An optional free-text value (``licence``, ``consent``): its text, ``None`` when left
    out or empty, an error naming the file and key when it is not a string or a number."""
    value = meta.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SessionError(f'{source}: {key} must be text (e.g. {key}: "CC BY 4.0"), got {value!r}')
    return str(value).strip() or None


def inside(folder: Path, name: str, source: Path, key: str) -> Path:
    """``folder/name`` resolved; an error if it leads out of the folder (``..``, links)."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise SessionError(f"{source}: {key} {name!r} points outside the session folder")
    return path


def flag(value: Any, source: Path, key: str) -> bool:
    """``value`` if it is a YAML boolean, else an error naming ``key``."""
    if not isinstance(value, bool):
        raise SessionError(f"{source}: {key} must be true or false, got {value!r}")
    return value


def read_meta(folder: Path) -> dict[str, Any]:
    """The folder's ``session.yaml`` as a mapping; ``{}`` when a folder holding a recording
    has none (everything is then inferred).

    Raises
    ------
    SessionError
        ``session.yaml`` not UTF-8, not YAML or not a mapping; or the folder holds neither
        a ``session.yaml`` nor a recording.
    """
    source = folder / SESSION_FILE
    try:
        meta = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise SessionError(f"{source}: not valid UTF-8 text") from None
    except (FileNotFoundError, NotADirectoryError):
        if is_session_folder(folder):
            return {}
        raise SessionError(
            f"{source}: not found; a session folder needs a {SESSION_FILE} or a recording "
            f"({', '.join(sorted(MEDIA_EXTENSIONS))})"
        ) from None
    except yaml.YAMLError as exc:
        raise SessionError(f"{source}: not valid YAML ({exc})") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise SessionError(f"{source}: expected a mapping of session metadata")
    return meta


def unknown_keys(meta: dict[str, Any], source: Path) -> list[str]:
    """A warning per key session.yaml has that no reader uses (a typo is named with the
    key it is closest to)."""
    notes = []
    for name in meta:
        if str(name) not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(name), KNOWN_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(
                f"{source.name}: unknown key {name!r} ignored{hint}; expected one of "
                f"{', '.join(KNOWN_KEYS)}"
            )
    return notes


def session_id_of(folder: Path, meta: dict[str, Any], source: Path, guessed: dict[str, Any]) -> str:
    """The session id: session.yaml's ``id`` (checked), else the folder's name made valid
    (recorded in ``guessed``)."""
    if given(meta, "id"):
        session_id = str(meta["id"])
        if not _ID.match(session_id):
            raise SessionError(
                f"{source}: id {session_id!r} must be lower-case letters, digits, '-' or '_'"
            )
        return session_id
    session_id = valid_id(folder.resolve().name)
    if not session_id:
        raise SessionError(
            f"{folder}: no session id can be made from the folder's name "
            f"{folder.resolve().name!r} (no ASCII letter or digit); expected 'id: <name>' in "
            f"{SESSION_FILE} (lower-case letters, digits, '-' or '_')"
        )
    guessed["id"] = session_id
    return session_id


def performers_of(
    meta: dict[str, Any], source: Path
) -> tuple[list[dict[str, Any]], tuple[Performer, ...]]:
    """The performers as given (``raw``) and as read; an error if not ``{id, name}`` items."""
    raw = meta["performers"]
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise SessionError(f"{source}: performers must be a list of {{id, name}} mappings")
    performers = tuple(
        Performer(str(field_of(p, "id", source)), str(p.get("name") or p["id"])) for p in raw
    )
    return raw, performers


def named(meta: dict[str, Any], key: str) -> str | None:
    """The file name ``key`` gives, without its folder, or None."""
    return Path(str(meta[key])).name if given(meta, key) else None


def media_of(
    folder: Path, meta: dict[str, Any], source: Path, guessed: dict[str, Any]
) -> tuple[Path, MediaInfo]:
    """The recording and its header: ``media`` as given, else the one recording in the
    folder (recorded in ``guessed``); an error naming the candidates if there are several."""
    if given(meta, "media"):
        media = inside(folder, str(meta["media"]), source, "media")
    else:
        others = {named(meta, k) for k in ("video", "transcript", "transcript_text")}
        recordings = candidates(folder, others - {None})[0]  # type: ignore[arg-type]
        name, problem = choose(recordings, folder, "media", "recording")
        if problem:
            raise SessionError(problem)
        if name is None:
            raise SessionError(
                f"{folder}: no recording; expected one audio or video file "
                f"({', '.join(sorted(MEDIA_EXTENSIONS))}) or 'media: <file>' in {SESSION_FILE}"
            )
        guessed["media"] = name
        media = (folder / name).resolve()
    return media, probe(media)


def transcript_file(
    folder: Path, meta: dict[str, Any], source: Path, guessed: dict[str, Any]
) -> Path | None:
    """The transcript: given, inferred (the one transcript file), or None. ``transcript:``
    present but empty in session.yaml says there is none (turns from voice activity)."""
    if given(meta, "transcript"):
        return inside(folder, str(meta["transcript"]), source, "transcript")
    if "transcript" in meta:
        return None
    others = {named(meta, k) for k in ("media", "video", "transcript_text")}
    name, problem = choose(
        candidates(folder, others - {None})[1],
        folder,
        "transcript",
        "transcript file",  # type: ignore[arg-type]
    )
    if problem:
        raise SessionError(problem)
    guessed["transcript"] = name
    return None if name is None else (folder / name).resolve()


def tiers_of(meta: dict[str, Any], source: Path) -> tuple[str, ...] | None:
    """``tiers``: the tiers that carry speech (ELAN, TextGrid), as a tuple, or None."""
    value = meta.get("tiers")
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(t, str | int) for t in value):
        return tuple(str(t) for t in value)
    raise SessionError(
        f"{source}: tiers {value!r}; expected a list of the transcript's tier names "
        "(ELAN, TextGrid) that carry the speakers' speech"
    )


def read_checked(
    path: Path,
    transcript_format: str | None,
    companion: Path | None,
    duration: float | None,
    tiers: tuple[str, ...] | None,
    media_name: str | None,
) -> Transcript:
    """Read and check the transcript. Segments without a speaker are allowed: the caller
    gives them one (the recording's channels, or ``unknown``)."""
    options: dict[str, Any] = {"text": companion, "tiers": tiers, "media_name": media_name}
    return read_transcript(
        path, transcript_format, media_duration=duration, require_speaker=False, **options
    )


def channels_of(
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


def intended_of(meta: dict[str, Any], source: Path) -> list[IntendedEmotion]:
    """The intended emotion arc (``intended``), each entry checked."""
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
    return intended
