"""The simulated team: seeded, a pool with an overlap, partial, biased, drifting, careless."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from annotate.simulate import (
    Annotator,
    Team,
    assign,
    cooperative_team,
    label_clip,
    plan_team,
    realistic_team,
    simulate_values,
)
from schemas.taxonomy import load_taxonomy

TAX = load_taxonomy()
CATEGORIES = list(TAX.emotion.values)


def _clips(n_clips: int, n_turns: int = 8, seed: int = 0) -> list[tuple[list[dict], dict]]:
    rng = np.random.default_rng(seed)
    clips = []
    for c in range(n_clips):
        lines = [
            {
                "turn_index": c * n_turns + i,
                "performer": "p01" if i % 2 == 0 else "p02",
                "start": 2.0 * i,
                "end": 2.0 * i + 1.5,
                "text": f"line {i}",
            }
            for i in range(n_turns)
        ]
        intended = {line["turn_index"]: str(rng.choice(CATEGORIES)) for line in lines}
        clips.append((lines, intended))
    return clips


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    team, clips = realistic_team(TAX, seed=4), _clips(12)
    assert plan_team(team, clips, TAX, seed=9) == plan_team(team, clips, TAX, seed=9)
    assert plan_team(team, clips, TAX, seed=9) != plan_team(team, clips, TAX, seed=10)
    assert realistic_team(TAX, seed=4) == realistic_team(TAX, seed=4)


def test_a_pool_larger_than_the_overlap_shares_the_clips_evenly() -> None:
    team = realistic_team(TAX, n=9, overlap=3, seed=1, part_timer=False)
    seats = assign(team, 30, np.random.default_rng(0))
    assert all(len(s) == len(set(s)) == 3 for s in seats)
    load = Counter(k for s in seats for k in s)
    assert set(load) == set(range(9)) and max(load.values()) - min(load.values()) <= 1


def test_a_part_timer_stops_at_their_capacity() -> None:
    team = realistic_team(TAX, seed=1)
    part = next(a for a in team.members if a.capacity is not None)
    plan = plan_team(team, _clips(20), TAX, seed=2)
    assert sum(p.annotator == part.name for p in plan) == part.capacity == 1
    seats = Counter(p.clip for p in plan if not p.gold)
    assert set(seats.values()) == {3}


def test_gold_edits_and_deletions() -> None:
    team, clips = realistic_team(TAX, seed=3), _clips(20)
    plan = plan_team(team, clips, TAX, seed=3)
    gold = [p for p in plan if p.gold]
    assert len(gold) == round(0.25 * 20) and {p.annotator for p in gold} == {"expert"}
    assert len({p.clip for p in gold}) == len(gold)
    ordinary = [p for p in plan if not p.gold]
    assert sum(p.deleted for p in ordinary) == max(1, round(0.05 * len(ordinary)))
    edited = [p for p in ordinary if p.edited is not None]
    assert len(edited) == max(1, round(0.15 * len(ordinary)))
    assert all(p.final is None for p in plan if p.deleted)
    assert any(p.edited != p.values for p in edited)


def test_partial_labels_skip_turns_and_dimensions() -> None:
    who = Annotator("a", skip_turn=0.3, skip_dimension=0.3)
    lines, intended = _clips(1, n_turns=400)[0]
    values, _ = label_clip(who, lines, intended, TAX, np.random.default_rng(0))
    assert 0.6 < len(values) / 400 < 0.8
    dims = [len(v) for v in values.values()]
    assert min(dims) >= 1 and np.mean(dims) < 0.8 * len(TAX.dimensions)


def _accuracy(who: Annotator, position: int = 0, n: int = 2000) -> float:
    lines, intended = _clips(1, n_turns=n, seed=5)[0]
    values, _ = label_clip(who, lines, intended, TAX, np.random.default_rng(1), position)
    hits = [values[i]["emotion"] == intended[lines[i]["turn_index"]] for i in values]
    return float(np.mean(hits))


def test_skill_drift_and_the_careless_member() -> None:
    assert _accuracy(Annotator("a", accuracy=0.8)) == pytest.approx(0.8, abs=0.03)
    drifting = Annotator("d", accuracy=0.9, decay=0.08)
    assert _accuracy(drifting, 0) == pytest.approx(0.9, abs=0.03)
    assert _accuracy(drifting, 5) == pytest.approx(0.5, abs=0.04)
    careless = Annotator("c", careless=True)
    assert _accuracy(careless) == pytest.approx(1 / len(CATEGORIES), abs=0.03)


def test_a_favourite_label_takes_the_mistakes() -> None:
    who = Annotator("f", accuracy=0.5, favourite="anger", lean=0.8)
    lines, _ = _clips(1, n_turns=2000)[0]
    intended = {line["turn_index"]: "joy" for line in lines}
    values, _ = label_clip(who, lines, intended, TAX, np.random.default_rng(2))
    counts = Counter(v["emotion"] for v in values.values())
    wrong = sum(counts.values()) - counts["joy"]
    assert counts["anger"] / wrong == pytest.approx(0.8 + 0.2 / 6, abs=0.04)


def test_a_rating_offset_moves_the_ratings() -> None:
    lines, intended = _clips(1, n_turns=500, seed=3)[0]
    means = []
    for offset in (-1.0, 0.0, 1.0):
        who = Annotator("o", accuracy=1.0, offset=offset, spread=0.3)
        values, _ = label_clip(who, lines, intended, TAX, np.random.default_rng(4))
        means.append(np.mean([v["arousal"] for v in values.values()]))
    assert means[0] < means[1] - 0.5 and means[2] > means[1] + 0.5


def test_the_cooperative_team_labels_everything() -> None:
    team, clips = cooperative_team(3), _clips(4)
    plan = plan_team(team, clips, TAX, seed=0)
    assert len(plan) == 12 and not any(p.deleted or p.edited or p.gold for p in plan)
    assert all(len(p.values) == 8 for p in plan)
    assert all(len(v) == len(TAX.dimensions) for p in plan for v in p.values.values())


def test_the_demo_entry_point_is_unchanged() -> None:
    lines, intended = _clips(1)[0]
    values, shifts = simulate_values(lines, intended, TAX, np.random.default_rng(7), noise=0.0)
    assert [values[i]["emotion"] for i in range(8)] == [
        intended[line["turn_index"]] for line in lines
    ]
    assert isinstance(shifts, list)


def test_bad_teams_are_refused_with_the_reason() -> None:
    member = Annotator("a")
    with pytest.raises(ValueError, match="overlap is 2; expected 1 to 1"):
        Team((member,), overlap=2)
    with pytest.raises(ValueError, match="annotator names repeat"):
        Team((member, dataclasses.replace(member)), overlap=1)
    with pytest.raises(ValueError, match="at least 4 members"):
        realistic_team(TAX, n=3)
