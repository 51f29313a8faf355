"""Turn-level JSONL: one row per turn with every annotator's labels and the majority.

A pure part (:func:`iter_turn_rows`, :func:`iter_jsonl_lines`) and a thin writer
(:func:`write_jsonl`). Rows are built from the service's store through ``api.store``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from api import store
from schemas.taxonomy import Taxonomy

TOOL_VERSION = "0.1.0"


def majority(values: Iterable[str]) -> tuple[str | None, list[str]]:
    """The most frequent value, or ``None`` and the tied values when there is a tie.

    >>> majority(["joy", "joy", "anger"])
    ('joy', [])
    >>> majority(["joy", "anger"])
    (None, ['anger', 'joy'])
    """
    counts = Counter(values).most_common()
    if not counts:
        return None, []
    top = [v for v, n in counts if n == counts[0][1]]
    return (top[0], []) if len(top) == 1 else (None, sorted(top))


def iter_turn_rows(db: Session, project_id: int, taxonomy: Taxonomy) -> Iterator[dict[str, Any]]:
    """One row per turn of the project's live tasks, in task and turn order."""
    labels = store.turn_labels(db, project_id)
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    for task in store.iter_tasks(db, project_id):
        data: Mapping[str, Any] = task.data
        offset = float(data.get("audio_offset") or 0.0)
        for line in data.get("dialogue") or []:
            turn_id = str(line["turn_id"])
            by_annotator = labels.get(turn_id, {})
            row: dict[str, Any] = {
                "taxonomy": taxonomy.name,
                "taxonomy_version": taxonomy.version,
                "project_id": project_id,
                "task_id": task.id,
                "session_id": data.get("session_id"),
                "clip_id": data.get("clip_id"),
                "turn_id": turn_id,
                "turn_index": line.get("turn_index"),
                "speaker": line.get("performer") or line.get("speaker"),
                "start": round(float(line["start"]) + offset, 3),
                "end": round(float(line["end"]) + offset, 3),
                "text": line.get("text"),
                "labels": {a: dict(v) for a, v in sorted(by_annotator.items())},
                "n_annotators": len(by_annotator),
                "majority": {},
                "majority_tie": {},
                "exported_at": exported_at,
                "tool_version": TOOL_VERSION,
            }
            for dim in taxonomy.dimensions:
                votes = [v[dim.name] for v in by_annotator.values() if dim.name in v]
                label, tied = majority(votes)
                row["majority"][dim.name] = label
                if tied:
                    row["majority_tie"][dim.name] = tied
            yield row


def iter_jsonl_lines(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Each row as one JSON line (UTF-8 text kept as is), newline-terminated."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write rows to ``path`` atomically (a temporary file renamed at the end); the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    n = 0
    try:
        with open(partial, "w", encoding="utf-8") as out:
            for line in iter_jsonl_lines(rows):
                out.write(line)
                n += 1
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return n


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read rows back, lazily."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
