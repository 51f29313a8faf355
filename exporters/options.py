"""What an export is asked for (:class:`ExportOptions`) and what it counts on the way
(:class:`Accounting`): every judgement read is either exported or counted as skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from exporters.schema import LABEL_SPACES

__all__ = ["Accounting", "ExportOptions"]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What to export and how.

    ``min_annotators``: turns labeled (emotion) by fewer annotators are skipped.
    ``min_clip_agreement``: clips whose emotion alpha is below (or undefined) are skipped.
    ``sessions``: only these sessions (None: all). ``since`` / ``until``: only annotations
    last updated in this window. ``include_cancelled``: list who cancelled a turn's clip.
    ``label_space``: emotion labels as ours, or mapped to MELD's or IEMOCAP's.
    ``real_ids``: annotator ids as Label Studio's user ids instead of salted pseudonyms.
    ``turn_audio``: write one WAV per exported turn (:mod:`exporters.audio`), cut from the
    session recording under ``sessions_root`` (a folder of session folders) when there,
    else from the clip file under ``media_root`` (the folder Label Studio serves clips
    from); rows then hold ``turn_audio``, the file's path relative to the export folder.
    ``licence`` / ``consent``: what the data card states for sessions whose session.yaml
    gives none (config.yaml's ``dataset`` section); ``None``: "not given".
    ``simulated_annotators``: the labels come from the annotator simulator (the demo),
    ``False``: from people, ``None``: not stated.
    """

    min_annotators: int = 0
    min_clip_agreement: float | None = None
    include_cancelled: bool = False
    sessions: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    label_space: str = "ours"
    real_ids: bool = False
    salt: str = ""
    shift_tolerance: float = 1.0
    turn_audio: bool = False
    media_root: Path | None = None
    sessions_root: Path | None = None
    licence: str | None = None
    consent: str | None = None
    simulated_annotators: bool | None = None
    adjudicators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.real_ids and not self.salt:
            raise ValueError(
                "a secret salt is needed to pseudonymise annotator ids; give salt=, or "
                "real_ids=True"
            )
        if self.turn_audio and self.media_root is None and self.sessions_root is None:
            raise ValueError(
                "turn_audio needs media_root= (the folder Label Studio serves clips from) "
                "or sessions_root= (a folder of session folders)"
            )
        if self.label_space not in LABEL_SPACES:
            raise ValueError(
                f"unknown label space {self.label_space!r}; expected one of {list(LABEL_SPACES)}"
            )


@dataclass(slots=True)
class Accounting:
    """Judgements read, exported, and skipped by reason; turns written; turn audio files
    written and turns without one, by reason.

    ``dropped``: result items of the exported annotations that never became a judgement
    (an unknown label, a second value for one turn, a shift without times, the values of
    a cancelled annotation, ...), by reason, as the store counted them when the
    annotation arrived (:func:`schemas.codec.decode_rows`).
    """

    read: int = 0
    exported: int = 0
    turns: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    audio_written: int = 0
    audio_skipped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Accounting) -> None:
        """Add another part's counts to these."""
        self.read += other.read
        self.exported += other.exported
        self.turns += other.turns
        self.skipped.update(other.skipped)
        self.audio_written += other.audio_written
        self.audio_skipped.update(other.audio_skipped)
        self.dropped.update(other.dropped)

    def check(self) -> None:
        """Every judgement read is exported or counted as skipped."""
        if self.read != self.exported + sum(self.skipped.values()):
            raise RuntimeError(
                f"export lost judgements: read {self.read}, exported {self.exported}, "
                f"skipped {dict(self.skipped)}"
            )
