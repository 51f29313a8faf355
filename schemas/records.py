"""Core records: sessions, turns, clips, judgements and shift events.

Small frozen dataclasses; seconds as floats; ids built deterministically from their parents
(``Turn.id == f"{session_id}-t{index:05d}"``). Each record has ``to_dict`` / ``from_dict``
for JSON.

Example
-------
>>> t = Turn.make("cafe", 3, "p01", 1.0, 2.5, "Hi!")
>>> t.id, t.duration
('cafe-t00003', 1.5)
>>> Turn.from_dict(t.to_dict()) == t
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self


class _Record:
    """JSON helpers shared by the records (tuples of records round-trip too)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the record."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build the record from :meth:`to_dict`'s output; unknown keys are an error."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {unknown}; expected {sorted(names)}")
        data = dict(data)
        for name, record in cls._nested().items():
            if name in data:
                data[name] = tuple(record.from_dict(item) for item in data[name])
        for f in fields(cls):  # type: ignore[arg-type]
            if isinstance(data.get(f.name), list):
                data[f.name] = tuple(data[f.name])
        return cls(**data)

    @classmethod
    def _nested(cls) -> dict[str, type[_Record]]:
        """Fields holding tuples of other records."""
        return {}


@dataclass(frozen=True, slots=True)
class Performer(_Record):
    """A performer of a session: a stable id and a display name."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Turn(_Record):
    """One speaker's turn: times in seconds from the start of the session's media."""

    id: str
    session_id: str
    index: int
    speaker: str
    start: float
    end: float
    text: str
    prosody: Mapping[str, float | None] | None = None

    @classmethod
    def make(
        cls,
        session_id: str,
        index: int,
        speaker: str,
        start: float,
        end: float,
        text: str,
        prosody: Mapping[str, float | None] | None = None,
    ) -> Turn:
        """A turn with its id derived from the session id and index."""
        return cls(
            f"{session_id}-t{index:05d}", session_id, index, speaker, start, end, text, prosody
        )

    @property
    def duration(self) -> float:
        """Length of the turn in seconds."""
        return round(self.end - self.start, 6)


@dataclass(frozen=True, slots=True)
class IntendedEmotion(_Record):
    """What the scene's prompt (or a synthetic generator) intended at a turn."""

    turn: int
    performer: str
    start: float
    end: float
    emotion: str


@dataclass(frozen=True, slots=True)
class Session(_Record):
    """A recorded scene: metadata, media and its turns."""

    id: str
    title: str
    prompt: str
    media: str
    duration: float
    performers: tuple[Performer, ...]
    turns: tuple[Turn, ...]
    intended: tuple[IntendedEmotion, ...] = ()
    synthetic: bool = False
    video: str | None = None
    licence: str | None = None
    consent: str | None = None

    @classmethod
    def _nested(cls) -> dict[str, type[_Record]]:
        return {"performers": Performer, "turns": Turn, "intended": IntendedEmotion}

    def intended_for(self, turn: Turn) -> str | None:
        """The intended emotion at ``turn``, if the session declares one."""
        for item in self.intended:
            if item.turn == turn.index:
                return item.emotion
        return None


@dataclass(frozen=True, slots=True)
class Clip(_Record):
    """Consecutive turns of a session labeled together as one Label Studio task."""

    id: str
    session_id: str
    index: int
    start: float
    end: float
    turn_ids: tuple[str, ...]

    @property
    def duration(self) -> float:
        """Length of the clip in seconds."""
        return round(self.end - self.start, 6)


@dataclass(frozen=True, slots=True)
class Judgement(_Record):
    """One annotator's value for one turn and one dimension (long format)."""

    annotation_id: int
    task_id: int
    annotator: str
    turn_id: str
    dimension: str
    value: str
    taxonomy: str
    taxonomy_version: str


@dataclass(frozen=True, slots=True)
class ShiftEvent(_Record):
    """A span where an annotator marked an emotion shift; times in session seconds."""

    annotation_id: int
    task_id: int
    annotator: str
    session_id: str
    start: float
    end: float
    from_emotion: str | None
    to_emotion: str | None
    trigger: str | None
    onset: str | None
    trigger_turn: str | None = None  # the turn the annotator linked as its cause
