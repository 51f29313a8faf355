"""Tests for schemas.codec: encode -> decode round trips, skip counts, annotator ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from schemas.codec import (
    Decoded,
    annotator_of,
    decode_annotation,
    encode_annotation,
    turn_regions,
)
from schemas.errors import TaxonomyError
from schemas.label_config import label_config
from schemas.records import Judgement, ShiftEvent
from schemas.taxonomy import Taxonomy, default_taxonomy_path, load_taxonomy, taxonomy_from_dict

OFFSET = 10.25
SESSION = "s1"


def dialogue(n: int = 3) -> list[dict[str, Any]]:
    """A clip's dialogue as the importer writes it (times in clip seconds)."""
    return [
        {
            "speaker": "Maya" if i % 2 == 0 else "Theo",
            "performer": "p01" if i % 2 == 0 else "p02",
            "text": f"line number {i} - café",
            "start": 0.25 + 2.0 * i,
            "end": 1.75 + 2.0 * i,
            "turn_id": f"{SESSION}-t{i + 4:05d}",
            "turn_index": i + 4,
        }
        for i in range(n)
    ]


def task_data(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dialogue": lines, "session_id": SESSION, "audio_offset": OFFSET}


def annotation(result: list[dict[str, Any]], completed_by: Any = 3) -> dict[str, Any]:
    return {"id": 17, "task": 42, "completed_by": completed_by, "result": result}


def random_values(
    taxonomy: Taxonomy, n_turns: int, rng: np.random.Generator
) -> dict[int, dict[str, str | int]]:
    """A value for every dimension of every turn."""
    values: dict[int, dict[str, str | int]] = {}
    for i in range(n_turns):
        values[i] = {}
        for dim in taxonomy.dimensions:
            if dim.kind == "choice":
                values[i][dim.name] = str(rng.choice(dim.values))
            else:
                values[i][dim.name] = int(rng.choice(dim.scale))
    return values


@pytest.fixture
def taxonomy() -> Taxonomy:
    return load_taxonomy()


SHIFTS = [
    {
        "start": 0.5,
        "end": 1.25,
        "from": "neutral",
        "to": "joy",
        "trigger": "partner-induced",
        "onset": "abrupt",
    },
    {"start": 3.0, "end": 4.5, "from": "joy", "to": "anger"},
]


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("extension", [False, True])
def test_round_trip(seed: int, extension: bool) -> None:
    taxonomy = load_taxonomy(extension=extension)
    rng = np.random.default_rng(seed)
    lines = dialogue(4)
    values = random_values(taxonomy, len(lines), rng)
    result = encode_annotation(lines, values, taxonomy, shifts=SHIFTS, note="Great scene.")
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)

    assert isinstance(decoded, Decoded)
    assert decoded.skipped == {}
    assert decoded.note == "Great scene."
    expected = {
        Judgement(
            17, 42, "3", lines[i]["turn_id"], name, str(value), taxonomy.name, taxonomy.version
        )
        for i, dims in values.items()
        for name, value in dims.items()
    }
    assert set(decoded.judgements) == expected
    assert len(decoded.judgements) == len(lines) * len(taxonomy.dimensions)
    assert decoded.shifts == (
        ShiftEvent(
            17, 42, "3", SESSION, 10.75, 11.5, "neutral", "joy", "partner-induced", "abrupt"
        ),
        ShiftEvent(17, 42, "3", SESSION, 13.25, 14.75, "joy", "anger", None, None),
    )


