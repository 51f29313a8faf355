"""Exporters: labeled turn-level datasets from the service's store, with a data card.

Public entry points: :func:`export_dataset` (from a store) and
:func:`export_label_studio_file` (offline, from a Label Studio JSON export). Formats are
listed in :data:`exporters.formats.FORMATS`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from annotate.agreement import N_BOOT
from api import reports, scorecards
from api.adjudication import decisions
from api.repeats import repeat_clips
from exporters.audio import TurnAudio
from exporters.card import CardStats, write_card
from exporters.card_sections import CardFacts
from exporters.formats import FORMATS, writer
from exporters.jsonl import read_jsonl, write_jsonl, write_text
from exporters.parallel import parallel_lines, task_spans, worker_url
from exporters.rows import Accounting, ExportOptions, iter_rows, plan_export
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
    """What an export wrote, and the accounting of every judgement read.

    ``warnings``: what the export could not do as asked (a split request that whole
    sessions cannot meet, ...); the data card states them too.
    """

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: int = 0
    accounting: Accounting = field(default_factory=Accounting)
    splits: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


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
    n_boot: int = N_BOOT,
    progress: Callable[[int], None] = lambda _: None,
    workers: int = 1,
    unapplied: tuple[int, float] = (0, 0.0),
    adjudicated: Mapping[str, Mapping[str, str]] | None = None,
) -> ExportReport:
    """Export a project's turns into ``folder`` in ``formats``, with a data card.

    The export is planned first (:func:`exporters.rows.plan_export`: the Dawid-Skene fit
    and the session splits, from one streamed read of the emotion judgements); rows are
    then built once and streamed into the JSONL file, and the other formats are written
    from it. What the data card needs is collected on the way as counts
    (:class:`exporters.card.CardStats`), so memory does not grow with the rows.

    Rows, formats, turn audio and the data card are written into a staging folder inside
    ``folder`` and moved into place only when all of them are written: an export that
    fails (the card included) leaves ``folder`` as it was. ``report.warnings`` lists what
    the export could not do as asked (a split whole sessions cannot meet); the card states
    them too.

    ``workers > 1`` builds the rows in that many worker processes over spans of tasks
    (:mod:`exporters.parallel`; same bytes, in the same order). The workers read the store
    through their own connections, so whatever the caller's session has not committed is
    not seen: commit first. An in-memory SQLite store is always exported in-process. Workers
    are started with ``spawn``, which imports the calling script again: call this from code
    under ``if __name__ == "__main__":``. On a machine whose cores are busy with other work
    the pool costs more than it gains (BENCHMARKS.md, section 5).
    """
    targets = {name: writer(name) for name in formats}
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(folder=folder)
    plan = plan_export(db, project_id, taxonomy, fractions=fractions, seed=seed)
    if adjudicated is None:  # the adjudicators' decisions, kept in this store
        adjudicated = decisions(db, project_id, options.adjudicators).turns
    plan.adjudicated = {t: dict(v) for t, v in adjudicated.items()}
    report.warnings = list(plan.warnings)
    card = CardStats(taxonomy)
    # everything is written into a staging folder inside ``folder`` and moved into place
    # only when the rows, every format and the data card are written: a failure leaves
    # the folder as it was (and no half-written file under a final name)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        stage = Path(scratch)
        audio = (
            TurnAudio(stage, options.media_root, options.sessions_root)
            if options.turn_audio
            else None
        )
        staged = stage / "turns.jsonl"
        url = worker_url(db) if workers > 1 else None
        if url is None:

            def rows() -> Iterator[dict[str, Any]]:
                for n, row in enumerate(
                    iter_rows(
                        db, project_id, taxonomy, options, report.accounting, plan=plan, audio=audio
                    ),
                    start=1,
                ):
                    card.add(row)
                    if n % 1000 == 0:
                        progress(n)
                    yield row

            report.rows = write_jsonl(rows(), staged)
        else:
            parts = parallel_lines(
                url,
                task_spans(db, project_id),
                workers=workers,
                project_id=project_id,
                taxonomy=taxonomy,
                options=options,
                plan=plan,
                exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
                audio=audio,
            )

            def chunks() -> Iterator[str]:
                for text, accounting, part in parts:
                    report.accounting.merge(accounting)
                    card.merge(part)
                    report.rows += part.turns
                    progress(report.rows)
                    yield text

            write_text(chunks(), staged)
        report.accounting.check()
        names = []
        for name, (file_name, write) in targets.items():
            if name != "jsonl":
                write(
                    read_jsonl(staged),
                    stage / file_name,
                    taxonomy=taxonomy,
                    label_space=options.label_space,
                )
            names.append(file_name)
        if "jsonl" not in targets:
            staged.unlink()
        report.splits = dict(card.splits)
        write_card(
            stage,
            taxonomy=taxonomy,
            options=options,
            accounting=report.accounting,
            stats=card.stats(),
            distribution=card.distribution(),
            agreement=card.agreement(n_boot),
            files=names,
            seed=seed,
            unapplied=unapplied,
            about=CardFacts(card=card, plan=plan, warnings=tuple(report.warnings)),
            links=reports.shifts(db, project_id, options.shift_tolerance)["trigger_links"],
            performers=scorecards.performers(
                db, project_id, taxonomy, sessions=card.sessions, tolerance=options.shift_tolerance
            ),
        )
        _publish(stage, folder)
    report.files = {name: folder / targets[name][0] for name in targets}
    return report


def _publish(stage: Path, folder: Path) -> None:
    """Move what ``stage`` holds into ``folder`` (each entry by one rename), replacing what
    an earlier export left under the same names."""
    for entry in sorted(stage.iterdir()):
        target = folder / entry.name
        if entry.is_dir():
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
        else:
            os.replace(entry, target)


OFFLINE_BATCH = 500  # annotations per commit in export_label_studio_file


class LabelStudioExportError(AnnotateError, ValueError):
    """A Label Studio JSON export does not have the expected shape; names the item."""


def export_label_studio_file(
    source: Path,
    taxonomy: Taxonomy,
    folder: Path,
    *,
    intended_from: Session | None = None,
    **kwargs: Any,
) -> ExportReport:
    """Export offline from a Label Studio JSON export (tasks with their annotations).

    The annotations go through the same order-safe path as webhooks, one at a time (committed
    every :data:`OFFLINE_BATCH`), into a throwaway SQLite store, which is then exported like
    the service's own. Label Studio's tasks do not hold the intended emotions: they are
    copied from ``intended_from`` (the service's store) when given.
    """
    from api import store
    from api.db import init_db, make_engine
    from api.intended import intended_rows, put_intended
    from api.pins import copy_pins

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
        repeat_ids: set[str] = set()
        repeat_tasks: set[int] = set()
        pinned: dict[int, dict[str, Any]] = {}
        repeats_left_out = 0
        with Session(engine) as db:
            applied = 0
            for i, task in enumerate(tasks):
                if not isinstance(task, dict) or "id" not in task or "data" not in task:
                    raise LabelStudioExportError(
                        f"{source}: item {i} is not a task with an id and data"
                    )
                project_id = int(task.get("project") or 0)
                if project_id not in project_ids and intended_from is not None:
                    # the hidden repeats the service keeps for each project of the file, by
                    # task where the import noted it (a member can edit a clip_id)
                    kept = repeat_clips(intended_from, project_id)
                    repeat_tasks |= {r.task_id for r in kept if r.task_id is not None}
                    repeat_ids |= {r.clip_id for r in kept if r.task_id is None}
                    # the data as imported, not as members may have edited it since
                    pinned.update(copy_pins(intended_from, db, project_id))
                project_ids.add(project_id)
                if task["id"] in repeat_tasks or str(task["data"].get("clip_id")) in repeat_ids:
                    repeats_left_out += 1
                    continue
                task_obj = {"id": task["id"], "data": pinned.get(task["id"], task["data"])}
                store.upsert_task(db, project_id, task_obj)
                for annotation in task.get("annotations") or []:
                    payload = {
                        "action": "ANNOTATION_UPDATED",
                        "project": {"id": project_id},
                        "task": {"id": task["id"], "data": task["data"]},
                        "annotation": annotation,
                    }
                    try:
                        event = store.parse_event(payload, taxonomy)
                    except store.PayloadError as exc:
                        raise LabelStudioExportError(
                            f"{source}: task {task['id']}: {exc}"
                        ) from None
                    # one at a time, as webhooks arrive: the stored order (and so every
                    # float of the export) is that of applying the events one by one
                    store.apply_events(db, [event], taxonomy)
                    applied += 1
                    if applied % OFFLINE_BATCH == 0:
                        db.commit()
            db.commit()
            if len(project_ids) != 1:
                raise LabelStudioExportError(
                    f"{source}: expected the tasks of one project, found {sorted(project_ids)}"
                )
            project_id = project_ids.pop()
            if intended_from is not None:
                kwargs.setdefault(
                    "adjudicated",
                    decisions(intended_from, project_id, kwargs["options"].adjudicators).turns,
                )
                by_session: dict[str, list[dict[str, Any]]] = {}
                for row in intended_rows(intended_from, project_id):
                    by_session.setdefault(row.session_id, []).append(row.model_dump())
                for session_id, turns in by_session.items():
                    put_intended(db, project_id, session_id, turns)
                db.commit()
            report = export_dataset(db, project_id, taxonomy, folder, **kwargs)
            if repeats_left_out:
                report.warnings.append(
                    f"{repeats_left_out} hidden repeat tasks left out (second passes for "
                    "agreement with oneself, not data)"
                )
        engine.dispose()
    return report
