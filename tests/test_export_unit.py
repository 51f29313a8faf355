"""Tests for the pure parts of exporters.jsonl and the exporters' format registry."""

from __future__ import annotations

import doctest
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exporters
from annotate.agreement import bootstrap_ci, krippendorff_alpha, pivot
from exporters import card, jsonl
from exporters.card import CardStats, profile_alpha
from exporters.jsonl import iter_jsonl_lines, read_jsonl, write_jsonl, write_text
from exporters.turn_fields import _FALLBACK, _nominal_alpha
from schemas.taxonomy import load_taxonomy


@pytest.mark.parametrize("module", [jsonl, card])
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_iter_jsonl_lines_keeps_non_ascii_text() -> None:
    rows = [{"text": "Ça va? Tränen… 你好 🎭", "n": 1}, {"text": 'quote " and \\ slash'}]
    lines = list(iter_jsonl_lines(rows))
    assert lines[0] == '{"text": "Ça va? Tränen… 你好 🎭", "n": 1}\n'
    assert "\\u" not in lines[0]
    assert lines[1] == '{"text": "quote \\" and \\\\ slash"}\n'
    assert [json.loads(line) for line in lines] == rows


def test_iter_jsonl_lines_one_line_per_row() -> None:
    rows = [{"text": "line one\nline two"}, {}]
    lines = list(iter_jsonl_lines(rows))
    assert lines == ['{"text": "line one\\nline two"}\n', "{}\n"]
    assert all(line.count("\n") == 1 for line in lines)
    assert list(iter_jsonl_lines([])) == []


def rows(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    emotions = ["joy", "anger", "tristesse", "überraschung"]
    return [
        {
            "turn_id": f"s1-t{i:05d}",
            "text": f"réplique {i} - {rng.choice(emotions)}",
            "start": round(float(rng.uniform(0, 100)), 3),
            "labels": {"3": {"emotion": str(rng.choice(emotions)), "intensity": "4"}},
            "majority": {"emotion": None},
            "majority_tie": {"emotion": ["anger", "joy"]},
            "n_annotators": int(rng.integers(0, 4)),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [0, 1, 25])
def test_write_read_round_trip(tmp_path: Path, n: int) -> None:
    data = rows(n, np.random.default_rng(n))
    path = tmp_path / "out" / "turns.jsonl"
    assert write_jsonl(iter(data), path) == n
    assert list(read_jsonl(path)) == data
    assert not list(path.parent.glob("*.part"))
    assert path.read_text(encoding="utf-8").count("\n") == n


def test_write_jsonl_accepts_a_string_path_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    path.write_text("old content\n", encoding="utf-8")
    assert write_jsonl([{"a": 1}], str(path)) == 1
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n'


def test_write_jsonl_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    path.write_text('{"old": true}\n', encoding="utf-8")

    def broken():
        yield {"a": 1}
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError, match="store went away"):
        write_jsonl(broken(), path)
    assert list(read_jsonl(path)) == [{"old": True}]


def test_read_jsonl_is_lazy_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    reader = read_jsonl(path)
    assert next(reader) == {"a": 1}
    assert list(reader) == [{"a": 2}]


def test_writer_lookup() -> None:
    assert exporters.writer("jsonl") == ("turns.jsonl", write_jsonl)


def test_unknown_writer_lists_known_formats() -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown export format 'nope'; expected one of "
        r"\['csv', 'flat-csv', 'jsonl', 'parquet'\]$",
    ):
        exporters.writer("nope")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 5), st.integers(0, 4)), min_size=1, max_size=80
    )
)
def test_clip_nominal_alpha_has_the_bits_of_the_matrix_path(cells: list) -> None:
    units = [f"t{u}" for u, _, _ in cells]
    raters = [f"a{r}" for _, r, _ in cells]
    values = [float(v) for _, _, v in cells]
    fast = _nominal_alpha(units, raters, values)
    try:
        slow = float(krippendorff_alpha(pivot(units, raters, values)[0], level="nominal"))
    except ValueError:
        slow = None
    if fast is _FALLBACK:  # a rater judged a unit twice: the matrix path decides
        assert len(set(zip(units, raters, strict=True))) < len(cells)
    else:
        assert fast == slow  # the same float, not merely close


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_profile_alpha_equals_krippendorff_and_brackets_it(level: str) -> None:
    rng = np.random.default_rng(11)
    matrix = np.where(
        rng.random((4, 300)) < 0.8, rng.integers(1, 6, size=(4, 300)).astype(float), np.nan
    )
    matrix[:2] = np.where(rng.random((2, 300)) < 0.6, matrix[2], matrix[:2])  # some agreement
    profiles: Counter = Counter()
    for column in matrix.T:
        present = column[~np.isnan(column)]
        if present.size:
            profiles[tuple(sorted(present.tolist()))] += 1
    figures = profile_alpha(profiles, level, n_boot=300, seed=2)
    expected = krippendorff_alpha(matrix, level=level)
    assert figures["alpha"] == pytest.approx(expected, abs=1e-12)
    _, low, high = bootstrap_ci(
        lambda m: krippendorff_alpha(m, level=level), matrix, n_boot=300, seed=2
    )
    assert figures["ci_low"] < expected < figures["ci_high"]
    # the same resampling distribution as the unit bootstrap: intervals of similar width
    width, reference = figures["ci_high"] - figures["ci_low"], high - low
    assert 0.7 * reference < width < 1.3 * reference


