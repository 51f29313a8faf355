"""The data card: a README.md beside the exported files, with a JSON Schema and two plots."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotate.agreement import CONFIDENCE, N_BOOT, SEED, alpha_interval
from exporters import card_sections as sections
from exporters.card_sections import NO_LABEL, TIE, CardFacts
from exporters.rows import TOOL_VERSION, Accounting, ExportOptions
from exporters.schema import row_schema
from schemas.taxonomy import Taxonomy

SPLITS = ("train", "dev", "test")


class CardStats:
    """What the data card needs, gathered row by row in memory that does not grow with rows.

    Counts, the majority-emotion distribution per split, and per dimension the number of
    turns with each *profile* (the sorted values the turn got; ``()`` for a turn with a
    single value, which pairs with nothing). Profiles are sufficient
    statistics for Krippendorff's alpha and for its bootstrap over turns, and there are only
    as many as multisets of a few values from the taxonomy. Partial stats (of parallel
    workers) add up with :meth:`merge`.
    """

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.emotion = taxonomy.emotion.name
        self.sessions: set[str] = set()
        self.turns = 0
        self.seconds = 0.0
        self.annotators: set[str] = set()
        self.splits: Counter[str] = Counter()
        self.by_split: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.profiles: dict[str, Counter[tuple[Any, ...]]] = {
            d.name: Counter() for d in taxonomy.dimensions
        }
        self.choice = {d.name: d.kind == "choice" for d in taxonomy.dimensions}
        self.no_split = 0
        self.overlap: Counter[int] = Counter()  # turns by the number of annotators on them
        self.annotator_turns: Counter[str] = Counter()
        self.annotator_values: Counter[str] = Counter()
        self.adjudicated = 0  # turns that carry an adjudicator's decision
        self.adjudicated_clips: set[str] = set()

    def add(self, row: Mapping[str, Any]) -> None:
        """Take what the card needs from one row."""
        self.turns += 1
        split = row.get("split")
        if split:
            self.splits[split] += 1
            emotion = row["aggregates"][self.emotion]
            label = emotion["majority"]
            if label is None:
                label = NO_LABEL if not emotion["n"] else TIE
            self.by_split[split][label] += 1
        else:
            self.no_split += 1
        self.sessions.add(str(row["session_id"]))
        if row.get("adjudicated"):
            self.adjudicated += 1
            self.adjudicated_clips.add(str(row.get("clip_id")))
        self.seconds += row["end"] - row["start"]
        values: dict[str, list[Any]] = {}
        labels = row["labels"]
        self.annotators.update(labels)
        self.overlap[len(labels)] += 1
        for annotator, dims in labels.items():
            self.annotator_turns[annotator] += 1
            self.annotator_values[annotator] += len(dims)
            for dim, value in dims.items():
                values.setdefault(dim, []).append(value if self.choice[dim] else float(value))
        for dim, given in values.items():
            # a turn with one value adds nothing to the coincidences, whatever the value, but
            # counts when turns are resampled: all such turns share the empty profile, so a
            # value nobody else gave never reaches the pairable value domain
            self.profiles[dim][tuple(sorted(given)) if len(given) > 1 else ()] += 1

    def merge(self, other: CardStats) -> None:
        """Add another part's stats (same taxonomy) to these."""
        self.turns += other.turns
        self.seconds += other.seconds
        self.sessions |= other.sessions
        self.annotators |= other.annotators
        self.splits.update(other.splits)
        for split, counts in other.by_split.items():
            self.by_split[split].update(counts)
        for dim, profiles in other.profiles.items():
            self.profiles[dim].update(profiles)
        self.no_split += other.no_split
        self.overlap.update(other.overlap)
        self.annotator_turns.update(other.annotator_turns)
        self.annotator_values.update(other.annotator_values)

    def stats(self) -> dict[str, Any]:
        """Counts for the card."""
        return {
            "sessions": len(self.sessions),
            "turns": self.turns,
            "hours": self.seconds / 3600,
            "annotators": len(self.annotators),
            "adjudicated": self.adjudicated,
            "adjudicated_clips": len(self.adjudicated_clips),
        }

    def distribution(self) -> dict[str, Counter[str]]:
        """Majority emotion counts per split (turns without a majority as :data:`TIE`,
        turns without an emotion label as :data:`NO_LABEL`)."""
        return {s: Counter(c) for s, c in self.by_split.items()}

    def agreement(self, n_boot: int = N_BOOT, seed: int = SEED) -> dict[str, dict[str, Any]]:
        """Alpha per dimension with a 95% percentile bootstrap CI over the exported turns.

        Choices are coded by the taxonomy's declared order, labels of another label space
        after them in sorted order; ratings are their numbers: the codes the service uses,
        so with the project's ``n_boot`` and seed (the defaults) the card's interval equals
        the dashboard's and ``/agreement/summary``'s for the same judgements.
        """
        out = {}
        for dim in self.taxonomy.dimensions:
            profiles: Mapping[tuple[Any, ...], int] = self.profiles[dim.name]
            if dim.kind == "choice":
                seen = {v for key in profiles for v in key}
                order = [*dim.values, *sorted(seen - set(dim.values))]
                code = {v: float(i) for i, v in enumerate(order)}
                coded: Counter[tuple[Any, ...]] = Counter()
                for key, n in profiles.items():
                    coded[tuple(sorted(code[v] for v in key))] += n
                profiles = coded
            out[dim.name] = profile_alpha(profiles, dim.level, n_boot=n_boot, seed=seed)
        return out


