"""Per-turn audio cut-outs: one mono 16-bit WAV per exported turn, beside the rows.

A turn's audio is cut from the session's own recording when the session folder is at hand
(``<sessions_root>/<session id>/session.yaml`` names the media), else from the clip file
Label Studio serves (``<media_root>/<row media>``), at the media's sample rate. A turn whose
media cannot be found or read, or whose span holds no samples, gets no file: its row says
``"turn_audio": null`` and the reason is counted, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

AUDIO_DIR = "audio"
NOT_FOUND = "turn audio: media not found"
UNREADABLE = "turn audio: media unreadable"
EMPTY = "turn audio: span outside the media"


class TurnAudio:
    """Writes the turns' WAV files under ``folder / "audio"``.

    Parameters
    ----------
    folder : Path
        The export folder; files go to ``audio/<session id>/<turn id>.wav`` in it.
    media_root : Path, optional
        The folder Label Studio serves clip media from (the rows' ``media`` is relative
        to it).
    sessions_root : Path, optional
        A folder of session folders, named by session id, holding the original recordings.
    """

    def __init__(
        self, folder: Path, media_root: Path | None = None, sessions_root: Path | None = None
    ) -> None:
        self.folder = folder
        self.media_root = media_root
        self.sessions_root = sessions_root
        self._sessions: dict[str, Path | None] = {}

    def _session_media(self, session_id: str) -> Path | None:
        """The session's recording, from its session.yaml (cached per session)."""
        if session_id not in self._sessions:
            found = None
            if self.sessions_root is not None:
                meta_path = self.sessions_root / session_id / "session.yaml"
                try:
                    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
                    media = meta_path.parent / str(meta["media"])
                    found = media if media.is_file() else None
                except (OSError, KeyError, TypeError, yaml.YAMLError):
                    found = None
            self._sessions[session_id] = found
        return self._sessions[session_id]

    def source(self, row: Mapping[str, Any]) -> tuple[Path, float, float] | None:
        """(media file, start, end) to cut the row's turn from; ``None`` if none is at hand."""
        session = row.get("session_id")
        media = self._session_media(str(session)) if session is not None else None
        if media is not None:
            return media, float(row["start"]), float(row["end"])
        if self.media_root is not None and row.get("media"):
            clip = self.media_root / str(row["media"])
            if clip.is_file():
                return clip, float(row["media_start"]), float(row["media_end"])
        return None

    def cut(self, row: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """Write the row's turn audio: (its path relative to the export folder, ``None``), or
        (``None``, the reason there is no file)."""
        found = self.source(row)
        if found is None:
            return None, NOT_FOUND
        media, start, end = found
        relative = Path(AUDIO_DIR) / _safe(str(row["session_id"])) / f"{_safe(row['turn_id'])}.wav"
        try:
            with sf.SoundFile(media) as audio:
                rate = audio.samplerate
                first = max(0, round(start * rate))
                last = min(audio.frames, round(end * rate))
                if last <= first:
                    return None, EMPTY
                audio.seek(first)
                samples = audio.read(last - first, dtype="float32", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError):
            return None, UNREADABLE
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part.wav")
        sf.write(partial, np.ascontiguousarray(mono), rate, subtype="PCM_16")
        partial.replace(target)
        return relative.as_posix(), None


def _safe(name: str) -> str:
    """An id as one file-name component (path separators and dot-only names replaced)."""
    cleaned = name.replace("/", "_").replace("\\", "_")
    return cleaned if cleaned.strip(".") else cleaned.replace(".", "_") or "_"
