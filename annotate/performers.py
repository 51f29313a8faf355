"""The performers' scorecard: do the emotions and shifts a scene intended come across?

The people the recordings are of want to know, per performer and intended emotion, how
often annotators perceive what the scene asked for, how genuine they find it, and whether
the intended shifts are noticed. Pure functions over plain records; the service builds the
records from its store (:mod:`api.scorecards`), the export's data card from the same.

Definitions
-----------
- **Recognition rate** of a performer and intended emotion: the share of emotion
  judgements on their turns with that intended emotion that name it. Every judgement
  counts once (a turn with three annotators gives three); the 95% interval resamples the
  *turns* (1,000 resamples, seed 0, the project's bootstrap policy), so the judgements of
  one turn stay together.
- **Confusion**: intended -> perceived, counts of judgements (rows: intended emotions,
  columns: the perceived labels) and their row shares.
- **Authenticity**: the mean and median of the authenticity ratings on those turns, with n.
- **Intended shifts** (MELD's definition, as in exports): a turn whose intended emotion
  differs from the intended emotion of the same performer's previous turn in the session.
  An annotator *marked* it when one of their shift spans has its midpoint on the turn,
  within ``tolerance`` seconds of its start or end (the rule that puts marked spans on
  rows in exports). Only annotators who labeled the turn's clip count: ``views`` is the
  number of (intended shift, annotator who saw it) pairs, ``marked`` how many of those
  pairs had a span; ``marked_by_anyone`` counts shifts at least one annotator marked.

Every figure carries its n; a figure with nothing to stand on is ``None`` with a
``reason``, never 0.

>>> turns = [Turn("t0", "s", 0, "p1", 0.0, 1.0, "joy", 1),
...          Turn("t1", "s", 1, "p1", 2.0, 3.0, "anger", 1)]
>>> card = performer_scorecard(turns, {"t0": {"a": "joy", "b": "joy"},
...                                    "t1": {"a": "anger", "b": "joy"}},
...                            seen={1: {"a", "b"}}, spans=[Span("a", "s", 2.2, 2.6)])
>>> p = card["performers"][0]
>>> p["recognition"]["hits"], p["recognition"]["judgements"], p["shifts"]["marked"]
(3, 4, 1)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import mean, median
from typing import Any

import numpy as np

from annotate.agreement import N_BOOT, SEED

__all__ = ["SHIFT_TOLERANCE", "Span", "Turn", "performer_scorecard", "recognition_interval"]

SHIFT_TOLERANCE = 1.0  # seconds: the export's default for putting marked spans on turns


@dataclass(frozen=True)
class Turn:
    """A turn as the scorecard needs it; times in session seconds, ``task_id`` its clip."""

    turn_id: str
    session_id: str
    turn_index: int
    performer: str
    start: float
    end: float
    intended: str | None
    task_id: int


@dataclass(frozen=True)
class Span:
    """A shift span an annotator marked; times in session seconds."""

    annotator: str
    session_id: str
    start: float
    end: float


def recognition_interval(
    hits: Sequence[int], totals: Sequence[int], n_boot: int = N_BOOT, seed: int = SEED
) -> tuple[float | None, float | None]:
    """95% percentile interval of ``sum(hits) / sum(totals)`` over turns resampled with
    replacement (``hits[i]`` of ``totals[i]`` judgements of turn ``i`` name the intended
    emotion); ``(None, None)`` with fewer than two turns."""
    h = np.asarray(hits, dtype=float)
    n = np.asarray(totals, dtype=float)
    if h.size < 2:
        return None, None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, h.size, size=(n_boot, h.size))
    rates = h[draws].sum(axis=1) / n[draws].sum(axis=1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def _rate(hits: list[int], totals: list[int], n_boot: int, seed: int) -> dict[str, Any]:
    judgements = sum(totals)
    out: dict[str, Any] = {"turns": len(totals), "judgements": judgements, "hits": sum(hits)}
    if not judgements:
        return {**out, "rate": None, "ci_low": None, "ci_high": None, "reason": "no judgement"}
    low, high = recognition_interval(hits, totals, n_boot, seed)
    out.update(rate=sum(hits) / judgements, ci_low=low, ci_high=high)
    if low is None:
        out["reason"] = "one turn: no interval"
    return out


def _ratings(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "reason": "no rating"}
    return {"n": len(values), "mean": mean(values), "median": median(values)}


def _intended_shifts(turns: Sequence[Turn]) -> list[Turn]:
    """Turns whose intended emotion differs from the same performer's previous intended
    one in the session (turns without an intended emotion are passed over)."""
    out = []
    last: dict[tuple[str, str], str] = {}
    for turn in sorted(turns, key=lambda t: (t.session_id, t.turn_index)):
        if turn.intended is None:
            continue
        key = (turn.session_id, turn.performer)
        if key in last and last[key] != turn.intended:
            out.append(turn)
        last[key] = turn.intended
    return out


def _marked(turn: Turn, spans: Iterable[Span], tolerance: float) -> set[str]:
    return {
        s.annotator
        for s in spans
        if s.session_id == turn.session_id
        and turn.start - tolerance <= (s.start + s.end) / 2 <= turn.end + tolerance
    }


def performer_scorecard(
    turns: Sequence[Turn],
    emotions: Mapping[str, Mapping[str, str]],
    ratings: Mapping[str, Mapping[str, float]] | None = None,
    *,
    seen: Mapping[int, Iterable[str]] | None = None,
    spans: Sequence[Span] = (),
    tolerance: float = SHIFT_TOLERANCE,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> dict[str, Any]:
    """The scorecard of every performer (see the module's definitions).

    ``emotions``: turn id -> annotator -> perceived emotion; ``ratings``: turn id ->
    annotator -> authenticity rating; ``seen``: task id -> the annotators who labeled the
    clip (default: those with an emotion judgement on one of its turns); ``spans``: every
    shift span marked. Returns ``{"performers": [...], "labels": [...], "tolerance",
    "n_boot", "seed", "definitions"}``, performers in name order.
    """
    ratings = ratings or {}
    if seen is None:
        derived: dict[int, set[str]] = defaultdict(set)
        for t in turns:
            derived[t.task_id].update(emotions.get(t.turn_id, {}))
        seen = derived
    viewers = {task: set(who) for task, who in seen.items()}
    by_session: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_session[s.session_id].append(s)
    shifted = {t.turn_id for t in _intended_shifts(turns)}
    labels: set[str] = set()
    out = []
    groups: dict[str, list[Turn]] = defaultdict(list)
    for t in turns:
        groups[t.performer].append(t)
    for performer in sorted(groups):
        mine = groups[performer]
        perceived: Counter[str] = Counter()
        hits_all: list[int] = []
        totals_all: list[int] = []
        by_intended: dict[str, dict[str, Any]] = {}
        authenticity: list[float] = []
        shifts = {"intended": 0, "views": 0, "marked": 0, "marked_by_anyone": 0}
        for t in mine:
            given = emotions.get(t.turn_id, {})
            perceived.update(given.values())
            rated = list(ratings.get(t.turn_id, {}).values())
            authenticity += rated
            if t.intended is not None:
                entry = by_intended.setdefault(
                    t.intended, {"hits": [], "totals": [], "perceived": Counter(), "rated": []}
                )
                if given:
                    hit = sum(v == t.intended for v in given.values())
                    entry["hits"].append(hit)
                    entry["totals"].append(len(given))
                    hits_all.append(hit)
                    totals_all.append(len(given))
                entry["perceived"].update(given.values())
                entry["rated"] += rated
            if t.turn_id in shifted:
                who = viewers.get(t.task_id, set())
                marked = _marked(t, by_session[t.session_id], tolerance) & who
                shifts["intended"] += 1
                shifts["views"] += len(who)
                shifts["marked"] += len(marked)
                shifts["marked_by_anyone"] += bool(marked)
        labels.update(perceived)
        rows = []
        for intended in sorted(by_intended):
            entry = by_intended[intended]
            total = sum(entry["perceived"].values())
            rows.append(
                {
                    "intended": intended,
                    **_rate(entry["hits"], entry["totals"], n_boot, seed),
                    "perceived": dict(sorted(entry["perceived"].items())),
                    "perceived_share": {
                        k: v / total for k, v in sorted(entry["perceived"].items())
                    },
                    "authenticity": _ratings(entry["rated"]),
                }
            )
            labels.update(entry["perceived"])
        shifts_out: dict[str, Any] = dict(shifts)
        if not shifts["intended"]:
            shifts_out.update(rate=None, reason="no intended shift on this performer's turns")
        elif not shifts["views"]:
            shifts_out.update(rate=None, reason="no annotator labeled these clips")
        else:
            shifts_out["rate"] = shifts["marked"] / shifts["views"]
        recognition = _rate(hits_all, totals_all, n_boot, seed)
        if not any(t.intended is not None for t in mine):
            recognition["reason"] = "no intended emotion given for this performer's turns"
        out.append(
            {
                "performer": performer,
                "turns": len(mine),
                "judgements": sum(perceived.values()),
                "recognition": recognition,
                "by_intended": rows,
                "perceived": dict(sorted(perceived.items())),
                "authenticity": _ratings(authenticity),
                "shifts": shifts_out,
            }
        )
    return {
        "performers": out,
        "labels": sorted(labels),
        "tolerance": tolerance,
        "n_boot": n_boot,
        "seed": seed,
        "definitions": {
            "recognition": "share of emotion judgements naming the intended emotion; "
            "95% interval resamples turns",
            "intended_shift": "intended emotion differs from the same performer's previous "
            "intended emotion in the session (MELD)",
            "marked": f"a shift span's midpoint on the turn, within {tolerance:g} s, by an "
            "annotator who labeled its clip",
        },
    }
