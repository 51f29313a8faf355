"""Writers of turn rows: JSONL, CSV, Parquet, and a flat CSV (one row per annotator per turn).

Parquet holds native types (:mod:`exporters.schema`); CSV cells hold nested values as JSON
text.

Each writer streams rows to a temporary file and renames it at the end, so a failed export
never leaves a half-written file under the final name. CSV cells that a spreadsheet would
run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are
prefixed with a single quote.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from exporters.jsonl import write_jsonl
from exporters.schema import COLUMNS, OPTIONAL, arrow_row, arrow_schema, check_keys
from schemas.taxonomy import Taxonomy

NESTED = {
    "annotation_ids",
    "labels",
    "cancelled_by",
    "aggregates",
    "adjudicated",
    "shift",
    "agreement",
    "prosody",
}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class _Atomic:
    """Open ``path``'s temporary twin for writing; rename on success, remove on failure."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self.mode = mode

    def __enter__(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.mode == "w":
            self.handle = open(self.partial, "w", encoding="utf-8", newline="")
            return self.handle
        return self.partial

    def __exit__(self, kind: Any, *_: Any) -> None:
        if self.mode == "w":
            self.handle.close()
        if kind is None:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def safe_cell(value: Any) -> Any:
    """A CSV cell that spreadsheets will not evaluate (formula injection guard)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def columns_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    """:data:`COLUMNS`, with the :data:`OPTIONAL` columns the row has after "media_end"."""
    extra = tuple(c for c in OPTIONAL if c in row)
    if not extra:
        return COLUMNS
    at = COLUMNS.index("media_end") + 1
    return (*COLUMNS[:at], *extra, *COLUMNS[at:])


def flat(row: Mapping[str, Any], columns: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A row with its nested values as JSON text, in :data:`COLUMNS` order (or ``columns``)."""
    out = {}
    for column in columns or columns_of(row):
        value = row.get(column)
        if column in NESTED and value is not None:
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        out[column] = value
    return out


def write_csv(rows: Iterable[Mapping[str, Any]], path: Path, **_: Any) -> int:
    """The rows as CSV with :data:`COLUMNS`; nested values as JSON text."""
    n = 0
    with _Atomic(path) as out:
        writer: csv.DictWriter[str] | None = None
        columns = COLUMNS
        for row in rows:
            if writer is None:
                columns = columns_of(row)
                writer = csv.DictWriter(out, fieldnames=columns)
                writer.writeheader()
            writer.writerow({k: safe_cell(v) for k, v in flat(row, columns).items()})
            n += 1
        if writer is None:
            csv.DictWriter(out, fieldnames=COLUMNS).writeheader()
    return n


def write_parquet(
    rows: Iterable[Mapping[str, Any]],
    path: Path,
    *,
    taxonomy: Taxonomy,
    label_space: str = "ours",
    batch: int = 20_000,
    **_: Any,
) -> int:
    """The rows as Parquet with native types (:func:`exporters.schema.arrow_schema`: nested
    values as structs and lists, ratings as integers, missing values as null,
    ``exported_at`` as a timestamp), written in row groups of ``batch``."""
    n = 0
    with _Atomic(path, mode="path") as partial:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in _chunks(iter(rows), batch):
                if writer is None:
                    schema = arrow_schema(
                        taxonomy, label_space, optional=[c for c in OPTIONAL if c in chunk[0]]
                    )
                    writer = pq.ParquetWriter(str(partial), schema)
                ready = [arrow_row(r, schema.names) for r in chunk]
                for k, row in enumerate(ready):
                    check_keys(row, schema, f"row {n + k} (turn {row.get('turn_id')})")
                table = pa.Table.from_pylist(ready, schema=schema)
                writer.write_table(table)
                n += len(chunk)
            if writer is None:
                writer = pq.ParquetWriter(str(partial), arrow_schema(taxonomy, label_space))
        finally:
            if writer is not None:
                writer.close()
    return n


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


FLAT_COLUMNS = (
    "session_id",
    "clip_id",
    "turn_id",
    "turn_index",
    "speaker",
    "start",
    "end",
    "text",
    "annotator",
    "split",
)


def write_flat_csv(rows: Iterable[Mapping[str, Any]], path: Path, **_: Any) -> int:
    """One row per annotator per turn, one column per dimension; the number of lines."""
    n = 0
    with _Atomic(path) as out:
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            for annotator, values in row["labels"].items():
                line = {c: row.get(c) for c in FLAT_COLUMNS if c != "annotator"}
                line["annotator"] = annotator
                dims = sorted(row["aggregates"])
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=[*FLAT_COLUMNS, *dims])
                    writer.writeheader()
                line.update({d: values.get(d) for d in dims})
                writer.writerow({k: safe_cell(v) for k, v in line.items()})
                n += 1
        if writer is None:
            csv.writer(out).writerow(FLAT_COLUMNS)
    return n


# A writer takes the rows and the path, and the keyword arguments ``taxonomy`` and
# ``label_space`` (used by Parquet's typed schema; CSV ignores them; JSONL, written first
# by the export, takes only the rows and the path).
Writer = Callable[..., int]
FORMATS: dict[str, tuple[str, Writer]] = {
    "jsonl": ("turns.jsonl", write_jsonl),
    "csv": ("turns.csv", write_csv),
    "parquet": ("turns.parquet", write_parquet),
    "flat-csv": ("judgements.csv", write_flat_csv),
}


def writer(name: str) -> tuple[str, Writer]:
    """(file name, writer) of format ``name``; an unknown name lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        known = sorted(FORMATS)
        raise ValueError(f"unknown export format {name!r}; expected one of {known}") from None
