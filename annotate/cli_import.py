"""The ``import`` and ``init`` commands: session folders in, Label Studio tasks out.

``import PATH`` reads, checks and pushes every session at ``PATH``; ``--dry-run`` pushes
nothing, ``--json`` prints the report as one JSON object on standard output (and nothing
else there). ``init PATH`` writes the ``session.yaml`` each session folder implies.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from annotate.cli_common import _friendly, _project, _taxonomy, console, err, state
from schemas.errors import AnnotateError

__all__ = ["import_", "init", "register", "run_import"]


def register(app: typer.Typer) -> None:
    """Add the ``import`` and ``init`` commands to ``app``."""
    app.command("import")(import_)
    app.command("init")(init)


@_friendly
def import_(
    path: Annotated[Path, typer.Argument(help="a session folder, or a folder of them")],
    dry_run: Annotated[
        bool, typer.Option(help="read, check and report every session; push nothing")
    ] = False,
    transcript_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="read transcripts as this format (vtt, srt, rttm, whisperx, eaf, textgrid, "
            "csv) instead of choosing by extension",
        ),
    ] = None,
    prosody: Annotated[
        bool | None,
        typer.Option(help="compute per-turn prosody features (default: import.prosody)"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="print the report as one JSON object on standard output, nothing else "
            "(with or without --dry-run)",
        ),
    ] = False,
    gold_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="mark this share of clips gold: an expert answers them blind in the "
            "adjudication project ('improv-annotate adjudicate'), and annotators are scored "
            "against that answer; the marks stay in the service's store",
        ),
    ] = 0.0,
    repeat_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="import this share of clips a second time, later, as hidden repeats "
            "annotators cannot tell from new clips; each annotator's two passes give their "
            "agreement with themselves, and the repeats count in no other figure or export",
        ),
    ] = 0.0,
) -> None:
    """Import session folders into the Label Studio project (idempotent, resumable).

    A session folder needs a recording; session.yaml is optional, and what it leaves out
    (id, title, media, transcript, performers) is inferred and reported.
    """
    report = run_import(
        path,
        dry_run=dry_run,
        transcript_format=transcript_format,
        prosody=prosody,
        as_json=as_json,
        gold_share=gold_share,
        repeat_share=repeat_share,
    )
    if report.failed:
        raise typer.Exit(1)


def run_import(
    path: Path,
    dry_run: bool = False,
    transcript_format: str | None = None,
    prosody: bool | None = None,
    as_json: bool = False,
    gold_share: float = 0.0,
    repeat_share: float = 0.0,
) -> Any:
    """Import (or with ``dry_run`` read, check and cut) the sessions at ``path``, print the
    report (as JSON with ``as_json``, progress bars off) and return it. ``gold_share``:
    mark that share of each session's clips gold (:mod:`api.gold`); ``repeat_share``: push
    that share again as hidden repeats (:mod:`api.repeats`). The JSON report's
    ``gold_clips`` and ``repeat_clips`` count them per session."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from annotate.labelstudio import connect, session_pusher
    from importers import ImportOptions, import_sessions

    s = state.settings
    taxonomy = _taxonomy()
    push = None
    gold: dict[str, int] = {}
    repeated: dict[str, int] = {}
    if not dry_run:
        client = connect(s)
        project = _project(client)
        push = session_pusher(
            client,
            project.id,
            s.media_path,
            serve_local=not s.label_studio.media_base_url,
            keep_intended=store_keeper(s.database_url),
            keep_pins=pin_keeper(s.database_url),
        )
        if gold_share > 0 or repeat_share > 0:
            push = qa_marker(push, project.id, gold_share, repeat_share, gold, repeated)
    options = ImportOptions(
        max_seconds=s.clips.max_seconds,
        context_turns=s.clips.context_turns,
        video=s.label_studio.video,
        prosody=s.importer.prosody if prosody is None else prosody,
        noise_gate=s.importer.pitch_noise_gate,
        transcript_format=transcript_format,
        media_base_url=s.label_studio.media_base_url,
    )
    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
        disable=as_json or not console.is_terminal,
    ) as shown:

        def progress(session: str, stage: str, done: int, total: int) -> None:
            if session not in bars:
                bars[session] = shown.add_task(session, total=None)
            shown.update(
                bars[session], description=f"{session}: {stage}", completed=done, total=total
            )

        with tempfile.TemporaryDirectory(prefix="improv-annotate-dry-run-") as scratch:
            # a dry run cuts the clips too (to check them), but keeps nothing
            report = import_sessions(
                path,
                media_root=Path(scratch) if dry_run else s.media_path,
                taxonomy=taxonomy,
                push=push,
                options=options,
                progress=progress,
            )
    if as_json:
        out = report.as_json()
        if gold_share > 0:
            out["gold_clips"] = gold
        if repeat_share > 0:
            out["repeat_clips"] = repeated
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        _print_import(report)
        if gold:
            console.print(
                "gold clips (kept in the service's store): "
                + ", ".join(f"{escape(k)} {v}" for k, v in sorted(gold.items()))
            )
        if repeated:
            console.print(
                "hidden repeats (kept in the service's store): "
                + ", ".join(f"{escape(k)} {v}" for k, v in sorted(repeated.items()))
            )
    return report


