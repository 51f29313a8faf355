"""The ``overlap`` commands: the adaptive overlap policy applied to judgements offline.

``overlap plan FILE.csv`` reads a long-format CSV (``unit,annotator,value``, one row per
judgement, row order = arrival order), applies the policy of ``config.yaml``'s ``overlap``
section (each key overridable by a flag) and prints the units that need one more
annotator; ``--json`` prints ``{"need_more": [...], "settled": <int>, "policy": {...}}``
and nothing else on standard output.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from annotate.cli_common import _friendly, console, err, state
from schemas.errors import AnnotateError

__all__ = ["VoteCsv", "plan", "read_votes_csv", "register"]

COLUMNS = ("unit", "annotator", "value")

overlap_app = typer.Typer(
    help="Adaptive overlap: which units need one more annotator.", no_args_is_help=True
)


class VoteCsvError(AnnotateError, ValueError):
    """A votes CSV has bad rows; the message lists every one (file, line, field)."""


@dataclass(slots=True)
class VoteCsv:
    """Votes read from a CSV in row order, with what was not a vote.

    ``votes`` are ``(unit, annotator, value)``; an empty value is kept as ``None`` (no vote:
    it withdraws that annotator's earlier vote on the unit) and counted in ``empty``;
    ``problems`` are the bad rows, one message each.
    """

    votes: list[tuple[str, str, str | None]] = field(default_factory=list)
    empty: int = 0
    problems: list[str] = field(default_factory=list)


def read_votes_csv(path: str | Path) -> VoteCsv:
    """Read ``unit,annotator,value`` rows (header required, any column order, extra columns
    ignored); every bad row is listed in ``problems``, the good rows are all kept.

    Raises :class:`VoteCsvError` only when the file cannot be read at all (unreadable, not
    UTF-8, no header with the three columns).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise VoteCsvError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise VoteCsvError(f"{path}: not valid UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise VoteCsvError(f"{path}:1: not CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise VoteCsvError(
            f"{path}:1: header lacks columns {missing}; expected {', '.join(COLUMNS)} "
            f"(found {header})"
        )
    index = [header.index(c) for c in COLUMNS]
    out = VoteCsv()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.problems.append(f"{path}:{reader.line_num}: not CSV ({exc})")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(index):
            absent = [c for c, i in zip(COLUMNS, index, strict=True) if i >= len(row)]
            out.problems.append(
                f"{path}:{line}: {len(row)} fields, no {', '.join(absent)}; "
                f"expected {len(header)} ({', '.join(header)})"
            )
            continue
        unit, annotator, value = (row[i].strip() for i in index)
        empty = [name for name, cell in (("unit", unit), ("annotator", annotator)) if not cell]
        if empty:
            out.problems.append(
                f"{path}:{line}: field {' and '.join(empty)} is empty; expected a name"
            )
            continue
        if not value:
            out.empty += 1
        out.votes.append((unit, annotator, value or None))
    if not out.votes and not out.problems:
        raise VoteCsvError(f"{path}: no judgements; expected rows of {', '.join(COLUMNS)}")
    return out


def register(app: typer.Typer) -> None:
    """Add the ``overlap`` command group to ``app``."""
    app.add_typer(overlap_app, name="overlap")


@overlap_app.command("plan")
@_friendly
def plan(
    file: Annotated[Path, typer.Argument(help="long-format CSV: unit,annotator,value")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='print {"need_more": [...], "settled": N, "policy": {...}} only',
        ),
    ] = False,
    rule: Annotated[
        str | None, typer.Option(help="lead or posterior (default: overlap.rule)")
    ] = None,
    lead: Annotated[
        int | None,
        typer.Option(help="votes the leading label must lead by (default: overlap.lead)"),
    ] = None,
    posterior: Annotated[
        float | None,
        typer.Option(help="posterior the leading label must reach (default: overlap.posterior)"),
    ] = None,
    min_annotators: Annotated[
        int | None,
        typer.Option("--min", help="fewest annotators per unit (default: overlap.min_annotators)"),
    ] = None,
    max_annotators: Annotated[
        int | None,
        typer.Option("--max", help="most annotators per unit (default: overlap.max_annotators)"),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(help="plan from the good rows when some are bad (listed on stderr)"),
    ] = False,
) -> None:
    """Print the units of a CSV that need one more annotator under the overlap policy.

    Row order is arrival order; an annotator counts once per unit (a later row replaces
    the earlier; an empty value withdraws it). Bad rows are all listed with their line and
    field; the command then fails unless --skip-bad is given.
    """
    from dataclasses import replace

    from annotate.config import load_settings
    from annotate.overlap import decide

    policy = load_settings(state.config).overlap.policy()
    given = {
        "rule": rule,
        "lead": lead,
        "posterior": posterior,
        "min_annotators": min_annotators,
        "max_annotators": max_annotators,
    }
    policy = replace(policy, **{k: v for k, v in given.items() if v is not None})
    data = read_votes_csv(file)
    from rich.markup import escape

    tag = "[yellow]skipped:[/yellow]" if skip_bad else "[red]error:[/red]"
    for problem in data.problems:
        err.print(f"{tag} {escape(problem)}")
    if data.problems and not skip_bad:
        err.print(
            f"{len(data.problems)} bad rows, {len(data.votes)} good; fix them or pass "
            "--skip-bad to plan from the good rows"
        )
        raise typer.Exit(1)
    if data.empty:
        err.print(f"{data.empty} rows with an empty value (no vote)")
    decisions = decide(policy, data.votes)
    need = [d for d in decisions.values() if d.need_more]
    settled = len(decisions) - len(need)
    if as_json:
        out = {"need_more": [d.unit for d in need], "settled": settled, "policy": policy.to_dict()}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    _print_plan(file, policy, decisions, need, settled)


def _print_plan(file: Path, policy: Any, decisions: dict, need: list, settled: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    exhausted = sum(1 for d in decisions.values() if d.reason == "exhausted")
    rule = (
        f"lead >= {policy.lead}" if policy.rule == "lead" else f"posterior >= {policy.posterior:g}"
    )
    console.print(
        f"[bold]{escape(str(file))}[/bold]: {len(decisions)} units, policy {rule}, "
        f"{policy.min_annotators}-{policy.max_annotators} annotators"
    )
    if need:
        table = Table("unit", "annotators", "leader", "margin", "posterior", "why")
        for d in need:
            table.add_row(
                escape(str(d.unit)),
                str(d.annotators),
                escape(d.leader or "-"),
                str(d.margin),
                "-" if d.posterior is None else f"{d.posterior:.3f}",
                "fewer than min" if d.reason == "too_few" else "unsettled",
            )
        console.print(table)
    console.print(
        f"{len(need)} need one more annotator; {settled} settled "
        f"({settled - exhausted} agreed, {exhausted} exhausted at {policy.max_annotators}: "
        "candidates for adjudication)"
    )
