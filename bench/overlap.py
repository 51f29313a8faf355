"""Adaptive overlap against fixed overlaps on public crowd labels with a large panel.

What it measures
----------------
Data: the Blue Birds crowd labels (Welinder et al., NIPS 2010; vendored in
``bench/data``, see ``bench/data/PROVENANCE.md``): 108 images, every one labelled by the
same 39 annotators ("is there an Indigo Bunting?", yes/no), with an expert's answer. The
full panel's label is the majority of the 39 votes (39 is odd: no ties).

Arrival is simulated: for each seed, each image's 39 votes arrive in a random order.

- fixed k (2, 3 and 5, plus 13 and 26: a third and two thirds of the panel): the first k
  votes, majority, ties broken by a seeded draw;
- adaptive (each policy of the grid): every image first gets ``min_annotators`` votes;
  then, in rounds, the policy is applied (:func:`annotate.overlap.decide`) to every vote
  so far (rule "posterior": the reliability re-estimated from every vote so far, as the
  service would) and each image that needs one more annotator gets its next vote, until
  none does. The adaptive label is the policy's leader (ties broken by a seeded draw).

Per method: mean votes per image, the share of images whose label equals the full panel's
(and the expert's answer), and votes as a share of the full panel's (39). The goal of the
adaptive overlap: the full panel's label at least 95% of the time with at most two thirds
of its votes. Figures are means over ``--seeds`` seeds; one run computes every row.

Usage::

    .venv/bin/python bench/overlap.py                  # 10 seeds, the whole grid, a plot
    .venv/bin/python bench/overlap.py --seeds 3 --no-plot
    .venv/bin/python bench/overlap.py --json           # the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotate.overlap import OverlapPolicy, decide, estimate_reliability  # noqa: E402

DATA = ROOT / "bench" / "data"
FIXED = (2, 3, 5, 13, 26)
# the adaptive policies compared (label, policy); the first is the shipped default. The
# policies tried while tuning and not kept are listed in BENCHMARKS.md.
GRID: tuple[tuple[str, OverlapPolicy], ...] = (
    ("default: lead 2, 2-5", OverlapPolicy()),
    ("lead 2, 2-9", OverlapPolicy(max_annotators=9)),
    ("lead 3, 2-9", OverlapPolicy(max_annotators=9, lead=3)),
    ("lead 6, 2-26", OverlapPolicy(max_annotators=26, lead=6)),
    ("lead 4, 2-39", OverlapPolicy(max_annotators=39, lead=4)),
    ("lead 5, 2-39", OverlapPolicy(max_annotators=39, lead=5)),
    ("lead 6, 2-39", OverlapPolicy(max_annotators=39, lead=6)),
    ("posterior 0.9, 2-5", OverlapPolicy(rule="posterior", posterior=0.9)),
    ("posterior 0.99, 2-26", OverlapPolicy(rule="posterior", posterior=0.99, max_annotators=26)),
    (
        "posterior 0.999 (prior 10), 2-39",
        OverlapPolicy(rule="posterior", posterior=0.999, max_annotators=39, prior_strength=10.0),
    ),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One method's figures, means over the seeds."""

    method: str
    votes: float
    agreement: float
    agreement_sd: float
    expert: float
    vote_share: float
    seconds: float

    @property
    def meets_goal(self) -> bool:
        """At least 95% agreement with at most two thirds of the panel's votes."""
        return self.agreement >= 0.95 and self.vote_share <= 2 / 3


def load() -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """item -> {annotator: "yes"/"no"} and item -> the expert's answer."""
    raw = yaml.safe_load((DATA / "bluebirds_labels.yaml").read_text(encoding="utf-8"))
    gold = yaml.safe_load((DATA / "bluebirds_gt.yaml").read_text(encoding="utf-8"))
    items: dict[str, dict[str, str]] = {}
    for annotator, answers in raw.items():
        for item, value in answers.items():
            items.setdefault(str(item), {})[str(annotator)] = "yes" if value else "no"
    return items, {str(k): "yes" if v else "no" for k, v in gold.items()}


def majority(values: Iterable[str], rng: np.random.Generator) -> str:
    """The most frequent value; a tie is broken by a seeded draw."""
    counts = Counter(values)
    top = max(counts.values())
    tied = sorted(v for v, c in counts.items() if c == top)
    return tied[0] if len(tied) == 1 else str(rng.choice(tied))


def arrivals(items: dict[str, dict[str, str]], rng: np.random.Generator) -> dict[str, list]:
    """Each item's votes as (annotator, value) in a random arrival order."""
    out = {}
    for item in sorted(items):
        votes = sorted(items[item].items())
        out[item] = [votes[i] for i in rng.permutation(len(votes))]
    return out


