"""Tests for schemas.label_config: the XML's structure, and the Label Studio SDK's parser."""

from __future__ import annotations

import copy
import doctest
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml
from label_studio_sdk.label_interface import LabelInterface

from schemas import label_config as label_config_module
from schemas.label_config import SHIFT_PARTS, label_config, shift_control
from schemas.taxonomy import (
    Taxonomy,
    TaxonomyError,
    default_taxonomy_path,
    load_taxonomy,
    taxonomy_from_dict,
)

STARS = ("valence", "arousal", "dominance", "authenticity")
RATINGS = ("intensity", "valence", "arousal", "dominance", "authenticity")


@pytest.fixture(params=[False, True], ids=["core", "extension"])
def taxonomy(request: pytest.FixtureRequest) -> Taxonomy:
    return load_taxonomy(extension=request.param)


@pytest.fixture
def root(taxonomy: Taxonomy) -> ET.Element:
    return ET.fromstring(label_config(taxonomy))


def _named(root: ET.Element, tag: str, name: str) -> ET.Element:
    found = [el for el in root.iter(tag) if el.get("name") == name]
    assert len(found) == 1, f"expected one <{tag} name={name!r}>, found {len(found)}"
    return found[0]


def _parent_map(root: ET.Element) -> dict[ET.Element, ET.Element]:
    return {child: parent for parent in root.iter() for child in parent}


def test_doctests() -> None:
    result = doctest.testmod(label_config_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_xml_parses_with_a_view_root(root: ET.Element) -> None:
    assert root.tag == "View"
    assert next(el.get("value") for el in root.iter("Header")) == "$title"
    assert _named(root, "Text", "prompt").get("value") == "$prompt"


def test_audio_synced_with_paragraphs(root: ET.Element) -> None:
    audio = _named(root, "Audio", "audio")
    assert audio.get("value") == "$audio"
    assert audio.get("sync") == "dialogue"
    paragraphs = _named(root, "Paragraphs", "dialogue")
    assert paragraphs.attrib == {
        "name": "dialogue",
        "value": "$dialogue",
        "layout": "dialogue",
        "audioUrl": "$audio",
        "sync": "audio",
        "nameKey": "speaker",
        "textKey": "text",
    }


def test_turn_paragraph_labels(root: ET.Element) -> None:
    turn = _named(root, "ParagraphLabels", "turn")
    assert turn.get("toName") == "dialogue"
    assert [label.get("value") for label in turn.iter("Label")] == ["turn"]


def test_one_per_region_control_per_dimension(taxonomy: Taxonomy, root: ET.Element) -> None:
    parents = _parent_map(root)
    for dim in taxonomy.dimensions:
        tag = "Choices" if dim.as_choices else "Rating"
        control = _named(root, tag, dim.name)
        assert control.get("toName") == "dialogue"
        assert control.get("perRegion") == "true"
        view = parents[control]
        assert view.get("visibleWhen") == "region-selected"
        assert view.get("whenTagName") == "turn"


def test_emotion_choices_and_hotkeys_as_declared(taxonomy: Taxonomy, root: ET.Element) -> None:
    emotion = _named(root, "Choices", "emotion")
    assert emotion.get("choice") == "single-radio"
    declared = [(label.value, label.hotkey) for label in taxonomy.emotion.labels]
    assert [(c.get("value"), c.get("hotkey")) for c in emotion.iter("Choice")] == declared


def test_ratings_have_the_scale_max(root: ET.Element) -> None:
    for name in STARS:
        assert _named(root, "Rating", name).get("maxRating") == "5"


def test_star_ratings_have_the_declared_key(taxonomy: Taxonomy, root: ET.Element) -> None:
    keys = {name: _named(root, "Rating", name).get("hotkey") for name in STARS}
    assert keys == {name: taxonomy.dimension(name).hotkey for name in STARS}
    assert keys == {"valence": "v", "arousal": "o", "dominance": "m", "authenticity": "b"}


def test_a_star_key_on_a_scale_offered_as_choices_is_refused() -> None:
    raw = _raw()
    raw["dimensions"][1]["hotkey"] = "q"  # intensity has one key per point
    with pytest.raises(TaxonomyError, match=r"dimensions\[1\]\.hotkey: a key for star ratings"):
        taxonomy_from_dict(raw)


def test_a_star_key_clashing_with_a_label_is_refused() -> None:
    raw = _raw()
    raw["dimensions"][2]["hotkey"] = "j"  # joy's key
    with pytest.raises(TaxonomyError, match=r"hotkeys used twice \['j'\]"):
        taxonomy_from_dict(raw)


def test_intensity_is_one_keystroke(root: ET.Element) -> None:
    control = _named(root, "Choices", "intensity")
    assert [(c.get("value"), c.get("hotkey")) for c in control.iter("Choice")] == [
        (str(v), str(v)) for v in range(1, 6)
    ]


def test_shift_labels_on_the_audio(taxonomy: Taxonomy, root: ET.Element) -> None:
    labels = _named(root, "Labels", "shift")
    assert labels.get("toName") == "audio"
    (label,) = labels.iter("Label")
    assert label.get("value") == "Emotion shift"
    assert label.get("hotkey") == "z"


def test_shift_per_region_choices(taxonomy: Taxonomy, root: ET.Element) -> None:
    parents = _parent_map(root)
    expected = {
        "from": taxonomy.emotion.values,
        "to": taxonomy.emotion.values,
        "trigger": taxonomy.shift.trigger,
        "onset": taxonomy.shift.onset,
    }
    assert tuple(expected) == SHIFT_PARTS
    for part, values in expected.items():
        name = shift_control(taxonomy, part)
        assert name == f"shift_{part}"
        control = _named(root, "Choices", name)
        assert control.get("toName") == "audio"
        assert control.get("perRegion") == "true"
        assert tuple(c.get("value") for c in control.iter("Choice")) == values
        # Every shift choice has its own declared key (else Label Studio hands out digits).
        keys = [c.get("hotkey") for c in control.iter("Choice")]
        assert all(keys), (name, keys)
        if part in ("from", "to"):
            prefix = "shift+" if part == "from" else "alt+"
            assert keys == [prefix + (lab.hotkey or "") for lab in taxonomy.emotion.labels]
        view = parents[control]
        assert view.get("visibleWhen") == "region-selected"
        assert view.get("whenTagName") == "shift"


def test_note_textarea(root: ET.Element) -> None:
    note = _named(root, "TextArea", "note")
    assert note.get("toName") == "dialogue"
    assert note.get("maxSubmissions") == "1"
    assert note.get("editable") == "true"


def test_names_are_unique(root: ET.Element) -> None:
    names = [el.get("name") for el in root.iter() if el.get("name")]
    assert len(names) == len(set(names))


def test_hotkeys_are_unique(root: ET.Element) -> None:
    hotkeys = [el.get("hotkey") for el in root.iter() if el.get("hotkey")]
    assert len(hotkeys) == len(set(hotkeys))


def test_label_studio_sdk_accepts_it(taxonomy: Taxonomy) -> None:
    interface = LabelInterface(label_config(taxonomy))
    interface.validate()  # raises on schema, name or toName problems
    assert interface.is_valid is True  # a property in this SDK
    controls = {c.name: (c.tag, tuple(c.to_name)) for c in interface.controls}
    expected = {
        "turn": ("ParagraphLabels", ("dialogue",)),
        "emotion": ("Choices", ("dialogue",)),
        "intensity": ("Choices", ("dialogue",)),
        **{name: ("Rating", ("dialogue",)) for name in STARS},
        "shift": ("Labels", ("audio",)),
        **{f"shift_{part}": ("Choices", ("audio",)) for part in SHIFT_PARTS},
        "note": ("TextArea", ("dialogue",)),
    }
    assert controls == expected
    assert sorted(o.name for o in interface.objects) == ["audio", "context", "dialogue", "prompt"]
    assert interface.get_control("emotion").labels == list(taxonomy.emotion.values)
    assert interface.get_control("shift_trigger").labels == list(taxonomy.shift.trigger)


def _raw() -> dict[str, Any]:
    return yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))


