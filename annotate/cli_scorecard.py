"""The ``scorecard`` commands: figures about people, read from the agreement service.

``improv-annotate scorecard annotators [--json|--csv]`` prints, per annotator, agreement
with the rest and against gold (alpha with its 95% interval and the units compared), drift,
label bias, speed and shift timing lag (:mod:`annotate.annotator_scores`).

``improv-annotate scorecard performers [--json|--csv]`` prints, per performer and intended
emotion, how often annotators perceive it (recognition rate with its 95% interval), what
they perceive instead, the authenticity ratings, and how many intended shifts they marked
(:mod:`annotate.performers` defines each figure).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from annotate.cli_common import ProjectOpt, _friendly, _project_id, console, state

__all__ = [
    "annotator_rows",
    "annotators",
    "performer_rows",
    "performers",
    "register",
    "scorecard_app",
]

scorecard_app = typer.Typer(
    help="Scorecards: how annotators work and how performers come across.", no_args_is_help=True
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


def _fetch(path: str, **params: Any) -> dict[str, Any]:
    """A scorecard from the configured service."""
    from annotate.service import ServiceClient

    s = state.settings
    return ServiceClient(s.service.url, s.service.api_key).get(path, **params)


def _printed(
    card: dict[str, Any],
    as_json: bool,
    as_csv: bool,
    fields: tuple[str, ...],
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> bool:
    """Print ``card`` as JSON or as CSV rows when asked; whether it did."""
    if as_json:
        console.print_json(data=card)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows(card))
    return as_json or as_csv


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
    card = _fetch(f"/projects/{_project_id(project)}/scorecards/performers")
    if _printed(card, as_json, as_csv, CSV_FIELDS, performer_rows):
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


ANNOTATOR_FIELDS = (
    "annotator",
    "name",
    "judgements",
    "alpha_with_rest",
    "ci_low",
    "ci_high",
    "units_with_rest",
    "agreement_with_rest",
    "alpha_vs_gold",
    "accuracy_vs_gold",
    "units_vs_gold",
    "alpha_self",
    "agreement_self",
    "units_self",
    "drift_change",
    "label_tvd",
    "over_used",
    "median_seconds_per_task",
    "median_seconds_per_turn",
    "median_shift_lag_s",
    "shift_spans_matched",
)


def annotator_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per annotator, as the CSV writes them."""
    rows = []
    for a in card["annotators"]:
        rest, gold = a["with_rest"], a["vs_gold"]
        rows.append(
            {
                "annotator": a["annotator"],
                "name": a["name"],
                "judgements": a["judgements"],
                "alpha_with_rest": rest.get("alpha"),
                "ci_low": rest.get("ci_low"),
                "ci_high": rest.get("ci_high"),
                "units_with_rest": rest["units"],
                "agreement_with_rest": rest.get("agreement"),
                "alpha_vs_gold": gold.get("alpha"),
                "accuracy_vs_gold": gold.get("agreement"),
                "units_vs_gold": gold["units"],
                "alpha_self": a["self"].get("alpha"),
                "agreement_self": a["self"].get("agreement"),
                "units_self": a["self"]["units"],
                "drift_change": a["drift"].get("change"),
                "label_tvd": a["bias"].get("tvd"),
                "over_used": a["bias"].get("over_used"),
                "median_seconds_per_task": a["speed"]["median_seconds_per_task"],
                "median_seconds_per_turn": a["speed"]["median_seconds_per_turn"],
                "median_shift_lag_s": a["shift_lag"]["median_lag_s"],
                "shift_spans_matched": a["shift_lag"]["matched"],
            }
        )
    return rows


@scorecard_app.command("annotators")
@_friendly
def annotators(
    project: ProjectOpt = None,
    dimension: Annotated[str, typer.Option(help="taxonomy dimension")] = "emotion",
    as_json: Annotated[bool, typer.Option("--json", help="print the service's JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV, a row per annotator")] = False,
) -> None:
    """Per annotator: agreement with the rest and against gold (95% CI, units compared),
    drift, label bias, speed and shift timing lag."""
    card = _fetch(f"/projects/{_project_id(project)}/scorecards/annotators", dimension=dimension)
    if _printed(card, as_json, as_csv, ANNOTATOR_FIELDS, annotator_rows):
        return
    table = Table(
        "annotator",
        "with the rest (95% CI, units)",
        "vs gold (accuracy, units)",
        "with themselves (equal, units)",
        "drift",
        "bias (over-used)",
        "s / turn",
        "shift lag s (n)",
    )
    for row in annotator_rows(card):
        table.add_row(
            escape(str(row["name"])),
            f"{_fmt(row['alpha_with_rest'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
            f" ({row['units_with_rest']})",
            f"{_fmt(row['alpha_vs_gold'])} ({_fmt(row['accuracy_vs_gold'])}, "
            f"{row['units_vs_gold']})",
            f"{_fmt(row['alpha_self'])} ({_fmt(row['agreement_self'])}, {row['units_self']})",
            _fmt(row["drift_change"], "{:+.3f}"),
            f"{_fmt(row['label_tvd'])} ({escape(str(row['over_used'] or '-'))})",
            _fmt(row["median_seconds_per_turn"], "{:.1f}"),
            f"{_fmt(row['median_shift_lag_s'], '{:+.2f}')} ({row['shift_spans_matched']})",
        )
    console.print(f"[bold]{escape(card['dimension'])}[/bold] ({card['level']})")
    console.print(table)
