"""The ``improv-annotate`` command line (the ``import`` and ``init`` commands are in
:mod:`annotate.cli_import`, what commands share in :mod:`annotate.cli_common`).

Each command parses its arguments, imports what it needs lazily, calls the library and
exits non-zero on failure with a message instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from annotate import cli_adjudicate, cli_import, cli_overlap, cli_scorecard
from annotate.cli_common import (
    MigrationOpt,
    ProjectOpt,
    _friendly,
    _project,
    _project_id,
    _taxonomy,
    app,
    console,
    err,
    state,
)
from annotate.config import Settings, find_config
from schemas.errors import AnnotateError

__all__ = ["app", "main", "state"]

DEMO_ANNOTATORS = 3
EXPORT_WAIT = 30.0  # seconds an export waits for events the service has not applied yet


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="config file (default: ./config.yaml)"),
    ] = None,
) -> None:
    """Options shared by every command."""
    state.config = find_config(config)
    from importers.prosody import configure_numba_cache

    # before anything imports numba: compiled pitch kernels are then kept once per machine
    configure_numba_cache()


@app.command()
@_friendly
def up(migration: MigrationOpt = None) -> None:
    """Start the local Label Studio and the agreement service, and set up the project."""
    from annotate import stack
    from annotate.labelstudio import connect

    s = state.settings
    stack.up(s, state.config, say=console.print)
    project = _project(connect(s), migration)
    console.print(f"project {project.id}: {s.label_studio.url}/projects/{project.id}/data")
    _print_login(s)
    console.print("annotators join with the link 'improv-annotate invite' prints (invite-only)")


def _print_login(s: Settings) -> None:
    console.print(
        f"log in at {s.label_studio.url} as [bold]{s.label_studio.username}[/bold]; the "
        f"password is label_studio.password in config.yaml or ls_password in "
        f"{s.data_path / 'secrets.json'}"
    )


@app.command()
@_friendly
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: service.url's host)")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="port to listen on (default: service.url's port)"),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="worker processes (more than 1: PostgreSQL store only)")
    ] = 1,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info, debug or trace")
    ] = "info",
    access_log: Annotated[bool, typer.Option(help="log one line per request")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="config file (the same as the global --config)"),
    ] = None,
) -> None:
    """Run the agreement service alone, in the foreground (for process managers and
    containers): logs on standard error, SIGTERM or Ctrl-C stops it cleanly."""
    from annotate import stack

    if config is not None:
        state.config = find_config(config)

    stack.serve(
        state.settings,
        state.config,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )


@app.command()
@_friendly
def invite(
    reset: Annotated[bool, typer.Option(help="make a new link; the old one stops working")] = False,
) -> None:
    """Print the link that lets a person join Label Studio (sign-up is invite-only)."""
    from annotate.labelstudio import connect, invite_link

    s = state.settings
    link = invite_link(connect(s), s.label_studio.url, reset=reset)
    print(link)  # alone on its line, unwrapped: for scripts and for copying
    err.print(
        "send this link only to annotators: whoever has it can join the organisation; "
        "'improv-annotate invite --reset' replaces it"
    )


@app.command()
@_friendly
def down() -> None:
    """Stop the local Label Studio and the agreement service started by 'up'."""
    from annotate import stack

    s = state.settings
    for name in (stack.SERVICE, stack.LABEL_STUDIO):
        console.print(f"{name}: {'stopped' if stack.stop(s, name) else 'was not running'}")


@app.command()
@_friendly
def status() -> None:
    """Show whether Label Studio and the agreement service answer."""
    from annotate import stack

    table = Table("part", "url", "health", "pid")
    parts = stack.status(state.settings)
    for part in parts:
        table.add_row(
            part.name,
            part.url,
            "[green]up[/green]" if part.healthy else "[red]down[/red]",
            str(part.pid or "-"),
        )
    console.print(table)
    if not all(p.healthy for p in parts):
        raise typer.Exit(1)


cli_import.register(app)
cli_overlap.register(app)
cli_scorecard.register(app)
cli_adjudicate.register(app)


@app.command()
@_friendly
def agreement(
    file: Annotated[
        Path | None,
        typer.Argument(help="a long-format CSV (unit, annotator, value) instead of a project"),
    ] = None,
    level: Annotated[
        str,
        typer.Option(
            help="level of measurement of the CSV's values: nominal, ordinal, interval or ratio"
        ),
    ] = "nominal",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    project: ProjectOpt = None,
    dimension: Annotated[str, typer.Option(help="taxonomy dimension")] = "emotion",
) -> None:
    """Print agreement: a project's figures from the service, or every coefficient of a CSV.

    Annotators are shown by the name Label Studio gives them (``"First Last <email>"``, as
    on the dashboard and in the API); ``--json`` adds ``by_annotator``, one entry per Label
    Studio user id with that name."""
    if file is None:
        figures = _print_agreement(_project_id(project), dimension, quiet=as_json)
        if as_json:
            console.print_json(data=figures)
        return
    from annotate.csv_agreement import coefficients, read_long_csv

    data = read_long_csv(file, level)
    figures = coefficients(data, level)
    if as_json:
        console.print_json(data=figures)
        return
    table = Table("coefficient", "value")
    for key, value in figures.items():
        table.add_row(
            key,
            value
            if isinstance(value, str)
            else (_fmt(value) if isinstance(value, float) or value is None else str(value)),
        )
    console.print(f"[bold]{file}[/bold]")
    console.print(table)


def _print_agreement(project_id: int, dimension: str, quiet: bool = False) -> dict[str, Any]:
    from annotate.service import ServiceClient

    s = state.settings
    service = ServiceClient(s.service.url, s.service.api_key)
    live = service.agreement(project_id, dimension)
    per = service.get(f"/projects/{project_id}/agreement/by/annotator", dimension=dimension)
    if quiet:
        return {**live, "by_annotator": [_annotator_json(row) for row in per["data"]]}
    fresh = live.get("freshness") or {}
    if fresh.get("pending"):
        console.print(
            f"[yellow]warning: not fresh: {fresh['pending']} events the service acknowledged "
            f"are not applied yet (the oldest {fresh['oldest_age_s']:.0f} s ago); these "
            "figures leave them out[/yellow]"
        )
    total = sum(p["judgements"] for p in service.projects() if p["id"] == project_id)
    console.print(
        f"Krippendorff's alpha ({live['level']}) on [bold]{dimension}[/bold]: "
        f"[bold]{_fmt(live['alpha'])}[/bold]  (Gwet's AC1 {_fmt(live['ac1'])}, percent "
        f"agreement {_fmt(live['percent_agreement'])}) over {live['units']} turns, from "
        f"{live['judgements']} {dimension} judgements"
    )
    console.print(
        f"the service holds {total} judgements of project {project_id} "
        f"({live['annotators']} annotators)"
    )
    table = Table("annotator", "user id", "judgements", "alpha without them", "mean pairwise alpha")
    for row in per["data"]:
        table.add_row(
            escape(str(row.get("name") or row["key"])),
            row["key"],
            str(row["judgements"]),
            _fmt(row["alpha_without"]),
            _fmt(row["alpha_pairwise_mean"]),
        )
    console.print(table)
    return live


def _annotator_json(row: dict[str, Any]) -> dict[str, Any]:
    """One annotator's figures with ``annotator`` (the user id) and ``name`` first."""
    rest = {k: v for k, v in row.items() if k not in ("key", "name")}
    return {"annotator": row["key"], "name": row.get("name") or row["key"], **rest}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
