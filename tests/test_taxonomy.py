"""Tests for schemas.taxonomy: the shipped default, every validation error, Dimension.code."""

from __future__ import annotations

import copy
import doctest
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from schemas import taxonomy as taxonomy_module
from schemas.errors import AnnotateError, TaxonomyError
from schemas.taxonomy import (
    LEVELS,
    Dimension,
    Label,
    default_taxonomy_path,
    load_taxonomy,
    taxonomy_from_dict,
)

CORE = ("neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust")
EXTENSION = ("contempt", "embarrassment", "tenderness", "excitement", "frustration")
RATINGS = ("intensity", "valence", "arousal", "dominance", "authenticity")


@pytest.fixture
def raw() -> dict[str, Any]:
    """The shipped taxonomy document, parsed; each test gets its own copy to break."""
    return yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))


def test_doctests() -> None:
    result = doctest.testmod(taxonomy_module)
    assert result.attempted > 0
    assert result.failed == 0


# --- the shipped default ------------------------------------------------------------------


def test_default_name_version_and_dimensions() -> None:
    tax = load_taxonomy()
    assert tax.name == "improv-emotion-shift"
    assert tax.version == "1.0.0"
    assert tax.description.startswith("Per-turn emotion")
    assert [d.name for d in tax.dimensions] == ["emotion", *RATINGS]


def test_default_levels_and_kinds() -> None:
    tax = load_taxonomy()
    levels = {d.name: (d.kind, d.level) for d in tax.dimensions}
    assert levels == {
        "emotion": ("choice", "nominal"),
        "intensity": ("rating", "ordinal"),
        "valence": ("rating", "interval"),
        "arousal": ("rating", "interval"),
        "dominance": ("rating", "interval"),
        "authenticity": ("rating", "ordinal"),
    }
    assert all(d.level in LEVELS for d in tax.dimensions)


def test_default_emotion_values_and_hotkeys() -> None:
    tax = load_taxonomy()
    assert tax.emotion is tax.dimension("emotion")
    assert tax.emotion.values == CORE
    assert tax.emotion.labels[0] == Label("neutral", "n", polarity="neutral", arousal="low")
    assert tax.emotion.scale == ()


def test_default_rating_scales() -> None:
    tax = load_taxonomy()
    for name in RATINGS:
        dim = tax.dimension(name)
        assert (dim.min, dim.max) == (1, 5)
        assert dim.scale == (1, 2, 3, 4, 5)
        assert dim.values == ()


def test_default_shift_spec() -> None:
    shift = load_taxonomy().shift
    assert shift.name == "shift"
    assert shift.title == "Emotion shift"
    assert shift.hotkey == "z"
    assert shift.trigger == ("partner-induced", "self-initiated", "prompt-driven")
    assert shift.onset == ("abrupt", "gradual")


def test_extension_switch_adds_the_five_improv_labels() -> None:
    core = load_taxonomy()
    extended = load_taxonomy(extension=True)
    assert extended.emotion.values == CORE + EXTENSION
    assert core.emotion.values == CORE
    # Only the choice dimension changes.
    assert extended.dimensions[1:] == core.dimensions[1:]


@pytest.mark.parametrize("extension", [False, True])
@pytest.mark.parametrize("space", ["meld", "iemocap"])
def test_mappings_cover_every_label(space: str, extension: bool) -> None:
    tax = load_taxonomy(extension=extension)
    table = tax.mapping(space)
    assert set(table) == set(tax.emotion.values)
    assert all(table.values())


def test_mapping_values() -> None:
    tax = load_taxonomy(extension=True)
    assert tax.mapping("meld")["contempt"] == "disgust"
    assert tax.mapping("iemocap")["joy"] == "happiness"
    assert tax.mapping("iemocap")["excitement"] == "excited"


def test_unknown_mapping_space_lists_the_known_ones() -> None:
    with pytest.raises(TaxonomyError, match=r"unknown label space 'nope'.*\['iemocap', 'meld'\]"):
        load_taxonomy().mapping("nope")


def test_unknown_dimension_lists_the_known_ones() -> None:
    with pytest.raises(TaxonomyError, match=r"unknown dimension 'mood'; expected one of \["):
        load_taxonomy().dimension("mood")


def test_taxonomy_is_frozen() -> None:
    tax = load_taxonomy()
    with pytest.raises(AttributeError):
        tax.name = "other"  # type: ignore[misc]


