"""Adaptive overlap on emotion labels: the realistic simulated team, clip by clip.

What it measures
----------------
``bench/overlap.py`` measures the policy on public yes/no crowd labels. This one measures
it where the service applies it: clips of 8 turns, seven emotion labels, and the decision
made per clip (:func:`annotate.overlap.decide_clips`, as the service's overlap keeper does:
a clip needs one more annotator while any of its turns is unsettled).

Data: the clips of ``bench/team.py`` (an intended emotion arc per performer) labelled by
*every* member of the realistic team of :mod:`annotate.simulate` (9 annotators with their
skills, favourite labels, skipped turns, a careless and a drifting member), so each clip has
a full panel of 9. For each seed, each clip's 9 annotations arrive in a random order.

- fixed k (2, 3, 5): the first k annotations of each clip;
- adaptive: each clip first gets ``min_annotators`` annotations; then, in rounds, the
  policy decides every clip from its annotations so far and each clip that needs one
  more gets its next one.

Per method: annotations per clip; per turn, the share whose majority label (ties broken by
a seeded draw) equals the full panel's majority of 9 (turns where the 9 tie are left out),
and the share equal to the scene's intended emotion. Means over ``--seeds`` seeds, every
method on the same arrivals.

Usage::

    .venv/bin/python bench/overlap_team.py            # 10 seeds
    .venv/bin/python bench/overlap_team.py --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotate.overlap import OverlapPolicy, decide_clips  # noqa: E402
from annotate.simulate import label_clip, realistic_team  # noqa: E402
from bench.team import TAX, make_clips  # noqa: E402

FIXED = (2, 3, 5)
GRID = (
    ("lead 2, 2-5 (default)", OverlapPolicy()),
    ("lead 2, 2-5, a quarter of turns may stay open", OverlapPolicy(unsettled_share=0.25)),
    ("lead 2, 2-5, half may stay open", OverlapPolicy(unsettled_share=0.5)),
    ("lead 2, 2-9", OverlapPolicy(max_annotators=9)),
    ("lead 2, 2-9, a quarter may stay open", OverlapPolicy(max_annotators=9, unsettled_share=0.25)),
    ("lead 2, 2-9, half may stay open", OverlapPolicy(max_annotators=9, unsettled_share=0.5)),
    ("lead 3, 2-9", OverlapPolicy(max_annotators=9, lead=3)),
)


def panel(seed: int, sessions: int, turns: int) -> tuple[list, dict, dict]:
    """Every member's emotion labels of every clip: clip -> [(member, {turn: label})],
    turn -> intended emotion, turn -> clip."""
    rng = np.random.default_rng([seed, 77])
    clips = make_clips(sessions, turns, rng)
    team = realistic_team(TAX, n=9, seed=seed, part_timer=False)
    labels = []
    intended, clip_of = {}, {}
    for c, (lines, arc) in enumerate(clips):
        got = []
        for position, who in enumerate(team.members):
            values, _ = label_clip(who, lines, arc, TAX, rng, position=c)
            turn_labels = {
                lines[i]["turn_id"]: v["emotion"] for i, v in values.items() if "emotion" in v
            }
            got.append((who.name, turn_labels))
            del position
        labels.append(got)
        for line in lines:
            intended[line["turn_id"]] = arc[int(line["turn_index"])]
            clip_of[line["turn_id"]] = c
    return labels, intended, clip_of


def majority(values: list[str], rng: np.random.Generator | None) -> str | None:
    """The most frequent label (a tie broken by a seeded draw, or None without ``rng``);
    None without labels."""
    if not values:
        return None
    counts = Counter(values)
    top = max(counts.values())
    tied = sorted(v for v, n in counts.items() if n == top)
    if len(tied) == 1:
        return tied[0]
    return None if rng is None else str(rng.choice(tied))


def labels_of(annotations: list[tuple[str, dict]], rng: np.random.Generator | None) -> dict:
    """Turn -> majority label over ``annotations``."""
    votes: dict[str, list[str]] = {}
    for _, turns in annotations:
        for turn, label in turns.items():
            votes.setdefault(turn, []).append(label)
    return {turn: majority(v, rng) for turn, v in votes.items()}


def adaptive(policy: OverlapPolicy, order: list[list]) -> list[int]:
    """How many annotations each clip gets under ``policy`` (``order``: each clip's
    annotations in arrival order)."""
    drawn = [min(policy.min_annotators, len(o)) for o in order]
    while True:
        records = [
            (c, turn, who, "emotion", label)
            for c, n in enumerate(drawn)
            for who, turns in order[c][:n]
            for turn, label in turns.items()
        ]
        decisions = decide_clips(policy, records)
        more = [
            c
            for c, d in decisions.items()
            if d.need_more and drawn[c] < len(order[c])  # type: ignore[index]
        ]
        if not more:
            return drawn
        for c in more:
            drawn[c] += 1  # type: ignore[index]


def main(argv: list[str] | None = None) -> int:
    """Print the table: annotations per clip and agreement with the full panel."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--turns", type=int, default=48)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float, float]]] = {}
    started = time.perf_counter()
    for seed in range(args.seeds):
        labels, intended, _ = panel(seed, args.sessions, args.turns)
        rng = np.random.default_rng(seed)
        full = labels_of([a for clip in labels for a in clip], None)
        order = [[clip[i] for i in rng.permutation(len(clip))] for clip in labels]
        methods = [(f"fixed {k}", [k] * len(order)) for k in FIXED]
        methods += [(name, adaptive(policy, order)) for name, policy in GRID]
        methods.append(("full panel (9)", [len(o) for o in order]))
        for name, drawn in methods:
            got = labels_of([a for c, n in enumerate(drawn) for a in order[c][:n]], rng)
            turns = [t for t in full if full[t] is not None]
            same = np.mean([got.get(t) == full[t] for t in turns])
            truth = np.mean([got.get(t) == intended[t] for t in turns])
            results.setdefault(name, []).append((float(np.mean(drawn)), same, truth))
    print(f"{args.seeds} seeds, {args.sessions} sessions x {args.turns} turns, 8 turns a clip")
    print("| method | annotations per clip | = full panel's label | = intended | share of panel |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        arr = np.array(runs)
        print(
            f"| {name} | {arr[:, 0].mean():.2f} | {arr[:, 1].mean():.1%} | "
            f"{arr[:, 2].mean():.1%} | {arr[:, 0].mean() / 9:.1%} |"
        )
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
