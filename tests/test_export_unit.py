"""Tests for the pure parts of exporters.jsonl and the exporters' format registry."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import exporters
from exporters import jsonl
from exporters.jsonl import iter_jsonl_lines, read_jsonl, write_jsonl


def test_doctests() -> None:
    result = doctest.testmod(jsonl)
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
