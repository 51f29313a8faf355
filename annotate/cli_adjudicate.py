"""The ``adjudicate`` command: send the clips the panel could not agree on to an adjudicator.

``improv-annotate adjudicate`` asks the agreement service to send its current adjudication
queue (clips below ``adjudication.thresholds``, and clips the adaptive overlap policy
settled with the panel full and still split) to the adjudication project in Label Studio
(:mod:`annotate.adjudicate`); ``--dry-run`` only lists them; ``--status`` lists the clips
sent and what the adjudicators decided (an adjudicator named by e-mail who signed up since
the service last read Label Studio's users is looked up first); ``--release CLIP`` lets a
clip held after too many re-sends go once more (``--release-all``: every held clip).
``--json`` prints the service's answer.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from annotate.cli_common import ProjectOpt, _friendly, _project_id, console, state

__all__ = ["adjudicate", "register"]


def register(app: typer.Typer) -> None:
    """Add the ``adjudicate`` command to ``app``."""
    app.command()(adjudicate)


def _service() -> Any:
    from annotate.service import ServiceClient

    s = state.settings
    return ServiceClient(s.service.url, s.service.api_key)


def _alphas(alphas: dict[str, Any]) -> str:
    return ", ".join(
        f"{escape(str(d))} {'n/a' if a is None else f'{a:.3f}'}" for d, a in alphas.items()
    )


@_friendly
def adjudicate(
    project: ProjectOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the clips that would go; send nothing")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="the clips sent and what was decided")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
    release: Annotated[
        str | None,
        typer.Option(
            "--release",
            metavar="CLIP",
            help="let a clip held after too many re-sends go to adjudication once more",
        ),
    ] = None,
    release_all: Annotated[
        bool,
        typer.Option("--release-all", help="let every held clip go to adjudication once more"),
    ] = False,
) -> None:
    """Send the clips below the adjudication thresholds to the adjudication project."""
    project_id = _project_id(project)
    service = _service()
    if release is not None or release_all:
        where = f"/projects/{project_id}/adjudication/release"
        got = (
            service.post(where, clip=release)
            if release is not None
            else service.post(where, all="true")
        )
        let_go = ", ".join(escape(str(c)) for c in got["released"])
        console.print(
            f"released: {let_go}; the next send sends them again" if let_go else "no clip was held"
        )
        return
    if status:
        got = service.get(f"/projects/{project_id}/adjudicated")
        if any(a["user"] is None for a in got["adjudicators"]):
            # an adjudicator who signed up since the service last read Label Studio's users:
            # a pull reads them (and whatever webhooks missed), then the answer is complete
            service.post(f"/projects/{project_id}/reconcile")
            got = service.get(f"/projects/{project_id}/adjudicated")
        if as_json:
            console.print_json(data=got)
            return
        table = Table("clip", "adjudication task", "decided", "turns decided", "why")
        for c in got["data"]:
            table.add_row(
                escape(str(c["clip"])),
                str(c["adjudication_task"]),
                "yes" if c["decided"] else "waiting",
                str(len(c["turns"])),
                escape("; ".join(c["why"])),
            )
        console.print(table)
        ignored = ", ".join(f"{n} {escape(r)}" for r, n in got["ignored"].items())
        console.print(
            f"{got['sent']} clips sent, {got['decided']} decided, {got['waiting']} waiting; "
            f"ignored: {ignored or 'nothing'}"
        )
        if got.get("held"):
            console.print(
                f"[red]held after too many re-sends: {escape(', '.join(got['held']))}; "
                "'improv-annotate adjudicate --release CLIP' sends one once more, "
                "--release-all every one[/red]"
            )
        ambiguous = [a["configured"] for a in got["adjudicators"] if a.get("ambiguous")]
        unknown = [
            a["configured"]
            for a in got["adjudicators"]
            if a["user"] is None and not a.get("ambiguous")
        ]
        if ambiguous:
            console.print(
                f"[red]adjudicator e-mails held by more than one Label Studio account, so "
                f"no decision of theirs counts (name them by user id): "
                f"{escape(', '.join(ambiguous))}[/red]"
            )
        if not got["adjudicators"]:
            console.print(
                "[yellow]no adjudication.adjudicators in config.yaml: no decision counts[/yellow]"
            )
        elif unknown:
            console.print(
                f"[yellow]adjudicators with no Label Studio account yet: "
                f"{escape(', '.join(unknown))}[/yellow]"
            )
        return
    got = service.post(f"/projects/{project_id}/adjudication/send", dry_run=str(dry_run).lower())
    if as_json:
        console.print_json(data=got)
        return
    table = Table("clip", "alpha", "annotators", "disagreeing turns", "why")
    for c in got["due"]:
        table.add_row(
            escape(str(c["clip"])),
            _alphas(c["alphas"]),
            str(c["annotators"]),
            str(len(c["disagreeing_turns"])),
            escape("; ".join(c["why"])),
        )
    if got["due"]:
        console.print(table)
    verb = "would send" if dry_run else "sent"
    count = len(got["due"]) if dry_run else len(got["sent"])
    console.print(
        f"{got['queued']} clips below the thresholds, {got['already_sent']} sent before; "
        f"{verb} {count}"
        + (
            f" to adjudication project {got['adjudication_project']}"
            if got.get("adjudication_project")
            else ""
        )
    )
    if got.get("tampered"):
        console.print(
            "[red]changed in the adjudication project since it was made: "
            f"{escape('; '.join(got['tampered']))}; put back, and the tasks it may have "
            "misled are sent again[/red]"
        )
    if got.get("resent"):
        console.print(
            f"[yellow]{len(got['resent'])} clips sent again: their adjudication task was "
            "deleted in Label Studio, or changed there after it was sent "
            f"({escape(', '.join(got['resent']))})[/yellow]"
        )
    if got.get("held"):
        console.print(
            f"[red]{len(got['held'])} clips held: their adjudication task was deleted or "
            "changed in Label Studio after each of "
            f"{state.settings.adjudication.max_resends} re-sends "
            f"({escape(', '.join(h['clip'] for h in got['held']))}); find out who, then "
            "'improv-annotate adjudicate --release CLIP' (or --release-all)[/red]"
        )
    if got.get("refused"):
        console.print(
            f"[red]{len(got['refused'])} clips not linked: their task in the adjudication "
            "project already had annotations before it was linked (a send cut off after "
            "pushing, or a task made in advance); look at them, then delete the task in "
            "Label Studio to send the clip again[/red]"
        )