@_friendly
def sync(
    project: ProjectOpt = None,
    full: Annotated[bool, typer.Option(help="pull every task, and record deletions")] = False,
) -> None:
    """Have the service pull from Label Studio what webhooks missed."""
    _sync(_project_id(project), full)


def _sync(project_id: int, full: bool) -> None:
    from annotate.service import ServiceClient

    s = state.settings
    report = ServiceClient(s.service.url, s.service.api_key).post(
        f"/projects/{project_id}/reconcile", full=str(full).lower()
    )
    console.print(
        f"reconciled project {project_id}: {report['tasks']} tasks, {report['annotations']} "
        f"annotations seen, {report['stored']} judgements stored, "
        f"{report['deleted_annotations']} deletions recorded"
    )


@app.command()
@_friendly
def export(
    project: ProjectOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="comma-separated: jsonl, csv, parquet, flat-csv")
    ] = "jsonl",
    min_annotators: Annotated[int, typer.Option(min=0, help="skip turns with fewer")] = 0,
    min_clip_agreement: Annotated[
        float | None, typer.Option(help="skip clips whose emotion alpha is below this")
    ] = None,
    include_cancelled: Annotated[bool, typer.Option(help="list who cancelled a clip")] = False,
    session: Annotated[list[str] | None, typer.Option(help="only these sessions")] = None,
    since: Annotated[str | None, typer.Option(help="annotations updated from (ISO date)")] = None,
    until: Annotated[str | None, typer.Option(help="annotations updated until (ISO date)")] = None,
    label_space: Annotated[str, typer.Option(help="ours, meld or iemocap")] = "ours",
    real_ids: Annotated[bool, typer.Option(help="annotator ids instead of pseudonyms")] = False,
    seed: Annotated[int, typer.Option(help="seed of the train/dev/test split")] = 0,
    from_label_studio: Annotated[
        Path | None, typer.Option(help="export offline from a Label Studio JSON export file")
    ] = None,
    turn_audio: Annotated[
        bool,
        typer.Option(
            help="also write one WAV per turn (audio/<session>/<turn>.wav), cut from the "
            "session recording under --sessions-dir, else from the clip Label Studio serves"
        ),
    ] = False,
    sessions_dir: Annotated[
        Path | None,
        typer.Option(help="folder of session folders holding the original recordings"),
    ] = None,
) -> None:
    """Write a project's turn-level dataset with a data card (from the service's store)."""
    import dataclasses

    options = _export_options(
        min_annotators,
        min_clip_agreement,
        include_cancelled,
        session,
        since,
        until,
        label_space,
        real_ids,
    )
    if turn_audio:
        options = dataclasses.replace(
            options,
            turn_audio=True,
            media_root=state.settings.media_path,
            sessions_root=sessions_dir,
        )
    formats = [f.strip() for f in fmt.split(",") if f.strip()]
    if from_label_studio is not None:
        from sqlmodel import Session

        from api.db import init_db, make_engine
        from exporters import export_label_studio_file

        folder = out or state.settings.data_path / "exports" / from_label_studio.stem
        engine = make_engine(state.settings.database_url)  # holds the intended emotions
        try:
            init_db(engine)
            with Session(engine) as db:
                report = export_label_studio_file(
                    from_label_studio,
                    _taxonomy(),
                    folder,
                    intended_from=db,
                    formats=formats,
                    options=options,
                    seed=seed,
                )
        finally:
            engine.dispose()
        _print_export(report)
        return
    _export(_project_id(project), out, formats, options, seed)


