"""What a session folder says without a ``session.yaml``: id, title, recording, transcript.

A folder holding one recording and one transcript is a session as it stands; every key
``session.yaml`` leaves out is inferred from the folder, and an explicit value always wins:

===========  =====================================================================
key          inferred as
===========  =====================================================================
id           the folder's name made valid (:func:`valid_id`)
title        the folder's name as written
media        the one recording in the folder (:data:`MEDIA_EXTENSIONS`)
transcript   the one transcript file (:data:`importers.transcripts.EXTENSIONS`)
performers   the transcript's speakers, or the recording's channels
===========  =====================================================================

Hidden files, ``session.yaml`` and files other keys name (``video``, ``transcript_text``)
are never candidates. Two candidates for one key is an error naming them and the key that
settles it.

Example
-------
>>> valid_id("Café Scène 1"), valid_id("SPEAKER_00"), valid_id("__take 2__"), valid_id("日本")
('cafe-scene-1', 'speaker_00', 'take-2', '')
>>> unique_ids(["Maya", "maya!", "山田", "Theo"])
['maya', 'maya-2', 'speaker-3', 'theo']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from importers.transcripts import EXTENSIONS as TRANSCRIPT_EXTENSIONS

__all__ = [
    "MEDIA_EXTENSIONS",
    "SESSION_FILE",
    "candidates",
    "choose",
    "is_session_folder",
    "unique_ids",
    "valid_id",
]

SESSION_FILE = "session.yaml"

#: Extensions of the recordings :mod:`importers.media` reads (libsndfile natively, the rest
#: through ffmpeg), lower-case.
MEDIA_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
        ".w64", ".caf", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".webm", ".mka", ".mkv",
        ".avi", ".wma",
    }
)  # fmt: skip

# Files the tool or editors leave beside a session's own files: never candidates.
_OWN_SUFFIXES = (".partial", ".tmp", "~", ".bak", ".orig")
_INVALID_RUN = re.compile(r"[^a-z0-9_-]+")


def valid_id(text: str) -> str:
    """``text`` as a valid id: lower-case ``[a-z0-9_-]`` starting with a letter or digit.

    Accents are dropped (``é`` -> ``e``, by Unicode decomposition), other characters
    that are not ASCII are dropped, runs of anything else become one ``-``, and leading
    or trailing ``-`` / ``_`` are removed. The empty string when nothing is left.
    """
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _INVALID_RUN.sub("-", plain.lower())
    slug = re.sub(r"-{2,}", "-", slug)
    return slug.strip("-_")


def unique_ids(names: Sequence[str], fallback: str = "speaker") -> list[str]:
    """A valid, distinct id per name, in order: :func:`valid_id`, else ``f"{fallback}-{n}"``
    (``n`` the name's 1-based position); a repeated id gets ``-2``, ``-3``, ... appended."""
    ids: list[str] = []
    for n, name in enumerate(names, start=1):
        base = valid_id(name) or f"{fallback}-{n}"
        made, k = base, 1
        while made in ids:
            k += 1
            made = f"{base}-{k}"
        ids.append(made)
    return ids


def _candidate(path: Path, exclude: set[str]) -> bool:
    name = path.name
    return (
        path.is_file()
        and not name.startswith((".", "~$"))
        and name != SESSION_FILE
        and not name.endswith(_OWN_SUFFIXES)
        and name not in exclude
    )


def candidates(folder: Path, exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(recordings, transcripts)``: the file names in ``folder`` (not its sub-folders)
    that could be its recording or its transcript, sorted.

    ``exclude``: file names other keys already name (``video``, ``transcript_text``).
    """
    skip = set(exclude)
    recordings, transcripts = [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return [], []
    for path in entries:
        if not _candidate(path, skip):
            continue
        suffix = path.suffix.lower()
        if suffix in MEDIA_EXTENSIONS:
            recordings.append(path.name)
        elif suffix in TRANSCRIPT_EXTENSIONS:
            transcripts.append(path.name)
    return recordings, transcripts


def choose(found: list[str], folder: Path, key: str, what: str) -> tuple[str | None, str | None]:
    """``(file name, problem)``: the one candidate, or a message saying there are several
    (naming them and ``key``), or ``(None, None)`` when there is none."""
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, None
    listed = ", ".join(repr(f) for f in found)
    return None, (
        f"{folder}: {len(found)} {what}s ({listed}); expected one, or '{key}: <file>' in "
        f"{SESSION_FILE} naming the one to use"
    )


def is_session_folder(folder: Path) -> bool:
    """Whether ``folder`` is a session: it holds a ``session.yaml`` or a recording."""
    if (folder / SESSION_FILE).is_file():
        return True
    return folder.is_dir() and bool(candidates(folder)[0])