def run_adaptive(
    policy: OverlapPolicy, order: dict[str, list], rng: np.random.Generator
) -> dict[str, tuple[int, str]]:
    """Simulate the policy: item -> (votes drawn, label)."""
    drawn = {item: min(policy.min_annotators, len(v)) for item, v in order.items()}
    while True:
        rows = [(item, a, v) for item, n in drawn.items() for a, v in order[item][:n]]
        rel = (
            estimate_reliability(rows, policy.prior_strength)
            if policy.rule == "posterior"
            else None
        )
        decisions = decide(policy, rows, reliability=rel)
        more = [i for i, d in decisions.items() if d.need_more and drawn[i] < len(order[i])]
        if not more:
            break
        for item in more:
            drawn[item] += 1
    out = {}
    for item, d in decisions.items():
        label = d.leader or ""
        if d.margin == 0 and policy.rule == "lead":
            label = majority([v for _, v in order[item][: drawn[item]]], rng)
        out[item] = (drawn[item], label)
    return out


def bench(seeds: int, grid: tuple[tuple[str, OverlapPolicy], ...]) -> list[Row]:
    """Every fixed overlap and every policy of ``grid`` on the same arrivals."""
    items, gold = load()
    panel = {item: majority(v.values(), np.random.default_rng(0)) for item, v in items.items()}
    size = max(len(v) for v in items.values())
    results: dict[str, list[tuple[float, float, float]]] = {}
    seconds: dict[str, float] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = arrivals(items, rng)
        methods: list[tuple[str, dict[str, tuple[int, str]]]] = []
        for k in FIXED:
            start = time.perf_counter()
            got = {i: (k, majority([v for _, v in o[:k]], rng)) for i, o in order.items()}
            methods.append((f"fixed {k}", got))
            seconds[f"fixed {k}"] = seconds.get(f"fixed {k}", 0) + time.perf_counter() - start
        for name, policy in grid:
            start = time.perf_counter()
            methods.append((name, run_adaptive(policy, order, rng)))
            seconds[name] = seconds.get(name, 0) + time.perf_counter() - start
        for name, got in methods:
            votes = float(np.mean([n for n, _ in got.values()]))
            agree = float(np.mean([label == panel[i] for i, (_, label) in got.items()]))
            expert = float(np.mean([label == gold[i] for i, (_, label) in got.items()]))
            results.setdefault(name, []).append((votes, agree, expert))
    panel_expert = float(np.mean([panel[i] == gold[i] for i in items]))
    rows = [Row("full panel (39)", float(size), 1.0, 0.0, panel_expert, 1.0, 0.0)]
    for name, runs in results.items():
        arr = np.array(runs)
        rows.append(
            Row(
                name,
                float(arr[:, 0].mean()),
                float(arr[:, 1].mean()),
                float(arr[:, 1].std()),
                float(arr[:, 2].mean()),
                float(arr[:, 0].mean() / size),
                seconds[name] / seeds,
            )
        )
    return rows


def table(rows: list[Row], seeds: int) -> str:
    """The rows as a Markdown table."""
    lines = [
        f"Blue Birds, 108 images x 39 annotators, {seeds} seeds of arrival order",
        "",
        "| method | votes/item | = panel's label | sd | = expert's | votes / panel's | goal |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.votes:.2f} | {r.agreement:.1%} | {r.agreement_sd:.1%} | "
            f"{r.expert:.1%} | {r.vote_share:.1%} | {'yes' if r.meets_goal else ''} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> bool:
    """Votes per item against agreement with the panel; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in rows[1:]:
        fixed = r.method.startswith("fixed")
        marker = "s" if fixed else ("^" if "posterior" in r.method else "o")
        ax.scatter(r.votes, r.agreement * 100, marker=marker, color="grey" if fixed else None)
        ax.annotate(
            r.method,
            (r.votes, r.agreement * 100),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.axhline(95, color="green", lw=0.8, ls="--")
    ax.axvline(39 * 2 / 3, color="green", lw=0.8, ls="--")
    ax.set_xlabel("votes per item (full panel: 39)")
    ax.set_ylabel("label equals the full panel's (%)")
    ax.set_title("Adaptive vs fixed overlap, Blue Birds crowd labels")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "overlap_bench.png")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = bench(args.seeds, GRID)
    if args.json:
        fields = Row.__dataclass_fields__
        out = [{**{f: getattr(r, f) for f in fields}, "meets_goal": r.meets_goal} for r in rows]
        print(json.dumps(out, indent=2))
    else:
        print(table(rows, args.seeds))
        best = [r for r in rows[1:] if r.meets_goal]
        if best:
            cheapest = min(best, key=lambda r: r.votes)
            print(
                f"\ncheapest policy meeting the goal: {cheapest.method} "
                f"({cheapest.votes:.2f} votes/item = {cheapest.vote_share:.1%} of the panel's, "
                f"{cheapest.agreement:.1%} agreement)"
            )
        for r in rows[1:]:
            if r.method.startswith("fixed"):
                continue
            for k in FIXED:
                f = next(x for x in rows if x.method == f"fixed {k}")
                if abs(r.votes - k) <= 0.75:
                    print(
                        f"{r.method}: {r.votes:.2f} votes, {r.agreement:.1%} vs fixed {k}: "
                        f"{f.agreement:.1%}"
                    )
    if not args.no_plot:
        if plot(rows, args.plot):
            print(f"plot: {args.plot.relative_to(ROOT)}", file=sys.stderr)
        else:
            print("matplotlib is not installed: no plot", file=sys.stderr)
    print(f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
