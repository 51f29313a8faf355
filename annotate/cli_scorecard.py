"""The ``scorecard`` commands: figures about people, read from the agreement service.

``improv-annotate scorecard performers [--json|--csv]`` prints, per performer and intended
emotion, how often annotators perceive it (recognition rate with its 95% interval), what
they perceive instead, the authenticity ratings, and how many intended shifts they marked
(:mod:`annotate.performers` defines each figure).
"""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from annotate.cli_common import ProjectOpt, _friendly, _project_id, console, state

__all__ = ["performer_rows", "performers", "register", "scorecard_app"]

scorecard_app = typer.Typer(
    help="Scorecards: how performers come across to annotators.", no_args_is_help=True
)
CSV_FIELDS = (
    "performer",
    "intended",
    "turns",
    "judgements",
    "hits",
    "rate",
    "ci_low",
    "ci_high",
    "authenticity_mean",
    "authenticity_median",
    "authenticity_n",
    "perceived",
)


def register(app: typer.Typer) -> None:
    """Add the ``scorecard`` command group to ``app``."""
    app.add_typer(scorecard_app, name="scorecard")


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def performer_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per performer and intended emotion (``intended`` empty: all their
    turns with an intended emotion), as the CSV writes them."""
    rows = []
    for p in card["performers"]:
        for entry in [
            {
                "intended": "",
                **p["recognition"],
                "authenticity": p["authenticity"],
                "perceived": p["perceived"],
            },
            *p["by_intended"],
        ]:
            rated = entry["authenticity"]
            rows.append(
                {
                    "performer": p["performer"],
                    "intended": entry["intended"],
                    "turns": entry["turns"],
                    "judgements": entry["judgements"],
                    "hits": entry["hits"],
                    "rate": entry["rate"],
                    "ci_low": entry["ci_low"],
                    "ci_high": entry["ci_high"],
                    "authenticity_mean": rated["mean"],
                    "authenticity_median": rated["median"],
                    "authenticity_n": rated["n"],
                    "perceived": ";".join(f"{k}={v}" for k, v in entry["perceived"].items()),
                }
            )
    return rows


@scorecard_app.command("performers")
@_friendly
def performers(
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the service's JSON")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="print CSV, a row per performer and intended emotion")
    ] = False,
) -> None:
    """Per performer and intended emotion: recognition rate (95% CI over turns), what
    annotators perceived, authenticity, and the intended shifts annotators marked."""
    from annotate.service import ServiceClient

    s = state.settings
    service = ServiceClient(s.service.url, s.service.api_key)
    card = service.get(f"/projects/{_project_id(project)}/scorecards/performers")
    if as_json:
        console.print_json(data=card)
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(performer_rows(card))
        return
    if card.get("reason"):
        console.print(f"[yellow]{escape(card['reason'])}[/yellow]")
    table = Table(
        "performer",
        "intended",
        "turns",
        "judgements",
        "recognised",
        "95% CI",
        "authenticity",
        "perceived",
    )
    for row in performer_rows(card):
        table.add_row(
            escape(row["performer"]),
            escape(row["intended"] or "(all)"),
            str(row["turns"]),
            str(row["judgements"]),
            _fmt(row["rate"]),
            f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]",
            f"{_fmt(row['authenticity_mean'], '{:.2f}')} (n={row['authenticity_n']})",
            escape(row["perceived"]),
        )
    console.print(table)
    shifts = Table("performer", "intended shifts", "marked / views", "rate", "marked by anyone")
    for p in card["performers"]:
        sh = p["shifts"]
        shifts.add_row(
            escape(p["performer"]),
            str(sh["intended"]),
            f"{sh['marked']} / {sh['views']}",
            _fmt(sh.get("rate")),
            str(sh["marked_by_anyone"]),
        )
    console.print(shifts)
