"""Simulated annotators for the demo and the tests.

A simulated annotator labels each turn with the session's intended emotion, except that
with probability ``noise`` it picks another category; its ratings follow the emotion with
seeded jitter, and it marks a shift span where a performer's intended emotion changes.
They exist so the whole path (Label Studio -> webhook -> agreement -> export) runs without
people; everything they produce is marked as simulated by whoever prints it.

:func:`simulate_values` is the demo's cooperative annotator: every turn, every dimension.
A realistic team (:func:`realistic_team`, :func:`plan_team`) is a pool larger than the
overlap (9 people, 3 per clip), each with their own skill, a favourite label their mistakes
lean toward, a rating offset, and skipped turns and dimensions; one is careless (labels at
random), one drifts (loses accuracy clip by clip), one stops after a clip; an expert labels
a share of the clips as gold; some annotations are edited later and some deleted. All of
it is seeded: the same seed gives the same plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.taxonomy import Taxonomy

# Rough valence / arousal / dominance (1-5) of the core categories, for plausible ratings.
_VAD = {
    "neutral": (3, 2, 3),
    "joy": (5, 4, 4),
    "sadness": (1, 2, 2),
    "anger": (1, 5, 5),
    "fear": (1, 4, 1),
    "surprise": (4, 5, 3),
    "disgust": (1, 3, 4),
}


# The trigger whose cause is the other performer's line.
PARTNER = "partner-induced"


def _partner_turn(dialogue: Sequence[Mapping[str, Any]], i: int) -> int | None:
    """The index of the last turn before ``i`` by another performer (None: no such turn)."""
    performer = dialogue[i].get("performer") or dialogue[i].get("speaker")
    for k in range(i - 1, -1, -1):
        if (dialogue[k].get("performer") or dialogue[k].get("speaker")) != performer:
            return k
    return None


def simulate_values(
    dialogue: Sequence[Mapping[str, Any]],
    intended: Mapping[int, str],
    taxonomy: Taxonomy,
    rng: np.random.Generator,
    noise: float = 0.2,
) -> tuple[dict[int, dict[str, str | int]], list[dict[str, Any]]]:
    """Values for every turn of a clip and shift spans, as one simulated annotator.

    Parameters
    ----------
    dialogue : sequence of mappings
        The task's dialogue lines (``turn_index``, ``performer``, ``start``, ``end``).
    intended : mapping
        Turn index -> intended emotion; turns without one get "neutral".
    taxonomy : Taxonomy
        Gives the categories and the rating dimensions to fill in.
    rng : numpy.random.Generator
        Seeded source of the noise.
    noise : float
        Probability of choosing a category other than the intended one.

    Returns
    -------
    (values, shifts)
        ``values`` maps a dialogue index to ``{dimension: value}``; ``shifts`` holds spans in
        clip-audio seconds for :func:`schemas.codec.encode_annotation`; a partner-induced
        shift is linked to the partner's turn just before it (``cause``), when there is one.
    """
    categories = list(taxonomy.emotion.values)
    values: dict[int, dict[str, str | int]] = {}
    chosen: list[str] = []
    for i, line in enumerate(dialogue):
        truth = intended.get(int(line["turn_index"]), "neutral")
        if truth not in categories:
            truth = categories[0]
        label = truth
        if rng.random() < noise:
            label = str(rng.choice([c for c in categories if c != truth]))
        chosen.append(label)
        turn: dict[str, str | int] = {taxonomy.emotion.name: label}
        vad = _VAD.get(label, (3, 3, 3))
        for dim in taxonomy.dimensions:
            if dim.kind != "rating" or dim.min is None or dim.max is None:
                continue
            base = {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]}.get(
                dim.name, 3 if label == "neutral" else 4
            )
            jitter = int(rng.integers(-1, 2))
            turn[dim.name] = int(np.clip(base + jitter, dim.min, dim.max))
        values[i] = turn
    shifts = []
    last: dict[str, tuple[int, str]] = {}
    for i, line in enumerate(dialogue):
        performer = str(line.get("performer") or line.get("speaker"))
        if performer in last and last[performer][1] != chosen[i]:
            start = float(line["start"])
            trigger = str(rng.choice(list(taxonomy.shift.trigger)))
            shifts.append(
                {
                    "start": round(max(0.0, start - 0.2), 3),
                    "end": round(start + 0.8, 3),
                    "from": last[performer][1],
                    "to": chosen[i],
                    "trigger": trigger,
                    "onset": str(rng.choice(list(taxonomy.shift.onset))),
                    "cause": _partner_turn(dialogue, i) if trigger == PARTNER else None,
                }
            )
        last[performer] = (i, chosen[i])
    return values, shifts


# ---------------------------------------------------------------------------------------
# A realistic team: a pool larger than the overlap, people who differ, skip, edit, delete.
# ---------------------------------------------------------------------------------------

Values = dict[int, dict[str, str | int]]

# the rating a category suggests, per rating dimension without a VAD meaning
_OTHER_RATING = {"intensity": (2, 4), "authenticity": (4, 4)}  # (neutral, any other)


@dataclass(frozen=True, slots=True)
class Annotator:
    """One simulated person: how well and how completely they label.

    Parameters
    ----------
    name : str
        A stable handle (``ann-01``); the e-mail of a Label Studio account is built from it.
    accuracy : float
        Chance of choosing the intended emotion on the first clip they label.
    favourite : str or None
        The category their mistakes lean toward (a confusion bias).
    lean : float
        Share of their mistakes that go to ``favourite``; the rest are uniform.
    offset : float
        Added to every rating before rounding (a rater who rates high or low), scale points.
    spread : float
        Standard deviation of the rating noise, scale points.
    skip_turn, skip_dimension : float
        Chance of leaving a turn unlabelled, and of leaving one dimension of a labelled turn
        empty.
    decay : float
        Accuracy lost per clip already labelled (a drifting annotator).
    careless : bool
        Labels at random: any category, any rating.
    capacity : int or None
        At most this many clips (a part-timer who stops early); None for no limit.
    """

    name: str
    accuracy: float = 0.8
    favourite: str | None = None
    lean: float = 0.0
    offset: float = 0.0
    spread: float = 0.5
    skip_turn: float = 0.0
    skip_dimension: float = 0.0
    decay: float = 0.0
    careless: bool = False
    capacity: int | None = None

    def accuracy_at(self, position: int) -> float:
        """The chance of the intended emotion on the ``position``-th clip (0-based)."""
        return max(0.0, self.accuracy - self.decay * position)


@dataclass(frozen=True, slots=True)
class Team:
    """A pool of annotators, ``overlap`` of whom label each clip, and what happens after.

    ``expert`` labels a ``gold_share`` of the clips as ground truth (gold); a share of the
    annotations is edited later (``edit_share``) and a share deleted (``delete_share``; with
    a share above 0, at least one of each).
    """

    members: tuple[Annotator, ...]
    overlap: int
    expert: Annotator | None = None
    gold_share: float = 0.0
    edit_share: float = 0.0
    delete_share: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.overlap <= len(self.members):
            raise ValueError(
                f"overlap is {self.overlap}; expected 1 to {len(self.members)} (the pool size)"
            )
        names = [a.name for a in self.members] + ([self.expert.name] if self.expert else [])
        if len(set(names)) != len(names):
            raise ValueError(f"annotator names repeat: {sorted(names)}")


@dataclass(frozen=True, slots=True)
class Planned:
    """One annotation a team member makes of one clip, and what becomes of it.

    ``values`` as first saved; ``edited`` the values after a later update (None: never
    updated); ``deleted``: removed afterwards. ``position``: how many clips the annotator
    labelled before this one (drift counts from it).
    """

    clip: int
    annotator: str
    values: Values
    shifts: tuple[dict[str, Any], ...]
    position: int
    gold: bool = False
    edited: Values | None = None
    deleted: bool = False

    @property
    def final(self) -> Values | None:
        """The values Label Studio holds in the end (None once deleted)."""
        if self.deleted:
            return None
        return self.edited if self.edited is not None else self.values


def cooperative_team(n: int = 3, noise: float = 0.2) -> Team:
    """Everyone on every clip, every turn and dimension, the same skill (the demo's team)."""
    members = tuple(Annotator(f"ann-{k:02d}", accuracy=1.0 - noise) for k in range(1, n + 1))
    return Team(members, overlap=n)


def realistic_team(
    taxonomy: Taxonomy, n: int = 9, overlap: int = 3, seed: int = 0, *, part_timer: bool = True
) -> Team:
    """A pool of ``n`` who differ, ``overlap`` per clip: skills 0.6-0.9, a favourite label
    each, rating offsets, 0-25% of turns and 0-15% of dimensions skipped; the last member is
    careless (near-random), the one before drifts (0.9, minus 0.08 per clip), and with
    ``part_timer`` the one before that labels a single clip, mostly skipped. An expert
    labels 25% of the clips as gold; 15% of annotations are edited later, 5% deleted.

    Examples
    --------
    >>> from schemas.taxonomy import load_taxonomy
    >>> team = realistic_team(load_taxonomy(), seed=1)
    >>> len(team.members), team.overlap, team.members[-1].careless
    (9, 3, True)
    """
    if n < 4:
        raise ValueError(f"a realistic team needs at least 4 members; got n={n}")
    rng = np.random.default_rng([seed, 1501])
    categories = list(taxonomy.emotion.values)
    members = []
    for k in range(1, n + 1):
        members.append(
            Annotator(
                f"ann-{k:02d}",
                accuracy=float(rng.uniform(0.6, 0.9)),
                favourite=str(rng.choice(categories)),
                lean=float(rng.uniform(0.2, 0.6)),
                offset=float(rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0])),
                spread=float(rng.uniform(0.3, 0.8)),
                skip_turn=float(rng.uniform(0.0, 0.25)),
                skip_dimension=float(rng.uniform(0.0, 0.15)),
            )
        )
    members[-1] = Annotator(members[-1].name, careless=True, skip_turn=0.1)
    members[-2] = dataclasses.replace(members[-2], accuracy=0.9, decay=0.08)
    if part_timer:
        members[-3] = dataclasses.replace(members[-3], capacity=1, skip_turn=0.7)
    expert = Annotator("expert", accuracy=0.95, spread=0.3)
    return Team(
        tuple(members),
        overlap,
        expert=expert,
        gold_share=0.25,
        edit_share=0.15,
        delete_share=0.05,
    )