def qa_marker(
    push: Any,
    project_id: int,
    gold_share: float,
    repeat_share: float,
    gold: dict[str, int],
    repeated: dict[str, int],
) -> Any:
    """Wrap ``push(session, tasks)`` for the QA loop. After a session's tasks are in Label
    Studio: ``gold_share`` of its clips are marked gold in the service's store
    (:mod:`api.gold`); ``repeat_share`` of them are kept as hidden repeats
    (:mod:`api.repeats`) and then pushed again as copies, after the session's clips. Both
    picks are keyed with the service's API key, so every machine with the configuration
    picks the same clips. ``gold`` and ``repeated`` get the counts per session."""
    from sqlmodel import Session

    from annotate.labelstudio import connect, list_clip_tasks
    from api.db import init_db, make_engine
    from api.gold import mark_gold, pick_gold
    from api.repeats import keep_repeats, plan_copies, record_tasks, repeat_clips, retitle
    from importers.clips import content_hash

    s = state.settings
    engine = make_engine(s.database_url)
    init_db(engine)
    key = s.service.api_key or ""

    def marked(session: Any, tasks: list[dict[str, Any]]) -> Any:
        by_key = {str(t["data"].get("clip_key") or t["data"]["clip_id"]): t for t in tasks}
        copies: list[Any] = []
        if repeat_share > 0:
            picked = [by_key[k] for k in pick_gold(by_key, repeat_share, key, domain="repeat")]
            with Session(engine) as db:
                copies, warnings = plan_copies(
                    db,
                    project_id,
                    session.id,
                    tasks,
                    picked,
                    len(session.turns),
                    content_hash,
                    s.media_path / session.id,
                )
            for warning in warnings:
                err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
        if copies:  # every clip says "clip K of N" with N counting the copies too
            for k, task in enumerate(tasks):
                data = task["data"]
                index = int(data.get("clip_index", k))
                data["title"] = retitle(
                    str(data.get("title") or ""), index, len(tasks) + len(copies)
                )
                data.pop("content_hash", None)
                data["content_hash"] = content_hash(task)
        pushed = push(session, tasks)
        if gold_share > 0:
            chosen = [str(by_key[k]["data"]["clip_id"]) for k in pick_gold(by_key, gold_share, key)]
            with Session(engine) as db:
                gold[session.id] = mark_gold(db, project_id, session.id, chosen)
                db.commit()
        if repeat_share > 0:
            with Session(engine) as db:  # kept before Label Studio has them
                keep_repeats(
                    db,
                    project_id,
                    session.id,
                    [(c["data"]["clip_id"], original, turns) for c, original, turns in copies],
                )
                db.commit()
            if copies:
                push(session, [c for c, _, _ in copies])
                # the copies' tasks: their events are told apart by task, not by data
                # only a task that is exactly the copy pushed: one per key, no annotations
                # yet, the copy's content (a member could have made one under the key)
                with Session(engine) as db:
                    noted = {
                        r.clip_id for r in repeat_clips(db, project_id) if r.task_id is not None
                    }
                keys = {
                    str(c["data"]["clip_key"]): c["data"]
                    for c, _, _ in copies
                    if str(c["data"]["clip_id"]) not in noted
                }
                found: dict[str, list[Any]] = {}
                for t in list_clip_tasks(connect(s), project_id):
                    if t.key in keys:
                        found.setdefault(t.key, []).append(t)
                held = {}
                for clip_key, data in keys.items():
                    ts = found.get(clip_key, [])
                    if (
                        len(ts) == 1
                        and not ts[0].annotations
                        and ts[0].digest == data["content_hash"]
                    ):
                        held[str(data["clip_id"])] = ts[0].id
                    else:
                        err.print(
                            "[yellow]warning:[/yellow] hidden repeat "
                            f"{escape(str(data['clip_id']))}: {len(ts)} task(s) under its "
                            "key, not exactly the copy pushed; it is told apart by its "
                            "clip_id until an import finds it alone"
                        )
                with Session(engine) as db:
                    record_tasks(db, project_id, held)
                    db.commit()
            repeated[session.id] = len(copies)
        return pushed

    return marked


def store_keeper(database_url: str) -> Any:
    """An ``annotate.labelstudio.IntendedKeeper`` writing to the service's store (the one
    the export reads), so an import needs no running service."""
    from api.db import init_db, make_engine
    from api.inbox import transaction
    from api.intended import put_intended

    engine = make_engine(database_url)
    init_db(engine)

    def keep(project_id: int, session_id: str, turns: list[dict[str, Any]]) -> None:
        # retried while the store is locked beyond its busy timeout (a long writer)
        transaction(engine, lambda db: put_intended(db, project_id, session_id, turns))

    return keep


