"""Sections of the data card that describe the data rather than measure it: where it came
from (synthetic or recorded, simulated or human annotators, licence and consent), the
annotator pool, the two shift definitions, and what each table leaves out.

Each function returns Markdown lines; :func:`exporters.card.write_card` puts them in place.
Nothing is invented: a fact the sessions and the configuration do not give is written as
"not given".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporters.plan import ExportPlan, SessionFacts
from exporters.rows import Accounting, ExportOptions
from schemas.taxonomy import Taxonomy

if TYPE_CHECKING:
    from exporters.card import CardStats

NOT_GIVEN = "not given"
TIE = "(tie)"  # a turn whose emotion labels have no single most frequent one
NO_LABEL = "(no label)"  # a turn nobody gave an emotion

# Reasons a result item gave no judgement (schemas.codec.decode_rows), in words.
DROPPED_WORDS = {
    "cancelled": "values of cancelled (skipped) annotations",
}


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the descriptive sections need: the row statistics, the export plan (per-session
    facts) and the export's warnings."""

    card: CardStats
    plan: ExportPlan
    warnings: tuple[str, ...] = ()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def provenance(facts: CardFacts, options: ExportOptions) -> list[str]:
    """Where the data came from: voices, annotators, licence and consent per session."""
    exported = {s for s in facts.card.sessions}
    sessions = {
        str(k): v for k, v in facts.plan.sessions.items() if k is not None and str(k) in exported
    }
    synthetic = sum(1 for f in sessions.values() if f.synthetic)
    recorded = sum(1 for f in sessions.values() if f.synthetic is False)
    unstated = len(sessions) - synthetic - recorded
    voices = []
    if synthetic:
        voices.append(
            f"{_plural(synthetic, 'session')} synthetic: generated voices (such as the demo's "
            "text-to-speech scenes), not recordings of people"
        )
    if recorded:
        voices.append(f"{_plural(recorded, 'session')} recorded (session.yaml `synthetic: false`)")
    if unstated:
        voices.append(
            f"{_plural(unstated, 'session')} without a `synthetic` key in session.yaml "
            f"(recorded or synthetic: {NOT_GIVEN})"
        )
    if options.simulated_annotators is True:
        annotators = (
            "simulated: every label was made by improv-annotate's annotator simulator "
            "(the demo), not by people; agreement figures describe the simulator"
        )
    elif options.simulated_annotators is False:
        annotators = "people (stated by whoever ran the export)"
    else:
        annotators = (
            f"people or simulated: {NOT_GIVEN} (the demo marks its simulated annotators; "
            "this export was not made by it)"
        )
    lines = [
        "## Where the data came from",
        "",
        f"- Voices: {'; '.join(voices) if voices else 'no session exported'}.",
        f"- Annotators: {annotators}.",
        "",
        "Licence and consent, as each session's session.yaml gives them (`licence`, "
        "`consent`), else as config.yaml's `dataset` section gives them for every session "
        f'(marked "config"); "{NOT_GIVEN}" where neither does:',
        "",
        "| sessions | synthetic | licence | consent |",
        "|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str], list[str]] = {}
    for name, f in sorted(sessions.items()):
        key = (
            NOT_GIVEN if f.synthetic is None else "yes" if f.synthetic else "no",
            _given(f.licence, options.licence),
            _given(f.consent, options.consent),
        )
        groups.setdefault(key, []).append(name)
    for (synth, licence, consent), names in groups.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        lines.append(f"| {len(names)}: {shown} | {synth} | {licence} | {consent} |")
    return [*lines, ""]


def _given(own: str | None, default: str | None) -> str:
    if own:
        return own
    if default:
        return f"{default} (config)"
    return NOT_GIVEN


def pool(facts: CardFacts) -> list[str]:
    """The annotator pool: its size, annotators per turn, and labels per annotator."""
    card = facts.card
    overlap = ", ".join(
        f"{_plural(n, 'turn')} by {k}" for k, n in sorted(card.overlap.items(), reverse=True)
    )
    lines = [
        "## Annotators",
        "",
        f"Pool: {_plural(len(card.annotators), 'annotator')} over "
        f"{_plural(card.turns, 'turn')}. Turns by the number of annotators who labeled them: "
        f"{overlap or 'none'}.",
        "",
        "Annotators are shown by the export's names (salted pseudonyms unless real ids were "
        "asked for); values = labels given, one per turn and dimension.",
        "",
        "| annotator | turns | values |",
        "|---|---|---|",
    ]
    for name, turns in sorted(card.annotator_turns.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {name} | {turns} | {card.annotator_values[name]} |")
    return [*lines, ""]


def shift_definitions(taxonomy: Taxonomy) -> list[str]:
    """Both shift definitions of the literature, and the marked shift spans, in words."""
    return [
        "## Emotion shifts: two definitions",
        "",
        "Each row carries both definitions, computed from the turns' majority emotions:",
        "",
        "- **Same speaker** (`shift.shift_speaker`, as in MELD): a turn shifts when the "
        "same performer's previous turn in the clip has another majority emotion; "
        "`shift.from` and `shift.to` name the two, `shift.types` the derived types "
        "(valence flip, arousal escalation or de-escalation, neutral onset or offset).",
        "- **Adjacent turn** (`shift.shift_adjacent`, as in EmoryNLP): a turn shifts when "
        "the turn right before it, whoever spoke it, has another majority emotion.",
        "",
        "A turn without a majority emotion (a tie, or no label), or whose previous turn has "
        "none, is never a shift under either definition. Separately, annotators mark "
        f"`{taxonomy.shift.name}` spans on the audio (from, to, trigger, onset); "
        "`shift.marked` lists the spans whose midpoint falls on the turn, with how many "
        "annotators marked each and the turn they linked as its cause (`trigger_turn`); "
        "`shift.triggered` counts the annotators who linked a span of the clip to the turn.",
        "",
    ]


def trigger_links(links: Mapping[str, Any], taxonomy: Taxonomy) -> list[str]:
    """One paragraph: agreement on the turns matched shift spans are linked to."""
    n = int(links.get("n") or 0)
    if not n:
        agreed = "no matched pair of spans had both links set"
    else:
        kappa = links.get("kappa")
        agreed = (
            f"{links.get('same_turn')} of {n} matched pairs with both links set name the "
            f"same turn ({float(links['share']):.3f}; Cohen's kappa over the turns "
            f"{'n/a' if kappa is None else f'{float(kappa):.3f}'})"
        )
    return [
        f"Trigger links (a `{taxonomy.shift.name}` span linked to the turn that caused it, "
        "over the project's spans matched between annotators within the shift tolerance): "
        f"{agreed}; {int(links.get('one_linked') or 0)} matched pairs have one link only, "
        f"{int(links.get('none_linked') or 0)} none.",
    ]


def dropped(accounting: Accounting) -> str:
    """One sentence: the result items that gave no judgement, by reason."""
    items = sorted(accounting.dropped.items())
    total = sum(n for _, n in items)
    if not total:
        return "Result items dropped on the way in (gave no judgement): none."
    said = ", ".join(f"{n} ({DROPPED_WORDS.get(r, r)})" for r, n in items)
    return f"Result items dropped on the way in (gave no judgement): {total}: {said}."


def split_notes(facts: CardFacts, labels: list[str]) -> list[str]:
    """What the split table leaves out, and the warnings of the split, in words."""
    card = facts.card
    lines = []
    for warning in facts.warnings:
        lines += [f"**Warning**: {warning}.", ""]
    other: Counter[str] = Counter()
    for counts in card.distribution().values():
        for label, n in counts.items():
            if label not in labels:
                other[label] += n
    out = []
    if card.no_split:
        out.append(f"{_plural(card.no_split, 'turn')} in no split (their session has no id)")
    for label, n in sorted(other.items()):
        out.append(f"{_plural(n, 'turn')} {_why(label)}")
    said = "; ".join(out) if out else "none"
    lines.append(f"Turns left out of the label columns above, by reason: {said}.")
    return lines


def _why(label: str) -> str:
    if label == TIE:
        return "without a majority emotion (a tie), counted in the split's turns"
    if label == NO_LABEL:
        return "without an emotion label, counted in the split's turns"
    return f"with the majority emotion {label!r}, outside this label space's columns"


def agreement_notes(facts: CardFacts, taxonomy: Taxonomy) -> list[str]:
    """Per dimension: the turns the alpha uses (two or more values), and those it leaves
    out (one value, or none), counted."""
    card = facts.card
    lines = [
        "",
        "Alpha uses the turns with two or more values of a dimension; the others are left "
        "out, counted here:",
        "",
        "| dimension | turns used | one value | no value |",
        "|---|---|---|---|",
    ]
    for dim in taxonomy.dimensions:
        profiles: Mapping[tuple[Any, ...], int] = card.profiles[dim.name]
        single = profiles.get((), 0)
        used = sum(profiles.values()) - single
        lines.append(f"| {dim.name} | {used} | {single} | {card.turns - used - single} |")
    return lines


def _cell(value: Any) -> str:
    """Text from a task (performer ids, labels) as one Markdown table cell: no line
    breaks, pipes escaped, no HTML a renderer would run."""
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def performers(card: Mapping[str, Any]) -> list[str]:
    """The performers' section: recognition of the intended emotions (with the 95%
    interval over turns), what annotators perceived instead, authenticity, and the
    intended shifts they marked (:mod:`annotate.performers` defines each figure)."""
    lines = [
        "## Performers",
        "",
        "How the scenes' intended emotions came across, per performer (the intended "
        "emotions were never shown to annotators). Recognised: the share of emotion "
        "judgements naming the intended emotion (95% interval: turns resampled "
        f"{card.get('n_boot')} times, seed {card.get('seed')}). Intended shifts: a turn whose "
        "intended emotion differs from the same performer's previous one; marked when an "
        "annotator who labeled the clip put a shift span's midpoint on the turn (within "
        f"{float(card.get('tolerance') or 0):g} s).",
        "",
    ]
    rows = card.get("performers") or []
    if not rows or card.get("reason"):
        return [*lines, f"Not computed: {card.get('reason') or 'no performer turns'}."]
    lines += [
        "| performer | intended | turns | judgements | recognised | CI low | CI high "
        "| authenticity (mean, n) | perceived |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in rows:
        for entry in p["by_intended"]:
            seen = ", ".join(f"{_cell(k)} {v}" for k, v in entry["perceived"].items())
            rated = entry["authenticity"]
            lines.append(
                f"| {_cell(p['performer'])} | {_cell(entry['intended'])} | {entry['turns']} "
                f"| {entry['judgements']} | {_num(entry['rate'])} | {_num(entry['ci_low'])} "
                f"| {_num(entry['ci_high'])} | {_num(rated['mean'], 2)}, {rated['n']} "
                f"| {seen or '-'} |"
            )
    lines += [
        "",
        "| performer | intended shifts | marked / annotator views | rate | marked by anyone |",
        "|---|---|---|---|---|",
    ]
    for p in rows:
        sh = p["shifts"]
        lines.append(
            f"| {_cell(p['performer'])} | {sh['intended']} | {sh['marked']} / {sh['views']} "
            f"| {_num(sh.get('rate'))} | {sh['marked_by_anyone']} |"
        )
    return lines


__all__ = [
    "CardFacts",
    "SessionFacts",
    "agreement_notes",
    "dropped",
    "performers",
    "pool",
    "provenance",
    "shift_definitions",
    "split_notes",
    "trigger_links",
]