def _export_options(
    min_annotators: int = 0,
    min_clip_agreement: float | None = None,
    include_cancelled: bool = False,
    sessions: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    label_space: str = "ours",
    real_ids: bool = False,
) -> Any:
    from datetime import UTC, datetime

    from annotate.config import local_secrets
    from exporters import ExportOptions

    def when(value: str | None, name: str) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise AnnotateError(f"--{name}: {value!r} is not an ISO date or time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    try:
        return ExportOptions(
            min_annotators=min_annotators,
            min_clip_agreement=min_clip_agreement,
            include_cancelled=include_cancelled,
            sessions=tuple(sessions) if sessions else None,
            since=when(since, "since"),
            until=when(until, "until"),
            label_space=label_space,
            real_ids=real_ids,
            salt=local_secrets(state.settings.data_path)["export_salt"],
            licence=state.settings.dataset.licence,
            consent=state.settings.dataset.consent,
            adjudicators=state.settings.adjudication.adjudicators,
        )
    except ValueError as exc:
        raise AnnotateError(str(exc)) from None


def _print_export(report: Any) -> None:
    acc = report.accounting
    console.print(
        f"wrote {acc.turns} turn rows ({acc.exported} judgements) to "
        f"[bold]{report.folder}[/bold]: {', '.join(p.name for p in report.files.values())}, "
        "README.md (data card), schema.json"
    )
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(acc.skipped.items()))
    console.print(
        f"judgements read {acc.read}, exported {acc.exported}, skipped "
        f"{sum(acc.skipped.values())}{' (' + skipped + ')' if skipped else ''}; "
        f"splits {report.splits}"
    )
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(acc.dropped.items()))
    console.print(f"result items dropped on the way in: {dropped or 'none'}")
    for warning in report.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    if acc.audio_written or acc.audio_skipped:
        missing = ", ".join(f"{n} {reason}" for reason, n in sorted(acc.audio_skipped.items()))
        console.print(f"turn audio files {acc.audio_written}; without one: {missing or 'none'}")


def _export(
    project_id: int,
    out: Path | None,
    formats: list[str] | None = None,
    options: Any = None,
    seed: int = 0,
) -> Path:
    from rich.progress import Progress, SpinnerColumn, TextColumn
    from sqlmodel import Session

    from api.db import init_db, make_engine
    from api.inbox import Inbox
    from exporters import export_dataset

    s = state.settings
    folder = out or s.data_path / "exports" / f"project-{project_id}"
    engine = make_engine(s.database_url)
    init_db(engine)
    inbox = Inbox(engine)
    try:  # events the service acknowledged and has not applied yet: wait, or say so
        waiting = inbox.wait_applied(timeout=EXPORT_WAIT)
        lag = inbox.lag() if waiting else None
    finally:
        inbox.dispose()
    if waiting:
        console.print(
            f"[yellow]{waiting} events the service acknowledged are not applied yet (is the "
            "service running?); this export leaves them out[/yellow]"
        )
    with (
        Session(engine) as db,
        Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
        ) as bar,
    ):
        job = bar.add_task("exporting", total=None)
        report = export_dataset(
            db,
            project_id,
            _taxonomy(),
            folder,
            formats=formats or ["jsonl"],
            options=options or _export_options(),
            seed=seed,
            progress=lambda n: bar.update(job, description=f"exporting: {n} turns"),
            unapplied=(lag.pending, lag.oldest_age_s) if lag else (0, 0.0),
        )
    engine.dispose()
    _print_export(report)
    return folder


