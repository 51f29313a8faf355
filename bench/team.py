"""What a realistic team changes in the agreement figures, beside the cooperative one.

What it measures
----------------
The same generated clips (``--sessions`` sessions of ``--turns`` turns, 8 turns a clip, an
intended emotion arc per performer that stays with probability 0.7) are labelled by two
simulated teams (:mod:`annotate.simulate`):

- cooperative: 3 annotators, all on every clip, every turn and dimension, 20% noise (the
  demo's team);
- realistic: a pool of 9, 3 per clip, skills 0.6-0.9 with a favourite label, rating
  offsets, 0-25% of turns and 0-15% of dimensions skipped, one careless, one drifting, one
  who stops after a clip; an expert's gold on 25% of the clips; 15% of annotations edited
  later, 5% deleted.

Each team's annotations go through the service's own path as webhook payloads
(``api.store.apply_event`` into a fresh SQLite store: creates, then updates, then
deletions), and the figures are read as the API serves them (``api.reports``,
``api.store.agreement``): Krippendorff's alpha per dimension, the mean pairwise alpha
(unweighted over pairs that share a unit; weighted by units compared where the reports
give the counts), the ICC (the form the design allows where the reports say which, else
ICC(2,1)), each annotator's alpha against the expert's gold (the careless member beside the
median member), the share of turns with at least two emotion labels, and how often the
emotion majority equals the intended emotion. Each figure is the mean (and standard
deviation) over ``--seeds`` seeds.

Usage::

    .venv/bin/python bench/team.py             # 3 sessions x 48 turns, 5 seeds
    .venv/bin/python bench/team.py --quick     # 2 sessions x 24 turns, 2 seeds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from annotate.simulate import Planned, Team, cooperative_team, plan_team, realistic_team  # noqa: E402
from api import reports, store  # noqa: E402
from api.db import init_db, make_engine  # noqa: E402
from schemas.codec import encode_annotation  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402

TAX = load_taxonomy()
CLIP_TURNS = 8
PROJECT = 1
DIMENSIONS = ("emotion", "intensity", "valence")


def make_clips(
    n_sessions: int, n_turns: int, rng: np.random.Generator
) -> list[tuple[list[dict[str, Any]], dict[int, str]]]:
    """Clips of ``CLIP_TURNS`` turns, each ``(dialogue, intended)`` as a task carries them."""
    categories = list(TAX.emotion.values)
    clips = []
    for s in range(n_sessions):
        current = {"p01": "neutral", "p02": "neutral"}
        lines, intended = [], {}
        for i in range(n_turns):
            performer = "p01" if i % 2 == 0 else "p02"
            if rng.random() > 0.7:
                current[performer] = str(rng.choice(categories))
            intended[i] = current[performer]
            lines.append(
                {
                    "turn_id": f"s{s}-t{i:05d}",
                    "turn_index": i,
                    "performer": performer,
                    "speaker": performer,
                    "text": f"line {i}",
                    "start": 2.0 * i,
                    "end": 2.0 * i + 1.5,
                }
            )
        for k in range(0, n_turns, CLIP_TURNS):
            clips.append((lines[k : k + CLIP_TURNS], intended))
    return clips


def user_ids(plan: list[Planned]) -> dict[str, int]:
    """A Label Studio user id per simulated annotator (2, 3, ... in name order)."""
    return {name: k for k, name in enumerate(sorted({p.annotator for p in plan}), start=2)}


def payloads(
    plan: list[Planned], clips: list[tuple[list[dict[str, Any]], dict[int, str]]]
) -> list[dict[str, Any]]:
    """The webhook payloads the plan makes: every create, then the edits, then deletions."""
    users = user_ids(plan)
    tasks = [
        {
            "id": c + 1,
            "project": PROJECT,
            "data": {
                "dialogue": d,
                "session_id": d[0]["turn_id"].split("-")[0],
                "clip_id": f"c{c}",
            },
        }
        for c, (d, _) in enumerate(clips)
    ]

    def event(action: str, a: int, p: Planned, values: Any, when: str) -> dict[str, Any]:
        result = encode_annotation(clips[p.clip][0], values, TAX, list(p.shifts))
        return {
            "action": action,
            "project": {"id": PROJECT},
            "task": tasks[p.clip],
            "annotation": {
                "id": a,
                "task": p.clip + 1,
                "completed_by": users[p.annotator],
                "result": result,
                "ground_truth": p.gold,
                "was_cancelled": False,
                "created_at": "2026-12-01T09:00:00Z",
                "updated_at": when,
                "lead_time": 30.0,
            },
        }

    out = [
        event("ANNOTATION_CREATED", a, p, p.values, "2026-12-01T09:00:00Z")
        for a, p in enumerate(plan, start=1)
    ]
    out += [
        event("ANNOTATION_UPDATED", a, p, p.edited, "2026-12-01T10:00:00Z")
        for a, p in enumerate(plan, start=1)
        if p.edited is not None
    ]
    gone = [{"id": a} for a, p in enumerate(plan, start=1) if p.deleted]
    if gone:
        out.append(
            {"action": "ANNOTATIONS_DELETED", "project": {"id": PROJECT}, "annotations": gone}
        )
    return out


def figures(
    db: Session, clips: list[tuple[list[dict[str, Any]], dict[int, str]]], careless: str | None
) -> dict[str, float]:
    """The figures the API serves, for one store (``careless``: that member's user id)."""
    out: dict[str, float] = {}
    for name in DIMENSIONS:
        frame = reports.load(db, PROJECT, name, TAX)
        summary = reports.summary(frame, n_boot=50)
        out[f"alpha {name}"] = _num(summary["alpha"])
        pairs = reports.pairwise(frame)
        alphas = np.array([[np.nan if x is None else x for x in row] for row in pairs["alpha"]])
        upper = np.triu(np.ones_like(alphas, dtype=bool), k=1) & np.isfinite(alphas)
        out[f"pairwise mean {name} (unweighted)"] = (
            float(alphas[upper].mean()) if upper.any() else np.nan
        )
        if "mean" in pairs:  # the reports give weighted means (pairs carry their unit counts)
            out[f"pairwise mean {name} (weighted)"] = _num(pairs["mean"])
        if TAX.dimension(name).level == "interval":
            icc = summary.get("icc")
            if isinstance(icc, dict) and icc.get("form"):  # the form the design allows
                form = {"ICC1": "ICC(1)", "ICC2": "ICC(2,1)"}.get(icc["form"], icc["form"])
                out[f"{form} {name}"] = _num((icc.get("single") or {}).get("icc"))
            else:
                out[f"ICC(2,1) {name}"] = _num(summary.get("icc2"))
    rows = reports.breakdown(reports.load(db, PROJECT, "emotion", TAX), "annotator")
    others = [r for r in rows if r["key"] != careless and r["alpha_vs_gold"] is not None]
    out["emotion alpha vs gold: median member"] = (
        float(np.median([r["alpha_vs_gold"] for r in others])) if others else np.nan
    )
    mine = [r for r in rows if r["key"] == careless]
    out["emotion alpha vs gold: the careless member"] = (
        _num(mine[0]["alpha_vs_gold"]) if mine else np.nan
    )
    labels = store.turn_labels(db, PROJECT)
    n_turns = sum(len(d) for d, _ in clips)
    emotions = {t: [by[a]["emotion"] for a in by if "emotion" in by[a]] for t, by in labels.items()}
    out["turns with >= 2 emotion labels"] = sum(len(v) >= 2 for v in emotions.values()) / n_turns
    truth = {line["turn_id"]: intended[line["turn_index"]] for d, intended in clips for line in d}
    hits = total = 0
    for turn, values in emotions.items():
        if not values:
            continue
        (top, n), *rest = Counter(values).most_common()
        if rest and rest[0][1] == n:
            continue  # a tie has no majority
        total += 1
        hits += top == truth[turn]
    out["majority = intended"] = hits / total if total else np.nan
    live = store.agreement(db, PROJECT, "emotion", TAX)
    out["emotion judgements"] = live["judgements"]
    out["annotators"] = live["annotators"]
    return out


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def run(team: Team, clips: list, seed: int, folder: Path) -> tuple[dict[str, float], float]:
    """One team on the clips, through a fresh store; the figures and the seconds it took."""
    plan = plan_team(team, clips, TAX, seed=seed)
    engine = make_engine(f"sqlite:///{folder / f'team-{seed}-{len(team.members)}.db'}")
    init_db(engine)
    started = time.perf_counter()
    with Session(engine) as db:
        for payload in payloads(plan, clips):
            store.apply_event(db, payload, TAX)
        careless = [a.name for a in team.members if a.careless]
        who = str(user_ids(plan)[careless[0]]) if careless else None
        out = figures(db, clips, who)
    engine.dispose()
    return out, time.perf_counter() - started


def _merged_keys(orders: list[list[str]]) -> list[str]:
    """The keys of every team in one order: each key after the one it follows in its team."""
    out: list[str] = []
    for order in orders:
        for k, key in enumerate(order):
            if key not in out:
                out.insert(out.index(order[k - 1]) + 1 if k else 0, key)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table of figures, cooperative beside realistic, mean +- sd over seeds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--turns", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 sessions x 24 turns, 2 seeds")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.turns, args.seeds = 2, 24, 2
    teams = {"cooperative (3 of 3)": cooperative_team(3), "realistic (9, 3 per clip)": None}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in teams}
    seconds = dict.fromkeys(teams, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            clips = make_clips(args.sessions, args.turns, np.random.default_rng([seed, 42]))
            for name, team in teams.items():
                team = team or realistic_team(TAX, seed=seed)
                out, took = run(team, clips, seed, Path(tmp))
                results[name].append(out)
                seconds[name] += took
    n_clips = args.sessions * -(-args.turns // CLIP_TURNS)
    print(
        f"{args.sessions} sessions x {args.turns} turns ({n_clips} clips of {CLIP_TURNS} turns), "
        f"{args.seeds} seeds; mean (sd) over seeds\n"
    )
    names = list(teams)
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in _merged_keys([list(results[n][0]) for n in names if results[n]]):
        cells = []
        for name in names:
            values = np.array([r.get(key, np.nan) for r in results[name]], dtype=float)
            if np.isnan(values).all():
                cells.append("n/a")
            elif key in ("emotion judgements", "annotators"):
                cells.append(f"{np.nanmean(values):.0f}")
            else:
                cells.append(f"{np.nanmean(values):.3f} ({np.nanstd(values):.3f})")
        print(f"| {key} | " + " | ".join(cells) + " |")
    took = ", ".join(f"{n}: {seconds[n]:.1f} s" for n in names)
    print(f"\nstore + reports time over all seeds: {took}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
