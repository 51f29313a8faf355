"""The exception hierarchy of improv-annotate.

One root, :class:`AnnotateError`; each subclass also inherits the builtin a caller would
catch without knowing this project (``ValueError`` for bad values, ``OSError`` for files).
"""

from __future__ import annotations


class AnnotateError(Exception):
    """Root of every error raised on purpose by improv-annotate."""


class TaxonomyError(AnnotateError, ValueError):
    """A taxonomy file or a label does not fit the taxonomy's rules."""


class TranscriptError(AnnotateError, ValueError):
    """A transcript does not parse; the message names the file and line."""


class SessionError(AnnotateError, ValueError):
    """A session folder is incomplete or inconsistent (metadata, media, times)."""


class MediaError(AnnotateError, OSError):
    """A media file is missing, unreadable or not audio/video."""


class CodecError(AnnotateError, ValueError):
    """A Label Studio result cannot be turned into judgements."""
