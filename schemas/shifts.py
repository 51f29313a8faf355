"""Emotion shifts derived from turn labels, under both definitions of the literature.

- ``"speaker"`` (MELD): a turn shifts when the same speaker's previous turn has another
  emotion;
- ``"adjacent"`` (EmoryNLP): a turn shifts when the turn right before it, whoever spoke
  it, has another emotion.

Derived shift types are computed, never asked of annotators: ``valence_flip`` (positive
to negative or back), ``arousal_escalation`` / ``arousal_deescalation``, ``neutral_onset``
(into the neutral category) and ``neutral_offset`` (out of it). Valence and arousal come from
the turn's ratings when it has them (midpoint of the scale splits the valence), otherwise
from the category's declared polarity and arousal.

Example
-------
>>> from schemas.taxonomy import load_taxonomy
>>> tax = load_taxonomy()
>>> turns = [TurnLabel("t0", "p01", "neutral"), TurnLabel("t1", "p02", "joy"),
...          TurnLabel("t2", "p01", "anger")]
>>> [(s.turn_id, s.shifted, s.types) for s in find_shifts(turns, tax, "speaker")]
[('t2', True, ('arousal_escalation', 'neutral_offset'))]
>>> [(s.turn_id, s.types) for s in find_shifts(turns, tax, "adjacent")]
[('t1', ('arousal_escalation', 'neutral_offset')), ('t2', ('valence_flip',))]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from schemas.errors import TaxonomyError
from schemas.taxonomy import Label, Taxonomy

SHIFT_TYPES = (
    "valence_flip",
    "arousal_escalation",
    "arousal_deescalation",
    "neutral_onset",
    "neutral_offset",
)
_AROUSAL_RANK = {"low": 0, "medium": 1, "high": 2}
_POLARITY_SIGN = {"positive": 1, "negative": -1}


@dataclass(frozen=True, slots=True)
class TurnLabel:
    """One turn's label: its emotion and, when rated, valence and arousal (scale units)."""

    turn_id: str
    speaker: str
    emotion: str | None
    valence: float | None = None
    arousal: float | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    """A turn compared with its previous turn under one definition."""

    turn_id: str
    previous_turn_id: str
    definition: str
    from_emotion: str | None
    to_emotion: str | None
    types: tuple[str, ...]

    @property
    def shifted(self) -> bool:
        """True when the emotion differs from the previous turn's."""
        return self.from_emotion != self.to_emotion


def _previous_same_speaker(turns: Sequence[TurnLabel], i: int) -> int | None:
    for k in range(i - 1, -1, -1):
        if turns[k].speaker == turns[i].speaker:
            return k
    return None


def _previous_any(turns: Sequence[TurnLabel], i: int) -> int | None:
    return i - 1 if i > 0 else None


DEFINITIONS: dict[str, Callable[[Sequence[TurnLabel], int], int | None]] = {
    "speaker": _previous_same_speaker,
    "adjacent": _previous_any,
}


def _valence_sign(turn: TurnLabel, taxonomy: Taxonomy) -> int:
    if turn.valence is not None:
        scale = _scale_of(taxonomy, "valence")
        mid = (scale[0] + scale[1]) / 2 if scale else 0.0
        return (turn.valence > mid) - (turn.valence < mid)
    label = _label(taxonomy, turn.emotion)
    return _POLARITY_SIGN.get(label.polarity or "", 0) if label else 0


def _arousal_level(turn: TurnLabel, taxonomy: Taxonomy) -> float | None:
    if turn.arousal is not None:
        return float(turn.arousal)
    label = _label(taxonomy, turn.emotion)
    if label is None or label.arousal is None:
        return None
    scale = _scale_of(taxonomy, "arousal") or (0, 2)
    # place the category's level on the rating scale so both sources compare
    return scale[0] + (scale[1] - scale[0]) * _AROUSAL_RANK[label.arousal] / 2


def _scale_of(taxonomy: Taxonomy, name: str) -> tuple[int, int] | None:
    for dim in taxonomy.dimensions:
        if dim.name == name and dim.min is not None and dim.max is not None:
            return dim.min, dim.max
    return None


def _label(taxonomy: Taxonomy, value: str | None) -> Label | None:
    for label in taxonomy.emotion.labels:
        if label.value == value:
            return label
    return None


def shift_types(previous: TurnLabel, current: TurnLabel, taxonomy: Taxonomy) -> tuple[str, ...]:
    """The derived shift types from ``previous`` to ``current`` (in :data:`SHIFT_TYPES` order)."""
    found = []
    before, after = _valence_sign(previous, taxonomy), _valence_sign(current, taxonomy)
    if before * after < 0:
        found.append("valence_flip")
    low, high = _arousal_level(previous, taxonomy), _arousal_level(current, taxonomy)
    if low is not None and high is not None:
        if high > low:
            found.append("arousal_escalation")
        elif high < low:
            found.append("arousal_deescalation")
    neutral = taxonomy.shift.neutral
    if neutral is not None and previous.emotion != current.emotion:
        if current.emotion == neutral and previous.emotion is not None:
            found.append("neutral_onset")
        if previous.emotion == neutral and current.emotion is not None:
            found.append("neutral_offset")
    return tuple(found)


def find_shifts(
    turns: Sequence[TurnLabel], taxonomy: Taxonomy, definition: str = "speaker"
) -> list[Shift]:
    """Compare each turn with its previous turn under ``definition``; shifted ones only.

    Turns are in dialogue order. Turns whose emotion or whose previous turn's emotion is
    unknown (``None``) are not compared.
    """
    previous_of = DEFINITIONS.get(definition)
    if previous_of is None:
        raise TaxonomyError(
            f"unknown shift definition {definition!r}; expected one of {sorted(DEFINITIONS)}"
        )
    shifts = []
    for i, turn in enumerate(turns):
        k = previous_of(turns, i)
        if k is None:
            continue
        before = turns[k]
        if before.emotion is None or turn.emotion is None or before.emotion == turn.emotion:
            continue
        shifts.append(
            Shift(
                turn.turn_id,
                before.turn_id,
                definition,
                before.emotion,
                turn.emotion,
                shift_types(before, turn, taxonomy),
            )
        )
    return shifts


def previous_turns(turns: Sequence[TurnLabel], definition: str = "speaker") -> list[int | None]:
    """For each turn, the index of its previous turn under ``definition`` (or None)."""
    previous_of = DEFINITIONS.get(definition)
    if previous_of is None:
        raise TaxonomyError(
            f"unknown shift definition {definition!r}; expected one of {sorted(DEFINITIONS)}"
        )
    return [previous_of(turns, i) for i in range(len(turns))]