def label_clip(
    who: Annotator,
    dialogue: Sequence[Mapping[str, Any]],
    intended: Mapping[int, str],
    taxonomy: Taxonomy,
    rng: np.random.Generator,
    position: int = 0,
) -> tuple[Values, list[dict[str, Any]]]:
    """What ``who`` labels on one clip: ``(values, shifts)`` as :func:`simulate_values`
    returns them, but with the annotator's skill, bias, offset and skips; turns left out of
    ``values`` are unlabelled, dimensions left out of a turn are empty."""
    categories = list(taxonomy.emotion.values)
    accuracy = 1.0 / len(categories) if who.careless else who.accuracy_at(position)
    values: Values = {}
    for i, line in enumerate(dialogue):
        if rng.random() < who.skip_turn:
            continue
        truth = intended.get(int(line["turn_index"]), "neutral")
        truth = truth if truth in categories else categories[0]
        label = _draw_label(who, truth, categories, accuracy, rng)
        turn: dict[str, str | int] = {}
        for dim in taxonomy.dimensions:
            if rng.random() < who.skip_dimension:
                continue
            if dim.name == taxonomy.emotion.name:
                turn[dim.name] = label
            elif dim.kind == "rating" and dim.min is not None and dim.max is not None:
                turn[dim.name] = _rating(who, dim.name, label, dim.min, dim.max, rng)
        if turn:
            values[i] = turn
    return values, _shift_spans(dialogue, values, taxonomy, rng)