def test_scale_not_starting_at_one_becomes_numbered_choices() -> None:
    raw = _raw()
    raw["dimensions"][1].update(min=0, max=3)
    raw["dimensions"][1].pop("hotkeys")
    root = ET.fromstring(label_config(taxonomy_from_dict(raw)))
    control = _named(root, "Choices", "intensity")
    assert [c.get("value") for c in control.iter("Choice")] == ["0", "1", "2", "3"]
    assert control.get("toName") == "dialogue"
    assert not [el for el in root.iter("Rating") if el.get("name") == "intensity"]
    LabelInterface(label_config(taxonomy_from_dict(raw))).validate()


def test_special_characters_are_escaped() -> None:
    raw = _raw()
    raw["dimensions"][0]["labels"].append({"value": 'odd "<&>" one', "hotkey": "q"})
    raw["dimensions"][1]["title"] = "Intensity <1..5> & more"
    raw["mappings"] = {}
    xml = label_config(taxonomy_from_dict(raw))
    root = ET.fromstring(xml)
    values = [c.get("value") for c in _named(root, "Choices", "emotion").iter("Choice")]
    assert values[-1] == 'odd "<&>" one'
    assert "Intensity <1..5> & more" in [h.get("value") for h in root.iter("Header")]


def test_custom_shift_name_renames_its_controls() -> None:
    raw = _raw()
    raw["shift"]["name"] = "turning_point"
    tax = taxonomy_from_dict(raw)
    root = ET.fromstring(label_config(tax))
    assert _named(root, "Labels", "turning_point").get("toName") == "audio"
    for part in SHIFT_PARTS:
        _named(root, "Choices", f"turning_point_{part}")
    LabelInterface(label_config(tax)).validate()


@pytest.mark.parametrize("name", ["prompt", "shift_from", "shift_onset"])
def test_every_valid_taxonomy_gives_a_valid_config(name: str) -> None:
    raw = copy.deepcopy(_raw())
    raw["dimensions"][1]["name"] = name
    try:
        tax = taxonomy_from_dict(raw)
    except ValueError:
        return  # rejected by the taxonomy's validation: fine
    LabelInterface(label_config(tax)).validate()
