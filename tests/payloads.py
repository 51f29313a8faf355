"""Label Studio webhook payloads, built the way Label Studio sends them, for store tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.codec import encode_annotation
from schemas.taxonomy import Taxonomy


def dialogue(n_turns: int, session_id: str = "s1", clip: int = 0) -> list[dict[str, Any]]:
    """A clip's dialogue of ``n_turns`` alternating turns, 2 s each."""
    return [
        {
            "speaker": "Maya" if i % 2 == 0 else "Theo",
            "performer": "p01" if i % 2 == 0 else "p02",
            "text": f"line {i}",
            "start": 2.0 * i,
            "end": 2.0 * i + 1.5,
            "turn_id": f"{session_id}-t{clip * 100 + i:05d}",
            "turn_index": clip * 100 + i,
        }
        for i in range(n_turns)
    ]


def task(task_id: int, lines: list[dict[str, Any]], session_id: str = "s1") -> dict[str, Any]:
    """A task object as in webhook payloads."""
    return {
        "id": task_id,
        "data": {
            "dialogue": lines,
            "session_id": session_id,
            "clip_id": f"{session_id}-c{task_id:03d}",
            "audio_offset": 10.0,
            "audio": "/data/local-files/?d=s1/x.wav",
        },
        "project": 1,
    }


def annotation_event(
    taxonomy: Taxonomy,
    annotation_id: int,
    task_obj: Mapping[str, Any],
    annotator: int,
    values: Mapping[int, Mapping[str, str | int]],
    *,
    updated_at: str = "2026-11-26T10:00:00.000000Z",
    action: str = "ANNOTATION_CREATED",
    project_id: int = 1,
    shifts: list[dict[str, Any]] | None = None,
    was_cancelled: bool = False,
    updated_by: int | None = -1,
    created_at: str = "2026-11-26T09:00:00.000000Z",
) -> dict[str, Any]:
    """An ANNOTATION_CREATED / ANNOTATION_UPDATED payload. ``updated_by``: who last saved
    it, as Label Studio records it (by default the annotator; ``None`` leaves it out)."""
    lines = task_obj["data"]["dialogue"]
    return {
        "action": action,
        "project": {"id": project_id, "title": "p"},
        "task": dict(task_obj),
        "annotation": {
            "id": annotation_id,
            "task": task_obj["id"],
            "project": project_id,
            "completed_by": annotator,
            "result": encode_annotation(lines, values, taxonomy, shifts or []),
            "was_cancelled": was_cancelled,
            "created_at": created_at,
            "updated_at": updated_at,
            "lead_time": 12.5,
            **(
                {}
                if updated_by is None
                else {"updated_by": annotator if updated_by == -1 else updated_by}
            ),
        },
    }


def delete_event(annotation_ids: list[int], project_id: int = 1) -> dict[str, Any]:
    """An ANNOTATIONS_DELETED payload (ids only, as Label Studio sends it)."""
    return {
        "action": "ANNOTATIONS_DELETED",
        "project": {"id": project_id},
        "annotations": [{"id": i} for i in annotation_ids],
    }