def profile_alpha(
    profiles: Mapping[tuple[float, ...], int],
    level: str,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Krippendorff's alpha and its bootstrap CI from unit profiles, the project's one way.

    Parameters
    ----------
    profiles : mapping
        ``sorted values of a unit -> number of units`` (units with one value included:
        they count when resampling, not in the coincidences).
    level : str
        Level of measurement (see :func:`annotate.agreement.krippendorff_alpha`).
    n_boot, seed, confidence : optional
        The project's defaults (:mod:`annotate.agreement.intervals`), so the card shows the
        interval the dashboard and ``/agreement/summary`` show for the same judgements.

    Returns
    -------
    dict
        ``alpha``, ``ci_low``, ``ci_high``, and with an alpha also ``n_boot``, ``dropped``
        (resamples on which alpha is undefined), ``confidence`` and ``seed``
        (:func:`annotate.agreement.intervals.alpha_interval`); the first three ``None`` when
        alpha is undefined on the data (the interval's bounds also when it is undefined on
        more than half of the resamples).

    Examples
    --------
    >>> figures = profile_alpha({(0.0, 0.0): 3, (0.0, 1.0): 1, (1.0, 1.0): 2}, "nominal",
    ...                         n_boot=200)
    >>> round(figures["alpha"], 3), figures["ci_low"] <= figures["alpha"] <= figures["ci_high"]
    (0.686, True)
    """
    interval = alpha_interval(profiles, level, n_boot=n_boot, seed=seed, confidence=confidence)
    if interval.estimate is None:
        return {"alpha": None, "ci_low": None, "ci_high": None}
    figures = interval.as_dict("alpha")
    figures.pop("reason", None)
    return figures


def _plots(
    folder: Path,
    distribution: Mapping[str, Counter[str]],
    labels: Sequence[str],
    agreement: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(distribution))
    for k, (split, counts) in enumerate(distribution.items()):
        total = sum(counts.values()) or 1
        ax.bar(
            [i + k * width for i in range(len(labels))],
            [counts.get(label, 0) / total for label in labels],
            width,
            label=split,
        )
    ax.set_xticks([i + width * (len(distribution) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("share of turns")
    ax.set_title("Majority emotion per split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "labels.png", dpi=110)
    plt.close(fig)
    files.append("labels.png")

    names = [d for d, f in agreement.items() if f.get("alpha") is not None]
    if names:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        alphas = [agreement[d]["alpha"] for d in names]
        low = [
            a - (agreement[d]["ci_low"] if agreement[d]["ci_low"] is not None else a)
            for d, a in zip(names, alphas, strict=True)
        ]
        high = [
            (agreement[d]["ci_high"] if agreement[d]["ci_high"] is not None else a) - a
            for d, a in zip(names, alphas, strict=True)
        ]
        ax.bar(names, alphas, yerr=[low, high], capsize=4, color="#3b7dd8")
        ax.set_ylim(min(-0.2, min(alphas) - 0.1), 1)
        ax.set_ylabel("Krippendorff's alpha")
        ax.set_title("Agreement per dimension (95% bootstrap CI)")
        fig.tight_layout()
        fig.savefig(folder / "agreement.png", dpi=110)
        plt.close(fig)
        files.append("agreement.png")
    return files


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_card(
    folder: Path,
    *,
    taxonomy: Taxonomy,
    options: ExportOptions,
    accounting: Accounting,
    stats: Mapping[str, Any],
    distribution: Mapping[str, Counter[str]],
    agreement: Mapping[str, Mapping[str, Any]],
    files: Sequence[str],
    seed: int,
    unapplied: tuple[int, float] = (0, 0.0),
    about: CardFacts | None = None,
    links: Mapping[str, Any] | None = None,
    performers: Mapping[str, Any] | None = None,
) -> Path:
    """Write README.md, schema.json and the plots into ``folder``; the README's path.

    ``about``: what the sections on provenance, the annotator pool and what the tables
    leave out need (:mod:`exporters.card_sections`); without it they are not written.

    ``unapplied``: events the agreement service had acknowledged and not applied to the
    store when the export read it (how many, seconds since the oldest arrived); the card
    says the export leaves them out.

    ``links``: agreement on the turns matched shift spans are linked to as their cause
    (:func:`annotate.agreement.links.link_agreement`'s ``to_dict``).

    ``performers``: the performers' scorecard of the exported sessions
    (:func:`api.scorecards.performers`), written as its own section."""
    schema = row_schema(taxonomy, options.label_space)
    (folder / "schema.json").write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    labels = (
        list(taxonomy.emotion.values)
        if options.label_space == "ours"
        else sorted(set(taxonomy.mapping(options.label_space).values()))
    )
    plots = _plots(folder, distribution, labels, agreement)
    filters = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in asdict(options).items()
        if k not in ("salt", "media_root", "sessions_root")  # secret; machine paths
    }
    lines = [
        f"# {taxonomy.name} {taxonomy.version}: turn-level emotion-shift labels",
        "",
        f"Exported {datetime.now(UTC).isoformat(timespec='seconds')} by improv-annotate "
        f"{TOOL_VERSION}. One row per turn of improvised two-performer scenes, with every "
        "annotator's labels, aggregates that keep the disagreement (soft labels, ties, "
        "Dawid-Skene), emotion shifts under both definitions, and agreement.",
        "",
        *(sections.provenance(about, options) if about else []),
        "## Files",
        "",
        *[f"- `{f}`" for f in files],
        "- `schema.json`: the JSON Schema of a row",
        "",
        "## Counts",
        "",
        "| sessions | turns | hours of speech | annotators | judgements |",
        "|---|---|---|---|---|",
        f"| {stats['sessions']} | {stats['turns']} | {stats['hours']:.3f} | "
        f"{stats['annotators']} | {accounting.exported} |",
        "",
        f"Judgements read: {accounting.read}; exported: {accounting.exported}; skipped by "
        "the export's filters: "
        + (", ".join(f"{n} ({r})" for r, n in sorted(accounting.skipped.items())) or "none")
        + ".",
        "",
        sections.dropped(accounting),
        "",
        f"Adjudicated: {stats.get('adjudicated', 0)} turns of "
        f"{stats.get('adjudicated_clips', 0)} clips carry `adjudicated`, the decision of an "
        "adjudicator named in the project's `adjudication.adjudicators` on a clip the panel "
        "did not agree on, beside the majority and soft labels (which stay the panel's).",
        "",
        (
            f"Freshness: {unapplied[0]} events the agreement service had acknowledged were "
            f"not applied to its store yet (the oldest received {unapplied[1]:.0f} s before "
            "the export); this export leaves them out."
            if unapplied[0]
            else "Freshness: every event the agreement service had acknowledged was applied "
            "before the export read the store."
        ),
        *(
            [
                "",
                f"Turn audio (`audio/<session>/<turn>.wav`, mono 16-bit): "
                f"{accounting.audio_written} files; turns without one: "
                + (
                    ", ".join(f"{n} ({r})" for r, n in sorted(accounting.audio_skipped.items()))
                    or "none"
                )
                + ".",
            ]
            if options.turn_audio
            else []
        ),
        "",
        *(sections.pool(about) if about else []),
        "## Splits",
        "",
        f"Train / dev / test by whole sessions, never one performer or one session in two "
        f"splits (sessions that share a performer stay together), seeded ({seed}), "
        "stratified by the majority emotion as far as whole sessions allow.",
        "",
        "| split | turns | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for split, counts in distribution.items():
        lines.append(
            f"| {split} | {sum(counts.values())} | "
            + " | ".join(str(counts.get(label, 0)) for label in labels)
            + " |"
        )
    if about:
        lines += ["", *sections.split_notes(about, labels)]
    lines += [
        "",
        "![Majority emotion per split](labels.png)",
        "",
        "## Agreement",
        "",
        "Krippendorff's alpha at each dimension's level, 95% bootstrap CI over turns (the "
        "project's one bootstrap: the interval the dashboard and /agreement/summary show; "
        "resamples on which alpha is undefined are dropped and counted).",
        "",
        "| dimension | level | alpha | CI low | CI high | resamples | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for dim in taxonomy.dimensions:
        figures = agreement.get(dim.name, {})
        lines.append(
            f"| {dim.name} | {dim.level} | {_fmt(figures.get('alpha'))} | "
            f"{_fmt(figures.get('ci_low'))} | {_fmt(figures.get('ci_high'))} | "
            f"{_fmt(figures.get('n_boot'))} | {_fmt(figures.get('dropped'))} |"
        )
    if links is not None:
        lines += ["", *sections.trigger_links(links, taxonomy)]
    if about:
        lines += sections.agreement_notes(about, taxonomy)
    if "agreement.png" in plots:
        lines += ["", "![Agreement per dimension](agreement.png)"]
    if performers is not None:
        lines += ["", *sections.performers(performers)]
    lines += ["", "## Taxonomy", "", f"{taxonomy.description}", ""]
    for dim in taxonomy.dimensions:
        values = ", ".join(dim.values) if dim.kind == "choice" else f"{dim.min}..{dim.max}"
        lines.append(f"- **{dim.name}** ({dim.level}): {values}")
    lines.append(
        f"- **{taxonomy.shift.name}** spans: trigger {', '.join(taxonomy.shift.trigger)}"
        f"; onset {', '.join(taxonomy.shift.onset)}"
    )
    lines += [
        "",
        f"Label space of the emotion columns: `{options.label_space}`.",
        "",
        *(sections.shift_definitions(taxonomy) if about else []),
        "",
        "## Filters",
        "",
        "```json",
        json.dumps(filters, indent=2),
        "```",
        "",
        "## Row schema",
        "",
        "```json",
        json.dumps(schema, indent=2),
        "```",
        "",
    ]
    readme = folder / "README.md"
    readme.write_text("\n".join(lines), encoding="utf-8")
    return readme