def test_profile_alpha_undefined_without_spread_or_pairs() -> None:
    none = {"alpha": None, "ci_low": None, "ci_high": None}
    assert profile_alpha({(1.0, 1.0): 5}, "nominal", n_boot=20) == none
    assert profile_alpha({(1.0,): 5, (2.0,): 3}, "nominal", n_boot=20) == none
    assert profile_alpha({}, "interval", n_boot=20) == none


def test_card_stats_merge_equals_one_pass() -> None:
    tax = load_taxonomy()
    rng = np.random.default_rng(5)
    rows = [
        {
            "split": str(rng.choice(["train", "dev", "test"])),
            "session_id": f"s{i % 7}",
            "start": float(i),
            "end": float(i) + 1.5,
            "aggregates": {"emotion": {"majority": str(rng.choice(["joy", "anger"]))}},
            "labels": {
                f"a{k}": {"emotion": str(rng.choice(["joy", "anger", "fear"])), "valence": "3"}
                for k in range(int(rng.integers(1, 4)))
            },
        }
        for i in range(200)
    ]
    whole, first, second = CardStats(tax), CardStats(tax), CardStats(tax)
    for i, row in enumerate(rows):
        whole.add(row)
        (first if i < 77 else second).add(row)
    first.merge(second)
    assert first.stats() == whole.stats()
    assert first.distribution() == whole.distribution()
    assert first.agreement(50, 0) == whole.agreement(50, 0)


def test_write_text_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    write_text(['{"a": 1}\n', '{"a": 2}\n'], path)
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]

    def broken():
        yield '{"b": 1}\n'
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        write_text(broken(), path)
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]


def test_schema_doctests_and_one_column_list() -> None:
    import doctest

    from exporters import schema, splits
    from schemas.taxonomy import load_taxonomy

    assert doctest.testmod(schema).failed == 0
    assert doctest.testmod(splits).failed == 0
    tax = load_taxonomy()
    names = [f.name for f in schema.row_fields(tax)]
    assert [n for n in names if n not in schema.OPTIONAL] == list(schema.COLUMNS)
    assert set(schema.row_schema(tax)["properties"]) == set(names)


def test_parquet_refuses_a_key_its_schema_lacks(tmp_path) -> None:
    """Arrow would drop an unknown struct key silently; the writer names it instead."""
    import pytest

    from exporters.formats import write_parquet
    from schemas.taxonomy import load_taxonomy

    row = {"turn_id": "s-t00000", "labels": {}, "prosody": {"duration_s": 1.0, "loudness": 2}}
    with pytest.raises(ValueError, match=r"row 0 \(turn s-t00000\): prosody: keys \['loudness'\]"):
        write_parquet([row], tmp_path / "x.parquet", taxonomy=load_taxonomy())
    assert not (tmp_path / "x.parquet").exists()
    row = {"turn_id": "s-t00001", "labels": {"a1": {"emotion": "joy", "mood": "calm"}}}
    with pytest.raises(ValueError, match=r"labels\[0\]: keys \['mood'\] are not in the row"):
        write_parquet([row], tmp_path / "x.parquet", taxonomy=load_taxonomy())