def test_ratings_come_back_as_integer_strings(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    result = encode_annotation(lines, {0: {"arousal": 4, "valence": "2"}}, taxonomy)
    ratings = [item for item in result if item["type"] == "rating"]
    assert [item["value"]["rating"] for item in ratings] == [4, 2]
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    assert {(j.dimension, j.value) for j in decoded.judgements} == {
        ("arousal", "4"),
        ("valence", "2"),
    }
    # Label Studio may send a float rating.
    ratings[0]["value"]["rating"] = 4.0
    decoded = decode_annotation(annotation(ratings[:1]), task_data(lines), taxonomy)
    assert [j.value for j in decoded.judgements] == ["4"]


def test_partial_annotation_gives_only_what_was_filled(taxonomy: Taxonomy) -> None:
    lines = dialogue(3)
    result = encode_annotation(lines, {1: {"emotion": "fear"}}, taxonomy)
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    assert [(j.turn_id, j.dimension, j.value) for j in decoded.judgements] == [
        ("s1-t00005", "emotion", "fear")
    ]
    assert decoded.shifts == ()
    assert decoded.note is None
    assert decoded.skipped == {}


def test_scale_from_zero_round_trips_as_choices() -> None:
    import yaml

    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    raw["dimensions"][1].update(min=0, max=3)
    raw["dimensions"][1].pop("hotkeys")
    taxonomy = taxonomy_from_dict(raw)
    lines = dialogue(1)
    result = encode_annotation(lines, {0: {"intensity": 0}}, taxonomy)
    (item,) = [i for i in result if i["from_name"] == "intensity"]
    assert item["type"] == "choices"
    assert item["value"]["choices"] == ["0"]
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    assert [(j.dimension, j.value) for j in decoded.judgements] == [("intensity", "0")]
    assert (
        LabelInterface(label_config(taxonomy)).validate_prediction(
            {"result": result}, return_errors=True
        )
        == []
    )


def test_ids_and_task_fallbacks(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    result = encode_annotation(lines, {0: {"emotion": "joy"}}, taxonomy)
    ann = {"id": "5", "completed_by": {"id": 9}, "result": result}
    decoded = decode_annotation(ann, {**task_data(lines), "task_id": 77}, taxonomy)
    (j,) = decoded.judgements
    assert (j.annotation_id, j.task_id, j.annotator) == (5, 77, "9")
    decoded = decode_annotation(ann, {"dialogue": lines}, taxonomy)
    assert decoded.judgements[0].task_id == 0


def test_shift_without_offset_and_session(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    result = encode_annotation(lines, {}, taxonomy, shifts=SHIFTS[:1])
    decoded = decode_annotation(annotation(result), {"dialogue": lines}, taxonomy)
    (shift,) = decoded.shifts
    assert (shift.session_id, shift.start, shift.end) == ("", 0.5, 1.25)


def test_shift_times_rounded_to_milliseconds(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    result = encode_annotation(lines, {}, taxonomy, shifts=[{"start": 1.23456, "end": 2.0}])
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    (shift,) = decoded.shifts
    assert (shift.start, shift.end) == (11.485, 12.25)
    assert (shift.from_emotion, shift.to_emotion, shift.trigger, shift.onset) == (None,) * 4


def test_shift_choice_before_its_labels_item(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    result = encode_annotation(lines, {}, taxonomy, shifts=SHIFTS[:1])
    shift_items = [i for i in result if i["to_name"] == "audio"]
    decoded = decode_annotation(annotation(shift_items[::-1]), task_data(lines), taxonomy)
    assert decoded.shifts[0].from_emotion == "neutral"
    assert (decoded.shifts[0].start, decoded.shifts[0].end) == (10.75, 11.5)


def test_multi_line_note(taxonomy: Taxonomy) -> None:
    item = {
        "id": "n",
        "from_name": "note",
        "to_name": "dialogue",
        "type": "textarea",
        "value": {"text": ["first", "second"]},
    }
    decoded = decode_annotation(annotation([item]), task_data(dialogue(1)), taxonomy)
    assert decoded.note == "first\nsecond"
    item["value"]["text"] = []
    assert decode_annotation(annotation([item]), task_data(dialogue(1)), taxonomy).note is None


def test_empty_annotation(taxonomy: Taxonomy) -> None:
    decoded = decode_annotation(annotation([]), task_data(dialogue(2)), taxonomy)
    assert decoded == Decoded((), (), None, {})
    ann = {"id": 1, "completed_by": 1, "result": None}
    assert decode_annotation(ann, {}, taxonomy) == Decoded((), (), None, {})


# --- encoding -------------------------------------------------------------------------------


def test_turn_regions_one_per_line() -> None:
    lines = dialogue(3)
    regions = turn_regions(lines)
    assert [r["id"] for r in regions] == ["turn0", "turn1", "turn2"]
    assert all(r["from_name"] == "turn" and r["to_name"] == "dialogue" for r in regions)
    assert all(r["type"] == "paragraphlabels" for r in regions)
    assert regions[1]["value"] == {
        "start": "1",
        "end": "1",
        "startOffset": 0,
        "endOffset": len(lines[1]["text"]),
        "paragraphlabels": ["turn"],
    }


def test_turn_values_share_their_turn_region_id(taxonomy: Taxonomy) -> None:
    result = encode_annotation(dialogue(2), {1: {"emotion": "joy", "intensity": 2}}, taxonomy)
    assert [i["id"] for i in result if i["from_name"] != "turn"] == ["turn1", "turn1"]


def test_shift_parts_share_their_span_region_id(taxonomy: Taxonomy) -> None:
    result = encode_annotation(dialogue(1), {}, taxonomy, shifts=SHIFTS)
    audio = [(i["id"], i["from_name"]) for i in result if i["to_name"] == "audio"]
    assert audio == [
        ("shift0", "shift"),
        ("shift0", "shift_from"),
        ("shift0", "shift_to"),
        ("shift0", "shift_trigger"),
        ("shift0", "shift_onset"),
        ("shift1", "shift"),
        ("shift1", "shift_from"),
        ("shift1", "shift_to"),
    ]


def test_encode_rejects_unknown_dimension_and_label(taxonomy: Taxonomy) -> None:
    with pytest.raises(TaxonomyError, match=r"unknown dimension 'mood'; expected one of"):
        encode_annotation(dialogue(1), {0: {"mood": "joy"}}, taxonomy)
    with pytest.raises(TaxonomyError, match=r"'awe' is not a label of dimension 'emotion'"):
        encode_annotation(dialogue(1), {0: {"emotion": "awe"}}, taxonomy)
    with pytest.raises(TaxonomyError, match=r"expected 1\.\.5"):
        encode_annotation(dialogue(1), {0: {"arousal": 6}}, taxonomy)


@pytest.mark.parametrize("extension", [False, True])
def test_result_items_validate_with_the_sdk(extension: bool) -> None:
    taxonomy = load_taxonomy(extension=extension)
    lines = dialogue(3)
    values = random_values(taxonomy, len(lines), np.random.default_rng(7))
    result = encode_annotation(lines, values, taxonomy, shifts=SHIFTS, note="ok")
    interface = LabelInterface(label_config(taxonomy))
    assert interface.validate_prediction({"result": result}, return_errors=True) == []
    assert interface.validate_annotation({"result": result}) is True
    # The validator is not vacuous: a label outside the config is reported.
    bad = dict(result[-2], value={**result[-2]["value"], "choices": ["awe"]})
    errors = interface.validate_prediction({"result": [*result, bad]}, return_errors=True)
    assert len(errors) == 1
    assert "Invalid value" in errors[0]


# --- skipped items --------------------------------------------------------------------------


def _choice(name: str, index: Any, choices: list[str], to_name: str = "dialogue") -> dict:
    value: dict[str, Any] = {"choices": choices}
    if index is not None:
        value.update(start=str(index), end=str(index), startOffset=0, endOffset=4)
    return {
        "id": f"r{index}",
        "from_name": name,
        "to_name": to_name,
        "type": "choices",
        "value": value,
    }


def _rating(name: str, index: Any, rating: Any) -> dict:
    return {
        "id": f"r{index}",
        "from_name": name,
        "to_name": "dialogue",
        "type": "rating",
        "value": {"start": str(index), "end": str(index), "rating": rating},
    }


SKIPS = {
    "unknown control": ([_choice("mood", 0, ["joy"])], {"unknown control": 1}),
    "unknown label": ([_choice("emotion", 0, ["awe"])], {"unknown label": 1}),
    "extension label with the extension off": (
        [_choice("emotion", 0, ["contempt"])],
        {"unknown label": 1},
    ),
    "rating outside the scale": ([_rating("intensity", 1, 9)], {"unknown label": 1}),
    "rating not a number": ([_rating("intensity", 1, "lots")], {"unknown label": 1}),
    "turn past the dialogue": ([_choice("emotion", 3, ["joy"])], {"turn outside the task": 1}),
    "negative turn": ([_choice("emotion", -1, ["joy"])], {"turn outside the task": 1}),
    "turn not a number": ([_choice("emotion", "x", ["joy"])], {"turn outside the task": 1}),
    "no turn at all": ([_choice("emotion", None, ["joy"])], {"turn outside the task": 1}),
    "empty choices": ([_choice("emotion", 0, [])], {"empty value": 1}),
    "two choices": ([_choice("emotion", 0, ["joy", "fear"])], {"empty value": 1}),
    "no rating": ([_rating("valence", 0, None)], {"empty value": 1}),
    "wrong value key": (
        [{**_rating("valence", 0, 3), "type": "number"}],
        {"empty value": 1},
    ),
    "shift with an unknown emotion": (
        [
            {
                "id": "sx",
                "from_name": "shift_from",
                "to_name": "audio",
                "type": "choices",
                "value": {"start": 1.0, "end": 2.0, "channel": 0, "choices": ["awe"]},
            }
        ],
        {"unknown label": 1},
    ),
    "shift part without times": (
        [_choice("shift_to", None, ["joy"], "audio")],
        {"shift without times": 1},
    ),
}


@pytest.mark.parametrize(("items", "skipped"), SKIPS.values(), ids=SKIPS.keys())
def test_skipped_items_are_counted_by_reason(
    taxonomy: Taxonomy, items: list[dict], skipped: dict[str, int]
) -> None:
    lines = dialogue(3)
    decoded = decode_annotation(annotation(items), task_data(lines), taxonomy)
    assert decoded.skipped == skipped
    assert decoded.judgements == ()
    assert decoded.shifts == ()


def test_skips_accumulate_and_good_items_survive(taxonomy: Taxonomy) -> None:
    lines = dialogue(3)
    good = encode_annotation(lines, {0: {"emotion": "joy"}, 2: {"intensity": 3}}, taxonomy)
    bad = [
        _choice("mood", 0, ["joy"]),
        _choice("mood", 1, ["joy"]),
        _choice("emotion", 1, ["awe"]),
        _choice("emotion", 7, ["joy"]),
        _choice("emotion", 1, []),
    ]
    decoded = decode_annotation(annotation(good + bad), task_data(lines), taxonomy)
    assert decoded.skipped == {
        "unknown control": 2,
        "unknown label": 1,
        "turn outside the task": 1,
        "empty value": 1,
    }
    assert {(j.turn_id, j.dimension, j.value) for j in decoded.judgements} == {
        ("s1-t00004", "emotion", "joy"),
        ("s1-t00006", "intensity", "3"),
    }


def test_shift_with_unknown_from_or_to_is_skipped(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    shifts = [{"start": 1.0, "end": 2.0, "from": "joy", "to": "anger"}]
    result = encode_annotation(lines, {}, taxonomy, shifts=shifts)
    for item in result:
        if item["from_name"] == "shift_to":
            item["value"]["choices"] = ["awe"]
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    assert decoded.shifts == ()
    assert decoded.skipped == {"unknown label": 1}


def test_shift_with_unknown_trigger_is_skipped(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    shifts = [{"start": 1.0, "end": 2.0, "trigger": "bogus", "onset": "sideways"}]
    result = encode_annotation(lines, {}, taxonomy, shifts=shifts)
    decoded = decode_annotation(annotation(result), task_data(lines), taxonomy)
    assert decoded.skipped == {"unknown label": 1}
    assert decoded.shifts == ()


def test_two_values_for_one_turn_are_not_dropped_silently(taxonomy: Taxonomy) -> None:
    lines = dialogue(1)
    items = [_choice("emotion", 0, ["joy"]), _choice("emotion", 0, ["anger"])]
    decoded = decode_annotation(annotation(items), task_data(lines), taxonomy)
    assert len(decoded.judgements) + sum(decoded.skipped.values()) == 2


# --- what the real labeling UI sends (Label Studio 1.23.2, captured by test_browser.py) -----


def _ui_turn_item(name: str, index: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A per-turn item as the UI serializes it: the paragraph region's value plus the text."""
    value = {"start": str(index), "end": str(index), "startOffset": 0, "endOffset": 21}
    value.update(text=f"line number {index} - café", **payload)
    return {
        "value": value,
        "id": f"turn{index}",
        "from_name": name,
        "to_name": "dialogue",
        "type": kind,
        "origin": "prediction",
    }


def _ui_span_item(name: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An item of a shift span drawn on the waveform (float seconds, original_length)."""
    return {
        "original_length": 6.25,
        "value": {"start": 1.2034877, "end": 2.9071214, "channel": 0, **payload},
        "id": "Xq3Lb",
        "from_name": name,
        "to_name": "audio",
        "type": kind,
        "origin": "manual",
    }


UI_RESULT = [
    _ui_turn_item("turn", 0, "paragraphlabels", {"paragraphlabels": ["turn"]}),
    _ui_turn_item("turn", 1, "paragraphlabels", {"paragraphlabels": ["turn"]}),
    _ui_turn_item("emotion", 1, "choices", {"choices": ["anger"]}),
    _ui_turn_item("intensity", 1, "rating", {"rating": 4}),
    _ui_span_item("shift", "labels", {"labels": ["Emotion shift"]}),
    _ui_span_item("shift_from", "choices", {"choices": ["joy"]}),
    _ui_span_item("shift_to", "choices", {"choices": ["anger"]}),
    _ui_span_item("shift_trigger", "choices", {"choices": ["partner-induced"]}),
    _ui_span_item("shift_onset", "choices", {"choices": ["abrupt"]}),
]


def test_decodes_the_real_ui_result(taxonomy: Taxonomy) -> None:
    lines = dialogue(3)
    decoded = decode_annotation(annotation(UI_RESULT), task_data(lines), taxonomy)
    assert decoded.skipped == {}
    assert {(j.turn_id, j.dimension, j.value) for j in decoded.judgements} == {
        ("s1-t00005", "emotion", "anger"),
        ("s1-t00005", "intensity", "4"),
    }
    (shift,) = decoded.shifts
    assert (shift.start, shift.end) == (round(1.2034877 + OFFSET, 3), round(2.9071214 + OFFSET, 3))
    assert (shift.from_emotion, shift.to_emotion) == ("joy", "anger")
    assert (shift.trigger, shift.onset) == ("partner-induced", "abrupt")


def test_stray_hotkey_items_are_skipped_not_misread(taxonomy: Taxonomy) -> None:
    """Hotkeys reach every per-region control, whatever region is selected.

    In the real UI, a shift choice's (auto-assigned) key pressed while a turn is selected
    adds a shift item to the turn's region, and an emotion or rating key pressed while a
    shift span is selected adds a turn item to the span, whose ``value.start`` is then in
    seconds (1.2 here would read as turn 1). Neither may become data.
    """
    lines = dialogue(3)
    strays = [
        _ui_turn_item("shift_from", 2, "choices", {"choices": ["joy"]}),
        _ui_span_item("emotion", "choices", {"choices": ["fear"]}),
        _ui_span_item("intensity", "rating", {"rating": 2}),
    ]
    decoded = decode_annotation(annotation([*UI_RESULT, *strays]), task_data(lines), taxonomy)
    assert decoded.skipped == {"shift control on a turn": 1, "turn control on a shift span": 2}
    assert {(j.turn_id, j.dimension, j.value) for j in decoded.judgements} == {
        ("s1-t00005", "emotion", "anger"),
        ("s1-t00005", "intensity", "4"),
    }
    assert len(decoded.shifts) == 1


# --- annotator_of ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed_by", "expected"),
    [(3, "3"), ("12", "12"), ({"id": 5, "email": "a@example.org"}, "5"), ({"id": 0}, "0")],
)
def test_annotator_of(completed_by: Any, expected: str) -> None:
    assert annotator_of({"completed_by": completed_by}) == expected


@pytest.mark.parametrize("annotation_", [{}, {"completed_by": None}, {"completed_by": {}}])
def test_annotator_of_without_completed_by(annotation_: dict) -> None:
    with pytest.raises(ValueError, match="annotation has no completed_by; expected the annotator"):
        annotator_of(annotation_)
