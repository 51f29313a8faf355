"""Exporters: labeled turn-level datasets from the service's store, with a data card.

Public entry points: :func:`export_dataset` (from a store) and
:func:`export_label_studio_file` (offline, from a Label Studio JSON export). Formats are
listed in :data:`exporters.formats.FORMATS`.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from annotate.agreement import bootstrap_ci, krippendorff_alpha, pivot
from exporters.card import SPLITS, write_card
from exporters.formats import FORMATS, writer
from exporters.jsonl import read_jsonl, write_jsonl
from exporters.rows import Accounting, ExportOptions, iter_rows
from exporters.splits import group_split
from schemas.errors import AnnotateError
from schemas.taxonomy import Taxonomy

__all__ = [
    "FORMATS",
    "ExportOptions",
    "ExportReport",
    "export_dataset",
    "export_label_studio_file",
    "iter_rows",
    "read_jsonl",
    "write_jsonl",
    "writer",
]


@dataclass(slots=True)
class ExportReport:
    """What an export wrote, and the accounting of every judgement read."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: int = 0
    accounting: Accounting = field(default_factory=Accounting)
    splits: dict[str, int] = field(default_factory=dict)


def _agreement(
    values: dict[str, list[tuple[str, str, float]]], taxonomy: Taxonomy, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dim in taxonomy.dimensions:
        triples = values.get(dim.name, [])
        figures: dict[str, Any] = {"alpha": None, "ci_low": None, "ci_high": None}
        if triples:
            units, annotators, codes = zip(*triples, strict=True)
            matrix = pivot(units, annotators, codes)[0]
            try:
                point, low, high = bootstrap_ci(
                    lambda m, level=dim.level: krippendorff_alpha(m, level=level),
                    matrix,
                    n_boot=n_boot,
                    seed=seed,
                )
                figures = {"alpha": float(point), "ci_low": float(low), "ci_high": float(high)}
            except ValueError:
                pass
        out[dim.name] = figures
    return out


def export_dataset(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    folder: Path,
    *,
    formats: Sequence[str] = ("jsonl",),
    options: ExportOptions,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    n_boot: int = 300,
    progress: Callable[[int], None] = lambda _: None,
) -> ExportReport:
    """Export a project's turns into ``folder`` in ``formats``, with a data card.

    Rows are streamed once into a temporary JSONL file (collecting what the splits and the
    card need), then each format is written from it with the split filled in.
    """
    targets = {name: writer(name) for name in formats}
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(folder=folder)
    light: list[dict[str, Any]] = []
    values: dict[str, list[tuple[str, str, float]]] = {d.name: [] for d in taxonomy.dimensions}
    # choice values coded by declared order; labels of another label space get new codes
    codes = {
        d.name: ({v: float(i) for i, v in enumerate(d.values)} if d.kind == "choice" else None)
        for d in taxonomy.dimensions
    }
    emotion = taxonomy.emotion.name
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        staged = Path(scratch) / "rows.jsonl"
        with open(staged, "w", encoding="utf-8") as out:
            for n, row in enumerate(
                iter_rows(db, project_id, taxonomy, options, report.accounting), start=1
            ):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                light.append(
                    {
                        "session": row["session_id"],
                        "performer": row["speaker"],
                        "label": row["aggregates"][emotion]["majority"],
                        "seconds": row["end"] - row["start"],
                    }
                )
                for annotator, dims in row["labels"].items():
                    for dim, value in dims.items():
                        table = codes[dim]
                        code = (
                            float(value)
                            if table is None
                            else table.setdefault(value, float(len(table)))
                        )
                        values[dim].append((row["turn_id"], annotator, code))
                if n % 1000 == 0:
                    progress(n)
        report.accounting.check()
        split_of = group_split(
            light,
            session_key="session",
            performer_key="performer",
            label_key="label",
            fractions=fractions,
            seed=seed,
        )
        split_names = [split_of.get(i) for i in range(len(light))]
        report.splits = dict(Counter(s for s in split_names if s))

        def staged_rows() -> Iterator[dict[str, Any]]:
            for i, row in enumerate(read_jsonl(staged)):
                row["split"] = split_names[i]
                yield row

        for name, (file_name, write) in targets.items():
            path = folder / file_name
            report.rows = write(staged_rows(), path)
            report.files[name] = path
    distribution: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    for item, split in zip(light, split_names, strict=True):
        if split and item["label"] is not None:
            distribution[split][item["label"]] += 1
    stats = {
        "sessions": len({item["session"] for item in light}),
        "turns": len(light),
        "hours": sum(item["seconds"] for item in light) / 3600,
        "annotators": len({a for triples in values.values() for _, a, _ in triples}),
    }
    write_card(
        folder,
        taxonomy=taxonomy,
        options=options,
        accounting=report.accounting,
        stats=stats,
        distribution=distribution,
        agreement=_agreement(values, taxonomy, n_boot, seed),
        files=[p.name for p in report.files.values()],
        seed=seed,
    )
    return report


class LabelStudioExportError(AnnotateError, ValueError):
    """A Label Studio JSON export does not have the expected shape; names the item."""


def export_label_studio_file(
    source: Path, taxonomy: Taxonomy, folder: Path, **kwargs: Any
) -> ExportReport:
    """Export offline from a Label Studio JSON export (tasks with their annotations).

    The annotations go through the same order-safe path as webhooks into a throwaway
    SQLite store, which is then exported like the service's own.
    """
    from api import store
    from api.db import init_db, make_engine

    try:
        tasks = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelStudioExportError(f"{source}: not a readable JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise LabelStudioExportError(f"{source}: expected a JSON list of tasks")
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'export.db'}")
        init_db(engine)
        project_ids = set()
        with Session(engine) as db:
            for i, task in enumerate(tasks):
                if not isinstance(task, dict) or "id" not in task or "data" not in task:
                    raise LabelStudioExportError(
                        f"{source}: item {i} is not a task with an id and data"
                    )
                project_id = int(task.get("project") or 0)
                project_ids.add(project_id)
                task_obj = {"id": task["id"], "data": task["data"]}
                store.upsert_task(db, project_id, task_obj)
                db.commit()
                for annotation in task.get("annotations") or []:
                    payload = {
                        "action": "ANNOTATION_UPDATED",
                        "project": {"id": project_id},
                        "task": task_obj,
                        "annotation": annotation,
                    }
                    try:
                        store.apply_event(db, payload, taxonomy)
                    except store.PayloadError as exc:
                        raise LabelStudioExportError(
                            f"{source}: task {task['id']}: {exc}"
                        ) from None
            if len(project_ids) != 1:
                raise LabelStudioExportError(
                    f"{source}: expected the tasks of one project, found {sorted(project_ids)}"
                )
            report = export_dataset(db, project_ids.pop(), taxonomy, folder, **kwargs)
        engine.dispose()
    return report
