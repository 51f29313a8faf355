"""JSON Lines: one ``json.dumps(row, ensure_ascii=False)`` per line, read back lazily.

A pure part (:func:`iter_jsonl_lines`) and thin I/O around it (:func:`write_jsonl`,
:func:`read_jsonl`).

Example
-------
>>> list(iter_jsonl_lines([{"text": "¡Hola!"}]))
['{"text": "¡Hola!"}\\n']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


def iter_jsonl_lines(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Each row as one JSON line (UTF-8 text kept as is), newline-terminated.

    The text of ``json.dumps(row, ensure_ascii=False)``, from one encoder made once.
    """
    encode = json.JSONEncoder(ensure_ascii=False).encode
    for row in rows:
        yield encode(row) + "\n"


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write rows to ``path`` atomically (a temporary file renamed at the end); the count."""
    n = 0

    def lines() -> Iterator[str]:
        nonlocal n
        for line in iter_jsonl_lines(rows):
            n += 1
            yield line

    write_text(lines(), path)
    return n


def write_text(chunks: Iterable[str], path: str | Path) -> None:
    """Write text chunks (e.g. blocks of JSON lines) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "w", encoding="utf-8") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read rows back, lazily."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