def pin_keeper(database_url: str) -> Any:
    """An ``annotate.labelstudio.PinKeeper`` writing to the service's store: every task
    pushed is pinned with the data pushed (:mod:`api.pins`)."""
    from api.db import init_db, make_engine
    from api.inbox import transaction
    from api.pins import record_pins

    engine = make_engine(database_url)
    init_db(engine)

    def keep(project_id: int, pins: dict[int, dict[str, Any]]) -> None:
        transaction(engine, lambda db: record_pins(db, project_id, pins))

    return keep


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _inferred(values: dict[str, Any]) -> str:
    """``inferred: id x, media a.wav, performers Maya (maya), ...`` (empty when nothing)."""
    parts = []
    for key, value in values.items():
        if key == "performers":
            shown = ", ".join(f"{p['name']} ({p['id']})" for p in value) or "none"
            parts.append(f"performers {shown}")
        else:
            parts.append(f"{key} {'none' if value is None else value}")
    return f"  inferred: {'; '.join(parts)}" if parts else ""


def _session_line(summary: dict[str, Any]) -> str:
    speakers = ", ".join(f"{name} {n}" for name, n in summary["speakers"].items())
    return (
        f"session [bold]{summary['id']}[/bold]: {summary['turns']} turns, "
        f"{_seconds(summary['duration_s'])}, last turn ends at {_seconds(summary['end_s'])}; "
        f"speakers {speakers or 'none'}"
    )


def _print_import(report: Any) -> None:
    summaries = {o.folder: o.summary() for o in report.outcomes}
    for outcome in report.outcomes:
        if outcome.error is None:
            summary = summaries[outcome.folder]
            console.print(_session_line(summary), markup=True)
            if summary["inferred"]:
                console.print(_inferred(summary["inferred"]), markup=False)
    verb = "would push" if report.dry_run else "pushed"
    console.print(
        f"sessions {len(report.sessions)} {verb}, failed {len(report.failed)}; "
        f"turns {report.turns}, clips {report.clips}, hours {report.hours:.2f}"
    )
    if not report.dry_run:
        console.print(
            f"tasks created {report.created}, already there {report.existing}, "
            f"updated {report.updated}"
        )
        if report.duplicate_keys:
            keys = report.duplicate_keys
            shown = ", ".join(keys[:20]) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
            console.print(
                f"duplicate tasks removed {report.removed}, from {len(keys)} clips held by "
                f"more than one task: {shown}"
            )
    for key in report.conflicts:
        err.print(
            f"[yellow]conflict[/yellow] clip {key}: several tasks hold it and each has "
            "annotations; all are kept, merge them by hand in Label Studio"
        )
    for folder, warnings in report.warnings.items():
        for warning in warnings:
            err.print(f"[yellow]warning[/yellow] {folder}: {warning}", markup=True)
    if report.skipped_folders:
        names = ", ".join(Path(f).name for f in report.skipped_folders)
        err.print(
            f"[yellow]warning[/yellow] {len(report.skipped_folders)} sub-folder(s) skipped, "
            f"neither a session.yaml nor a recording in them: {names}"
        )
    for outcome in report.outcomes:
        if outcome.error is not None:
            err.print(f"[red]skipped session[/red] {outcome.folder}: {outcome.error}")
            line = _inferred(summaries[outcome.folder]["inferred"])
            if line:
                err.print(line, markup=False)


@_friendly
def init(
    path: Annotated[Path, typer.Argument(help="a session folder, or a folder of them")],
    force: Annotated[
        bool,
        typer.Option(help="rewrite an existing session.yaml (its values are kept)"),
    ] = False,
) -> None:
    """Write the session.yaml each session folder implies, for you to edit.

    It holds the inferred id, title, media, transcript and performers, each marked with
    where it came from; an existing session.yaml is left alone unless --force.
    """
    from importers import shown
    from importers.session import find_sessions
    from importers.session_yaml import write_session_yaml

    skipped: list[Path] = []
    folders = find_sessions(path, skipped)
    failed = 0
    for folder in folders:
        try:
            written = write_session_yaml(folder, force=force)
        except AnnotateError as exc:
            err.print(f"[red]not written[/red] {shown(str(exc))}")
            failed += 1
            continue
        verb = "rewrote" if written.replaced else "wrote"
        console.print(f"{verb} {shown(written.path)}", markup=False)
        line = _inferred(written.inferred)
        if line:
            console.print(line, markup=False)
        for warning in written.warnings:
            err.print(f"[yellow]warning[/yellow] {shown(folder)}: {shown(warning)}")
        for problem in written.errors:
            err.print(f"[red]to fix before importing[/red] {shown(folder)}: {shown(problem)}")
        failed += bool(written.errors)
    if skipped:
        names = ", ".join(shown(f.name) for f in skipped)
        err.print(
            f"[yellow]warning[/yellow] {len(skipped)} sub-folder(s) skipped, neither a "
            f"session.yaml nor a recording in them: {names}"
        )
    if failed:
        raise typer.Exit(1)
