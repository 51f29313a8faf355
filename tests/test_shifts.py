"""Derived shift types and the two shift definitions (schemas/shifts.py)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas.shifts
from schemas.errors import TaxonomyError
from schemas.shifts import SHIFT_TYPES, TurnLabel, find_shifts, previous_turns, shift_types
from schemas.taxonomy import load_taxonomy

TAX = load_taxonomy()
EMOTIONS = TAX.emotion.values


def test_doctests() -> None:
    assert doctest.testmod(schemas.shifts).failed == 0


def test_speaker_definition_compares_with_the_same_speakers_previous_turn() -> None:
    turns = [
        TurnLabel("t0", "A", "joy"),
        TurnLabel("t1", "B", "anger"),
        TurnLabel("t2", "A", "joy"),  # same as A's last: no shift for MELD
        TurnLabel("t3", "B", "sadness"),  # B: anger -> sadness
    ]
    speaker = find_shifts(turns, TAX, "speaker")
    assert [(s.turn_id, s.previous_turn_id, s.from_emotion, s.to_emotion) for s in speaker] == [
        ("t3", "t1", "anger", "sadness")
    ]
    adjacent = find_shifts(turns, TAX, "adjacent")
    assert [(s.turn_id, s.previous_turn_id) for s in adjacent] == [
        ("t1", "t0"),
        ("t2", "t1"),
        ("t3", "t2"),
    ]
    assert previous_turns(turns, "speaker") == [None, None, 0, 1]
    assert previous_turns(turns, "adjacent") == [None, 0, 1, 2]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("joy", "sadness", ("valence_flip", "arousal_deescalation")),
        ("sadness", "anger", ("arousal_escalation",)),
        ("anger", "neutral", ("arousal_deescalation", "neutral_onset")),
        ("neutral", "fear", ("arousal_escalation", "neutral_offset")),
        ("surprise", "anger", ()),  # surprise is ambiguous: no flip; both high arousal
        ("fear", "disgust", ("arousal_deescalation",)),
    ],
)
def test_types_from_category_polarity_and_arousal(before: str, after: str, expected: tuple) -> None:
    assert shift_types(TurnLabel("a", "A", before), TurnLabel("b", "A", after), TAX) == expected


def test_ratings_win_over_categories() -> None:
    # joy rated as negative valence (2 of 1..5) and calm: sadness rated 1 and calmer still
    before = TurnLabel("a", "A", "joy", valence=2, arousal=3)
    after = TurnLabel("b", "A", "sadness", valence=1, arousal=2)
    assert shift_types(before, after, TAX) == ("arousal_deescalation",)
    # the midpoint 3 is neither side: no flip from 3 to 5
    assert "valence_flip" not in shift_types(
        TurnLabel("a", "A", "neutral", valence=3), TurnLabel("b", "A", "joy", valence=5), TAX
    )
    assert "valence_flip" in shift_types(
        TurnLabel("a", "A", "anger", valence=4), TurnLabel("b", "A", "joy", valence=2), TAX
    )


def test_unknown_emotions_are_not_compared() -> None:
    turns = [TurnLabel("t0", "A", None), TurnLabel("t1", "A", "joy"), TurnLabel("t2", "A", None)]
    assert find_shifts(turns, TAX, "adjacent") == []


def test_unknown_definition_lists_the_known_ones() -> None:
    with pytest.raises(
        TaxonomyError,
        match=r"unknown shift definition 'emory'; expected one of "
        r"\['adjacent', 'speaker'\]",
    ):
        find_shifts([], TAX, "emory")
    with pytest.raises(TaxonomyError, match="unknown shift definition"):
        previous_turns([], "x")


@given(st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from(EMOTIONS)), max_size=30))
def test_every_reported_shift_changes_emotion_and_types_are_known(pairs: list) -> None:
    turns = [TurnLabel(f"t{i}", s, e) for i, (s, e) in enumerate(pairs)]
    for definition in ("speaker", "adjacent"):
        found = find_shifts(turns, TAX, definition)
        index = {t.turn_id: i for i, t in enumerate(turns)}
        for shift in found:
            assert shift.shifted
            assert set(shift.types) <= set(SHIFT_TYPES)
            i, k = index[shift.turn_id], index[shift.previous_turn_id]
            assert k < i
            if definition == "speaker":
                assert turns[k].speaker == turns[i].speaker
                assert all(t.speaker != turns[i].speaker for t in turns[k + 1 : i])
            else:
                assert k == i - 1
        # adjacent shifts are exactly the positions where the emotion changes
        if definition == "adjacent":
            expected = [
                f"t{i}" for i in range(1, len(turns)) if turns[i].emotion != turns[i - 1].emotion
            ]
            assert [s.turn_id for s in found] == expected