def _draw_label(
    who: Annotator, truth: str, categories: list[str], accuracy: float, rng: np.random.Generator
) -> str:
    if who.careless:
        return str(rng.choice(categories))
    if rng.random() < accuracy:
        return truth
    if who.favourite and who.favourite != truth and rng.random() < who.lean:
        return who.favourite
    return str(rng.choice([c for c in categories if c != truth]))


def _rating(
    who: Annotator, name: str, label: str, low: int, high: int, rng: np.random.Generator
) -> int:
    if who.careless:
        return int(rng.integers(low, high + 1))
    vad = _VAD.get(label, (3, 3, 3))
    other = _OTHER_RATING.get(name, (3, 4))
    base = {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]}.get(
        name, other[0] if label == "neutral" else other[1]
    )
    value = base + who.offset + float(rng.normal(0.0, who.spread))
    return int(np.clip(round(value), low, high))


def _shift_spans(
    dialogue: Sequence[Mapping[str, Any]],
    values: Values,
    taxonomy: Taxonomy,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """A span where a performer's labelled emotion differs from their previous labelled one
    (a partner-induced one linked to the partner's turn before it)."""
    name = taxonomy.emotion.name
    shifts: list[dict[str, Any]] = []
    last: dict[str, str] = {}
    for i, line in enumerate(dialogue):
        label = values.get(i, {}).get(name)
        if label is None:
            continue
        performer = str(line.get("performer") or line.get("speaker"))
        if performer in last and last[performer] != label:
            start = float(line["start"])
            trigger = str(rng.choice(list(taxonomy.shift.trigger)))
            shifts.append(
                {
                    "start": round(max(0.0, start - 0.2), 3),
                    "end": round(start + 0.8, 3),
                    "from": last[performer],
                    "to": str(label),
                    "trigger": trigger,
                    "onset": str(rng.choice(list(taxonomy.shift.onset))),
                    "cause": _partner_turn(dialogue, i) if trigger == PARTNER else None,
                }
            )
        last[performer] = str(label)
    return shifts


def assign(team: Team, n_clips: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """For each clip, the indices of the ``team.overlap`` members who label it: the least
    loaded first (ties at random), within each member's capacity; fewer when too few have
    capacity left."""
    load = [0] * len(team.members)
    out = []
    for _ in range(n_clips):
        order = rng.permutation(len(team.members))
        free = [
            int(k)
            for k in order
            if team.members[k].capacity is None or load[k] < team.members[k].capacity
        ]
        chosen = tuple(sorted(sorted(free, key=lambda k: load[k])[: team.overlap]))
        for k in chosen:
            load[k] += 1
        out.append(chosen)
    return out


def plan_team(
    team: Team,
    clips: Sequence[tuple[Sequence[Mapping[str, Any]], Mapping[int, str]]],
    taxonomy: Taxonomy,
    seed: int = 0,
) -> list[Planned]:
    """Every annotation the team makes of ``clips`` (``(dialogue, intended)`` each, in the
    order they are labelled), with gold, edits and deletions, seeded.

    Returns
    -------
    list of Planned
        Clip by clip: the members' annotations, then the expert's gold one where planned.
        ``Planned.clip`` is the index into ``clips``.

    Examples
    --------
    >>> from schemas.taxonomy import load_taxonomy
    >>> tax = load_taxonomy()
    >>> line = {"turn_index": 0, "performer": "p01", "start": 0.0, "text": "hi"}
    >>> plan = plan_team(realistic_team(tax), [([line], {0: "joy"})] * 6, tax, seed=3)
    >>> sum(p.gold for p in plan), sum(p.deleted for p in plan) >= 1
    (2, True)
    """
    rng = np.random.default_rng([seed, 1502])
    seats = assign(team, len(clips), rng)
    n_gold = round(team.gold_share * len(clips)) if team.expert else 0
    gold_clips = set(rng.choice(len(clips), size=n_gold, replace=False).tolist())
    done: dict[str, int] = {}
    plan: list[Planned] = []
    for c, ((dialogue, intended), seated) in enumerate(zip(clips, seats, strict=True)):
        people = [team.members[k] for k in seated]
        if c in gold_clips and team.expert is not None:
            people.append(team.expert)
        for who in people:
            position = done.get(who.name, 0)
            own = np.random.default_rng([seed, 1503, c, *who.name.encode()])
            values, shifts = label_clip(who, dialogue, intended, taxonomy, own, position)
            plan.append(
                Planned(c, who.name, values, tuple(shifts), position, gold=who is team.expert)
            )
            done[who.name] = position + 1
    return _edits_and_deletions(team, plan, clips, taxonomy, rng)


def _edits_and_deletions(
    team: Team,
    plan: list[Planned],
    clips: Sequence[tuple[Sequence[Mapping[str, Any]], Mapping[int, str]]],
    taxonomy: Taxonomy,
    rng: np.random.Generator,
) -> list[Planned]:
    """Mark a share of the members' annotations edited (1-3 turns relabelled, a skipped one
    possibly filled in) and a share deleted; gold is neither."""
    ordinary = [i for i, p in enumerate(plan) if not p.gold and p.values]
    if not ordinary:
        return plan

    def count(share: float) -> int:
        return min(len(ordinary), max(1, round(share * len(ordinary)))) if share > 0 else 0

    picked = rng.permutation(ordinary).tolist()
    deleted = set(picked[: count(team.delete_share)])
    edited = picked[len(deleted) : len(deleted) + count(team.edit_share)]
    by_name = {a.name: a for a in team.members}
    out = list(plan)
    for i in edited:
        p = plan[i]
        dialogue, intended = clips[p.clip]
        who = by_name[p.annotator]
        again, _ = label_clip(
            dataclasses.replace(who, skip_turn=0.0), dialogue, intended, taxonomy, rng, p.position
        )
        turns = rng.choice(len(dialogue), size=min(len(dialogue), int(rng.integers(1, 4))))
        values = {k: dict(v) for k, v in p.values.items()}
        for t in sorted(set(turns.tolist())):
            if again.get(t):
                values[t] = again[t]
        out[i] = dataclasses.replace(p, edited=values)
    for i in deleted:
        out[i] = dataclasses.replace(out[i], deleted=True)
    return out
