"""Exporters: labeled turn-level datasets from the service's store, with a data card.

Public entry points: :func:`export_dataset` (from a store) and
:func:`export_label_studio_file` (offline, from a Label Studio JSON export). Formats are
listed in :data:`exporters.formats.FORMATS`.
"""

from __future__ import annotations

import json
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session

from annotate.agreement import bootstrap_ci, krippendorff_alpha
from exporters.card import SPLITS, write_card
from exporters.formats import FORMATS, writer
from exporters.jsonl import read_jsonl, write_jsonl
from exporters.rows import Accounting, ExportOptions, iter_rows, plan_splits
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

    The splits are planned first (from sessions, performers and majority labels); rows are
    then built once and streamed into the JSONL file, and the other formats are written
    from it. What the data card needs is collected on the way, in compact arrays.
    """
    targets = {name: writer(name) for name in formats}
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(folder=folder)
    split_of = plan_splits(db, project_id, taxonomy, fractions=fractions, seed=seed)
    card = _CardData(taxonomy)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        staged = folder / "turns.jsonl" if "jsonl" in targets else Path(scratch) / "turns.jsonl"

        def rows() -> Iterator[dict[str, Any]]:
            for n, row in enumerate(
                iter_rows(db, project_id, taxonomy, options, report.accounting, split_of),
                start=1,
            ):
                card.add(row)
                if n % 1000 == 0:
                    progress(n)
                yield row

        report.rows = write_jsonl(rows(), staged)
        report.accounting.check()
        for name, (file_name, write) in targets.items():
            path = folder / file_name
            if name != "jsonl":
                write(read_jsonl(staged), path)
            report.files[name] = path
    report.splits = dict(Counter(s for s in card.splits if s))
    write_card(
        folder,
        taxonomy=taxonomy,
        options=options,
        accounting=report.accounting,
        stats=card.stats(),
        distribution=card.distribution(),
        agreement=card.agreement(n_boot, seed),
        files=[p.name for p in report.files.values()],
        seed=seed,
    )
    return report


class _CardData:
    """What the data card needs, gathered row by row in compact arrays."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.emotion = taxonomy.emotion.name
        self.sessions: set[str] = set()
        self.seconds = 0.0
        self.splits: list[str | None] = []
        self.labels: list[str | None] = []
        self.units: dict[str, array] = {d.name: array("i") for d in taxonomy.dimensions}
        self.raters: dict[str, array] = {d.name: array("i") for d in taxonomy.dimensions}
        self.codes: dict[str, array] = {d.name: array("d") for d in taxonomy.dimensions}
        self.annotator_index: dict[str, int] = {}
        self.tables = {
            d.name: ({v: float(i) for i, v in enumerate(d.values)} if d.kind == "choice" else None)
            for d in taxonomy.dimensions
        }

    def add(self, row: Mapping[str, Any]) -> None:
        """Take what the card needs from one row."""
        unit = len(self.splits)
        self.splits.append(row.get("split"))
        self.labels.append(row["aggregates"][self.emotion]["majority"])
        self.sessions.add(str(row["session_id"]))
        self.seconds += row["end"] - row["start"]
        for annotator, dims in row["labels"].items():
            rater = self.annotator_index.setdefault(annotator, len(self.annotator_index))
            for dim, value in dims.items():
                table = self.tables[dim]
                # choices coded by declared order; labels of another label space get new codes
                code = float(value) if table is None else table.setdefault(value, float(len(table)))
                self.units[dim].append(unit)
                self.raters[dim].append(rater)
                self.codes[dim].append(code)

    def stats(self) -> dict[str, Any]:
        """Counts for the card."""
        return {
            "sessions": len(self.sessions),
            "turns": len(self.splits),
            "hours": self.seconds / 3600,
            "annotators": len(self.annotator_index),
        }

    def distribution(self) -> dict[str, Counter[str]]:
        """Majority emotion counts per split (turns without a majority as '(tie)')."""
        out: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        for split, label in zip(self.splits, self.labels, strict=True):
            if split:
                out[split][label if label is not None else "(tie)"] += 1
        return out

    def agreement(self, n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
        """Alpha per dimension with a bootstrap CI over the exported turns."""
        out: dict[str, dict[str, Any]] = {}
        for dim in self.taxonomy.dimensions:
            figures: dict[str, Any] = {"alpha": None, "ci_low": None, "ci_high": None}
            if len(self.codes[dim.name]):
                matrix = np.full((len(self.annotator_index), len(self.splits)), np.nan)
                raters = np.frombuffer(self.raters[dim.name], dtype=np.int32)
                units = np.frombuffer(self.units[dim.name], dtype=np.int32)
                matrix[raters, units] = np.frombuffer(self.codes[dim.name], dtype=np.float64)
                matrix = matrix[:, ~np.isnan(matrix).all(axis=0)]
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
