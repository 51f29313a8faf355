"""Changing a project's taxonomy: additions pass, removals of used labels need a migration."""

from __future__ import annotations

import copy

import pytest
import yaml

from schemas.codec import encode_annotation, label_usage, migrate_result
from schemas.errors import TaxonomyError
from schemas.taxonomy import check_change, default_taxonomy_path, taxonomy_from_dict
from tests.payloads import dialogue

RAW = yaml.safe_load(default_taxonomy_path().read_text())
OLD = taxonomy_from_dict(RAW)


def _variant(edit) -> object:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(RAW)
    edit(raw)
    raw["version"] = "2.0.0"
    return taxonomy_from_dict(raw)


def _results() -> list[list[dict]]:
    lines = dialogue(3)
    first = encode_annotation(
        lines,
        {0: {"emotion": "joy", "intensity": 4}, 1: {"emotion": "joy"}, 2: {"emotion": "anger"}},
        OLD,
        shifts=[
            {
                "start": 1.0,
                "end": 2.0,
                "from": "joy",
                "to": "anger",
                "trigger": "partner-induced",
                "onset": "abrupt",
            }
        ],
    )
    second = encode_annotation(lines, {0: {"emotion": "fear", "intensity": 2}}, OLD)
    return [first, second]


def test_usage_counts_values_of_governed_controls() -> None:
    usage = label_usage(_results())
    assert usage[("emotion", "joy")] == 2
    assert usage[("emotion", "anger")] == 1
    assert usage[("intensity", "4")] == 1
    assert usage[("shift_from", "joy")] == 1
    assert usage[("shift_trigger", "partner-induced")] == 1
    assert not any(control in {"turn", "shift", "note"} for control, _ in usage)


def test_adding_labels_is_allowed() -> None:
    def add_awe(raw: dict) -> None:
        raw["dimensions"][0]["labels"].append({"value": "awe"})
        for table in raw["mappings"].values():
            table["awe"] = "surprise"

    new = _variant(add_awe)
    assert check_change(new, label_usage(_results())) == {}


def test_removing_a_used_label_is_refused_with_counts() -> None:
    def drop_joy(raw: dict) -> None:
        raw["dimensions"][0]["labels"] = [
            lab for lab in raw["dimensions"][0]["labels"] if lab["value"] != "joy"
        ]
        for table in raw["mappings"].values():
            table.pop("joy")

    new = _variant(drop_joy)
    with pytest.raises(TaxonomyError) as err:
        check_change(new, label_usage(_results()))
    message = str(err.value)
    assert "emotion label 'joy' is used by 2 results" in message
    assert "shift_from label 'joy' is used by 1 results" in message
    assert "migration mapping" in message

    # removing an unused label is fine
    def drop_disgust(raw: dict) -> None:
        raw["dimensions"][0]["labels"].pop()  # disgust
        for table in raw["mappings"].values():
            table.pop("disgust")

    unused = _variant(drop_disgust)
    assert check_change(unused, label_usage(_results())) == {}


def test_rename_with_migration_rewrites_results() -> None:
    def rename(raw: dict) -> None:
        for lab in raw["dimensions"][0]["labels"]:
            if lab["value"] == "joy":
                lab["value"] = "happiness"
        for table in raw["mappings"].values():
            table["happiness"] = table.pop("joy")

    new = _variant(rename)
    migration = {"emotion": {"joy": "happiness"}, "shift_from": {"joy": "happiness"}}
    plan = check_change(new, label_usage(_results()), migration)
    assert plan == migration
    rewritten = []
    for result in _results():
        out, changed = migrate_result(result, plan)
        rewritten.append(out)
        assert changed == sum(
            1 for item in result if "joy" in (item.get("value") or {}).get("choices", [])
        )
    assert check_change(new, label_usage(rewritten)) == {}
    with pytest.raises(TaxonomyError, match=r"migration.emotion: maps to \['glee'\]"):
        check_change(new, label_usage(_results()), {"emotion": {"joy": "glee"}})
    with pytest.raises(TaxonomyError, match="migration: unknown control 'mood'"):
        check_change(new, label_usage(_results()), {"mood": {"joy": "happiness"}})


def test_narrowing_a_scale_and_dropping_a_dimension() -> None:
    def narrow(raw: dict) -> None:
        raw["dimensions"][1]["max"] = 3
        raw["dimensions"][1]["hotkeys"] = ["1", "2", "3"]

    new = _variant(narrow)
    with pytest.raises(TaxonomyError, match="intensity label '4' is used by 1 results"):
        check_change(new, label_usage(_results()))
    assert check_change(new, label_usage(_results()), {"intensity": {"4": "3"}}) == {
        "intensity": {"4": "3"}
    }
    dropped = _variant(lambda r: r["dimensions"].pop(1))
    with pytest.raises(TaxonomyError, match="control 'intensity' is used by 2 results but is gone"):
        check_change(dropped, label_usage(_results()))
