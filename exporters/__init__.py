"""Exporters: labeled turn-level datasets from the service's store.

:data:`FORMATS` maps a format name to its writer; :func:`writer` looks one up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from exporters.jsonl import iter_turn_rows, read_jsonl, write_jsonl

Writer = Callable[[Iterable[Mapping[str, Any]], Path], int]
FORMATS: dict[str, Writer] = {"jsonl": write_jsonl}

__all__ = ["FORMATS", "iter_turn_rows", "read_jsonl", "write_jsonl", "writer"]


def writer(name: str) -> Writer:
    """The writer for format ``name``; an unknown name lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown export format {name!r}; expected one of {sorted(FORMATS)}"
        ) from None