def test_load_from_a_path(tmp_path, raw) -> None:
    raw["name"] = "team-taxonomy"
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_taxonomy(path).name == "team-taxonomy"
    assert load_taxonomy(str(path)).name == "team-taxonomy"


def test_errors_are_value_errors() -> None:
    assert issubclass(TaxonomyError, AnnotateError)
    assert issubclass(TaxonomyError, ValueError)


# --- validation errors ----------------------------------------------------------------------


def _emotion(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["dimensions"][0]


def _rating(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["dimensions"][1]


def _set(getter: Callable[[dict], dict], key: str, value: Any) -> Callable[[dict], None]:
    def change(raw: dict[str, Any]) -> None:
        getter(raw)[key] = value

    return change


def _drop(getter: Callable[[dict], dict], key: str) -> Callable[[dict], None]:
    def change(raw: dict[str, Any]) -> None:
        del getter(raw)[key]

    return change


def _top(raw: dict[str, Any]) -> dict[str, Any]:
    return raw


def _duplicate_label(raw: dict[str, Any]) -> None:
    _emotion(raw)["labels"].append({"value": "joy", "hotkey": "q"})


def _duplicate_hotkey(raw: dict[str, Any]) -> None:
    _emotion(raw)["labels"].append({"value": "awe", "hotkey": "j"})


def _shift_hotkey_clash(raw: dict[str, Any]) -> None:
    raw["shift"]["hotkey"] = "n"


def _duplicate_dimension(raw: dict[str, Any]) -> None:
    raw["dimensions"].append(copy.deepcopy(_rating(raw)))


def _no_choice_dimension(raw: dict[str, Any]) -> None:
    raw["dimensions"] = raw["dimensions"][1:]


def _unknown_mapped_label(raw: dict[str, Any]) -> None:
    raw["mappings"]["meld"]["awe"] = "surprise"


def _missing_mapping(raw: dict[str, Any]) -> None:
    del raw["mappings"]["meld"]["fear"]


def _mapping_not_a_mapping(raw: dict[str, Any]) -> None:
    raw["mappings"]["meld"] = ["neutral", "joy"]


def _dimension_not_a_mapping(raw: dict[str, Any]) -> None:
    raw["dimensions"][1] = "intensity"


def _label_without_value(raw: dict[str, Any]) -> None:
    _emotion(raw)["labels"].append({"hotkey": "q"})


def _duplicate_trigger(raw: dict[str, Any]) -> None:
    raw["shift"]["trigger"] = ["abrupt", "abrupt"]


def _shift_named_like_a_dimension(raw: dict[str, Any]) -> None:
    raw["shift"]["name"] = "intensity"


INVALID = {
    "duplicate label": (_duplicate_label, r"dimensions\[0\]\.labels: duplicate labels \['joy'\]"),
    "unknown level": (
        _set(_rating, "level", "cardinal"),
        r"dimensions\[1\]\.level: unknown level 'cardinal'; expected one of "
        r"\['nominal', 'ordinal', 'interval', 'ratio'\]",
    ),
    "unknown kind": (
        _set(_rating, "kind", "slider"),
        r"dimensions\[1\]\.kind: unknown kind 'slider'; expected one of \['choice', 'rating'\]",
    ),
    "empty choice list": (
        _set(_emotion, "labels", []),
        r"dimensions\[0\]\.labels: expected a non-empty list of labels",
    ),
    "labels not a list": (
        _set(_emotion, "labels", "joy"),
        r"dimensions\[0\]\.labels: expected a non-empty list of labels",
    ),
    "scale min equals max": (
        _set(_rating, "min", 5),
        r"dimensions\[1\]: scale min 5 must be an integer below max 5",
    ),
    "scale min above max": (
        _set(_rating, "min", 7),
        r"dimensions\[1\]: scale min 7 must be an integer below max 5",
    ),
    "scale not integers": (
        _set(_rating, "max", 4.5),
        r"scale min 1 must be an integer below max 4\.5",
    ),
    "negative scale": (
        _set(_rating, "min", -2),
        r"dimensions\[1\]\.min: expected 0 or more, got -2",
    ),
    "mapping to an unknown label": (
        _unknown_mapped_label,
        r"mappings\.meld: maps unknown labels \['awe'\]; expected labels of the taxonomy",
    ),
    "missing mapping": (_missing_mapping, r"mappings\.meld: no mapping for labels \['fear'\]"),
    "mapping not a mapping": (
        _mapping_not_a_mapping,
        r"mappings\.meld: expected a mapping from our labels to meld's",
    ),
    "duplicate hotkey": (_duplicate_hotkey, r"hotkeys used twice \['j'\]; expected each once"),
    "shift hotkey clashes with a label": (_shift_hotkey_clash, r"hotkeys used twice \['n'\]"),
    "reserved dimension name": (
        _set(_rating, "name", "note"),
        r"dimensions\[1\]\.name: 'note' is reserved; expected another name",
    ),
    "reserved shift name": (
        lambda raw: raw["shift"].update(name="audio"),
        r"shift\.name: 'audio' is reserved",
    ),
    "invalid name": (
        _set(_rating, "name", "Intensity Level"),
        r"dimensions\[1\]\.name: 'Intensity Level' is not a valid name; expected lower-case",
    ),
    "duplicate dimension": (
        _duplicate_dimension,
        r"dimensions: duplicate dimension names \['intensity'\]",
    ),
    "no choice dimension": (
        _no_choice_dimension,
        r"dimensions: expected at least one choice dimension",
    ),
    "empty dimensions": (
        _set(_top, "dimensions", []),
        r"dimensions: expected a non-empty list",
    ),
    "shift named like a dimension": (
        _shift_named_like_a_dimension,
        r"shift\.name: 'intensity' is already a dimension name",
    ),
    "duplicate trigger": (_duplicate_trigger, r"shift\.trigger: duplicate values \['abrupt'\]"),
    "empty onset": (
        lambda raw: raw["shift"].update(onset=[]),
        r"shift\.onset: expected a non-empty list",
    ),
    "dimension not a mapping": (
        _dimension_not_a_mapping,
        r"dimensions\[1\]: expected a mapping, got str",
    ),
    "label without value": (
        _label_without_value,
        r"dimensions\[0\]\.labels\[7\]: missing required key 'value'",
    ),
    "missing key name": (_drop(_top, "name"), r"^taxonomy: missing required key 'name'$"),
    "missing key version": (_drop(_top, "version"), r"missing required key 'version'"),
    "missing key dimensions": (_drop(_top, "dimensions"), r"missing required key 'dimensions'"),
    "missing key shift": (_drop(_top, "shift"), r"missing required key 'shift'"),
    "missing dimension kind": (
        _drop(_rating, "kind"),
        r"dimensions\[1\]: missing required key 'kind'",
    ),
    "missing dimension level": (
        _drop(_rating, "level"),
        r"dimensions\[1\]: missing required key 'level'",
    ),
    "missing scale max": (_drop(_rating, "max"), r"dimensions\[1\]: missing required key 'max'"),
    "empty key value": (_set(_top, "version", ""), r"missing required key 'version'"),
}


@pytest.mark.parametrize(("change", "message"), INVALID.values(), ids=INVALID.keys())
def test_validation_errors(raw: dict[str, Any], change: Callable, message: str) -> None:
    change(raw)
    with pytest.raises(TaxonomyError, match=message):
        taxonomy_from_dict(raw)


def test_not_a_mapping_at_the_top() -> None:
    with pytest.raises(TaxonomyError, match=r"^team\.yaml: expected a mapping, got list$"):
        taxonomy_from_dict(["name"], source="team.yaml")


def test_duplicate_label_across_extension(raw: dict[str, Any]) -> None:
    _emotion(raw)["extension"].append({"value": "joy", "hotkey": "q"})
    taxonomy_from_dict(raw)  # the extension is off: its labels are not added
    with pytest.raises(TaxonomyError, match=r"duplicate labels \['joy'\]"):
        taxonomy_from_dict(raw, extension=True)


def test_extension_hotkey_clash_only_with_extension(raw: dict[str, Any]) -> None:
    _emotion(raw)["extension"][0]["hotkey"] = "j"
    taxonomy_from_dict(raw)
    with pytest.raises(TaxonomyError, match=r"hotkeys used twice \['j'\]"):
        taxonomy_from_dict(raw, extension=True)


def test_labels_may_be_plain_strings(raw: dict[str, Any]) -> None:
    _emotion(raw)["labels"] = list(CORE)
    tax = taxonomy_from_dict(raw)
    assert tax.emotion.values == CORE
    assert all(label.hotkey is None for label in tax.emotion.labels)


def test_title_defaults_to_name(raw: dict[str, Any]) -> None:
    del _rating(raw)["title"]
    assert taxonomy_from_dict(raw).dimension("intensity").title == "intensity"


def test_source_prefixes_error_messages(raw: dict[str, Any]) -> None:
    _rating(raw)["kind"] = "slider"
    with pytest.raises(TaxonomyError, match=r"^team\.yaml\.dimensions\[1\]\.kind: "):
        taxonomy_from_dict(raw, source="team.yaml")


def test_file_errors_name_the_file(tmp_path, raw: dict[str, Any]) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(TaxonomyError, match=rf"^{re.escape(str(missing))}: cannot read taxonomy"):
        load_taxonomy(missing)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=rf"^{re.escape(str(bad_yaml))}: not valid YAML"):
        load_taxonomy(bad_yaml)
    invalid = tmp_path / "invalid.yaml"
    _rating(raw)["level"] = "cardinal"
    invalid.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(TaxonomyError, match=rf"^{re.escape(str(invalid))}\.dimensions\[1\]"):
        load_taxonomy(invalid)


# --- Dimension.code -------------------------------------------------------------------------


def test_code_of_labels_is_their_position() -> None:
    emotion = load_taxonomy(extension=True).emotion
    assert [emotion.code(v) for v in emotion.values] == [float(i) for i in range(12)]
    assert isinstance(emotion.code("joy"), float)


def test_code_of_an_unknown_label_lists_the_valid_ones() -> None:
    emotion = load_taxonomy().emotion
    with pytest.raises(TaxonomyError, match=r"'awe' is not a label of dimension 'emotion'; "):
        emotion.code("awe")
    with pytest.raises(TaxonomyError, match=r"expected one of \['neutral', 'joy', "):
        emotion.code("contempt")  # an extension label while the extension is off


@pytest.mark.parametrize(("value", "code"), [(1, 1.0), (5, 5.0), ("3", 3.0), (2.5, 2.5)])
def test_code_of_ratings_is_their_number(value: Any, code: float) -> None:
    assert load_taxonomy().dimension("intensity").code(value) == code


@pytest.mark.parametrize("value", [0, 6, "0", -1, 5.01])
def test_code_outside_the_scale_names_the_bounds(value: Any) -> None:
    with pytest.raises(TaxonomyError, match=r"outside the scale of dimension 'valence'; "):
        load_taxonomy().dimension("valence").code(value)
    with pytest.raises(TaxonomyError, match=r"expected 1\.\.5$"):
        load_taxonomy().dimension("valence").code(value)


def test_code_of_a_non_number_rating_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_taxonomy().dimension("arousal").code("high")


def test_scale_starting_at_zero() -> None:
    dim = Dimension("effort", "Effort", "rating", "ordinal", min=0, max=3)
    assert dim.scale == (0, 1, 2, 3)
    assert dim.code("0") == 0.0
    with pytest.raises(TaxonomyError, match=r"expected 0\.\.3"):
        dim.code(4)


def test_label_studio_keys_are_refused() -> None:
    raw = copy.deepcopy(yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8")))
    raw["dimensions"][0]["labels"][5]["hotkey"] = "u"  # Label Studio's "unselect region"
    with pytest.raises(TaxonomyError, match=r"hotkeys \['u'\] are Label Studio's own keys"):
        taxonomy_from_dict(raw)


def test_shift_prefix_keys_must_not_clash() -> None:
    raw = copy.deepcopy(yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8")))
    raw["shift"]["trigger"][0]["hotkey"] = "shift+j"  # also "from joy"
    with pytest.raises(TaxonomyError, match=r"hotkeys used twice \['shift\+j'\] \(with the shift"):
        taxonomy_from_dict(raw)
    tax = load_taxonomy()
    assert tax.shift.emotion_hotkeys(tax.emotion, "from")[:2] == ("shift+n", "shift+j")
    assert tax.shift.emotion_hotkeys(tax.emotion, "to")[:2] == ("alt+n", "alt+j")
    assert tax.shift.trigger_hotkeys == ("6", "7", "8")
    assert tax.shift.onset_hotkeys == ("9", "0")