@app.command()
@_friendly
def demo(
    annotators: Annotated[int, typer.Option(min=2, help="simulated annotators")] = DEMO_ANNOTATORS,
    seed: Annotated[int, typer.Option(help="seed of the simulated labels")] = 7,
    noise: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="chance a simulated label is wrong")
    ] = 0.2,
    sessions: Annotated[Path | None, typer.Option(help="session folder(s) to import")] = None,
) -> None:
    """The whole path on the local stack: import, simulated annotation, agreement, export."""
    from annotate import stack
    from annotate.labelstudio import connect

    s = state.settings
    console.rule("1-2  local stack")
    stack.up(s, state.config, say=console.print)
    console.rule("3  Label Studio project from the taxonomy")
    client = connect(s)
    project = _project(client)
    console.print(f"project {project.id} '{project.title}', webhook -> {s.webhook_url}")
    console.rule("4  import the example session")
    report = cli_import.run_import(sessions or s.path(s.examples_dir))
    if report.failed:
        raise typer.Exit(1)
    console.rule(f"6  {annotators} SIMULATED annotators label every task")
    made = _simulate(client, project.id, report.sessions, annotators, seed, noise)
    console.print(f"simulated annotations created: {made} (existing ones kept)")
    console.rule("7  agreement from the service")
    _sync(project.id, full=True)
    _print_agreement(project.id, "emotion")
    console.rule("8  export")
    import dataclasses

    _export(  # the card says the labels come from the simulator
        project.id, None, options=dataclasses.replace(_export_options(), simulated_annotators=True)
    )
    console.rule("9  ready for people")
    console.print(f"Label Studio: {s.label_studio.url}/projects/{project.id}/data")
    console.print(f"agreement service: {s.service.url}/docs")
    console.print(
        f"QA dashboard: {s.service.url}/dashboard/{project.id} (log in with service.api_key, "
        f"in {s.data_path / 'secrets.json'})"
    )
    _print_login(s)
    console.print("stop both with 'improv-annotate down'")


def _simulate(
    client: Any, project_id: int, sessions: list[Any], n: int, seed: int, noise: float
) -> int:
    import numpy as np
    from label_studio_sdk import LabelStudio
    from rich.progress import track

    from annotate.labelstudio import ensure_account, invite_link, iter_tasks
    from annotate.simulate import simulate_values
    from schemas.codec import encode_annotation

    s = state.settings
    taxonomy = _taxonomy()
    intended = {session.id: {i.turn: i.emotion for i in session.intended} for session in sessions}
    tasks = [t for t in iter_tasks(client, project_id) if t.data.get("session_id") in intended]
    made = 0
    invite = invite_link(client, s.label_studio.url)
    for k in range(1, n + 1):
        email = f"simulated-annotator-{k}@improv-annotate.local"
        account = ensure_account(
            s.label_studio.url, email, s.label_studio.password or "", invite=invite
        )
        as_user = LabelStudio(base_url=s.label_studio.url, api_key=account.token, timeout=60)
        console.print(f"SIMULATED annotator {k}: {email} (user id {account.id})")
        for task in track(tasks, description=f"  annotator {k}", console=console):
            done = {
                (a.get("completed_by") if isinstance(a, dict) else a.completed_by)
                for a in (task.annotations or [])
            }
            if account.id in done:
                continue
            rng = np.random.default_rng([seed, k, int(task.id)])
            dialogue = task.data["dialogue"]
            values, shifts = simulate_values(
                dialogue, intended[task.data["session_id"]], taxonomy, rng, noise
            )
            result = encode_annotation(dialogue, values, taxonomy, shifts)
            as_user.annotations.create(
                id=task.id, result=result, lead_time=float(rng.uniform(20, 90))
            )
            made += 1
    return made


def main() -> None:
    """Entry point of the ``improv-annotate`` command; what it writes (clips, exports, the
    stack's data) is private to the user who runs it (umask 077)."""
    os.umask(0o077)
    app()


if __name__ == "__main__":
    main()
