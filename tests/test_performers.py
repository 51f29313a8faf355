"""The performers' scorecard (annotate.performers) against counts made here with pandas.

Random scenes: two performers per session, intended emotions that change now and then,
annotators who see some clips and label most turns (right with some probability), rate
authenticity, and mark shift spans near some turns. Every expected figure is counted
here with pandas group-bys and plain loops; the interval is recomputed resample by resample.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from annotate.performers import Span, Turn, performer_scorecard, recognition_interval
from exporters.card_sections import performers as card_section

EMOTIONS = ["neutral", "joy", "sadness", "anger", "fear"]


def _scenes(seed: int = 4) -> tuple[list[Turn], pd.DataFrame, pd.DataFrame, list[Span], dict]:
    rng = np.random.default_rng(seed)
    turns, emotions, ratings, spans, seen = [], [], [], [], {}
    task = 0
    for s in range(3):
        current = {"p1": "neutral", "p2": "neutral"}
        for i in range(24):
            performer = "p1" if i % 2 == 0 else "p2"
            if rng.random() < 0.3:
                current[performer] = str(rng.choice(EMOTIONS))
            if i % 6 == 0:
                task += 1
                seen[task] = {f"a{k}" for k in rng.choice(6, 3, replace=False)}
            aim = None if rng.random() < 0.1 else current[performer]
            turn = Turn(f"s{s}-t{i}", f"s{s}", i, performer, 2.0 * i, 2.0 * i + 1.5, aim, task)
            turns.append(turn)
            for who in sorted(seen[task]):
                if rng.random() < 0.15:
                    continue
                truth = current[performer]
                label = truth if rng.random() < 0.7 else str(rng.choice(EMOTIONS))
                emotions.append((turn.turn_id, who, label))
                if rng.random() < 0.8:
                    ratings.append((turn.turn_id, who, float(rng.integers(1, 6))))
                if rng.random() < 0.2:
                    middle = turn.start + rng.uniform(-1.4, 2.9)
                    spans.append(Span(who, turn.session_id, middle - 0.3, middle + 0.3))
    e = pd.DataFrame(emotions, columns=["turn_id", "annotator", "label"])
    r = pd.DataFrame(ratings, columns=["turn_id", "annotator", "rating"])
    return turns, e, r, spans, seen


def _nested(frame: pd.DataFrame, column: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(row.turn_id, {})[row.annotator] = getattr(row, column)
    return out


@pytest.fixture(scope="module")
def scored() -> tuple[dict, list[Turn], pd.DataFrame, pd.DataFrame, list[Span], dict]:
    turns, e, r, spans, seen = _scenes()
    card = performer_scorecard(
        turns, _nested(e, "label"), _nested(r, "rating"), seen=seen, spans=spans
    )
    return card, turns, e, r, spans, seen


def test_recognition_confusion_and_authenticity_equal_pandas(scored) -> None:
    card, turns, e, r, _, _ = scored
    t = pd.DataFrame([vars(x) for x in turns])
    j = e.merge(t, on="turn_id")
    j = j[j["intended"].notna()]
    j["hit"] = j["label"] == j["intended"]
    groups = j.groupby(["performer", "intended"])
    ratings = r.merge(t, on="turn_id")
    ratings = ratings[ratings["intended"].notna()].groupby(["performer", "intended"])["rating"]
    got = {
        (p["performer"], row["intended"]): row
        for p in card["performers"]
        for row in p["by_intended"]
    }
    assert set(got) == set(groups.groups)
    for key, rows in groups:
        row = got[key]
        assert row["hits"] == int(rows["hit"].sum())
        assert row["judgements"] == len(rows)
        assert row["turns"] == rows["turn_id"].nunique()
        assert row["rate"] == pytest.approx(rows["hit"].mean())
        assert row["perceived"] == rows["label"].value_counts().to_dict()
        assert row["authenticity"]["mean"] == pytest.approx(ratings.get_group(key).mean())
        assert row["authenticity"]["median"] == pytest.approx(ratings.get_group(key).median())
        assert row["authenticity"]["n"] == len(ratings.get_group(key))
    for p in card["performers"]:
        mine = j[j["performer"] == p["performer"]]
        assert p["recognition"]["rate"] == pytest.approx(mine["hit"].mean())
        assert p["recognition"]["judgements"] == len(mine)
        every = e.merge(t, on="turn_id")
        assert (
            p["perceived"]
            == every[every["performer"] == p["performer"]]["label"].value_counts().to_dict()
        )


def test_interval_resamples_turns() -> None:
    hits, totals = [3, 1, 0, 2, 2, 1], [3, 3, 2, 2, 3, 1]
    low, high = recognition_interval(hits, totals, n_boot=400, seed=9)
    rng = np.random.default_rng(9)
    draws = rng.integers(0, 6, size=(400, 6))
    rates = []
    for row in draws:  # one resample at a time, plain sums
        rates.append(sum(hits[k] for k in row) / sum(totals[k] for k in row))
    assert (low, high) == pytest.approx(tuple(np.percentile(rates, [2.5, 97.5])))
    assert low <= sum(hits) / sum(totals) <= high
    assert recognition_interval([1], [2]) == (None, None)


def test_intended_shifts_and_marks_equal_a_plain_count(scored) -> None:
    card, turns, _, _, spans, seen = scored
    want: dict[str, list[int]] = {}
    for performer in ("p1", "p2"):
        counts = [0, 0, 0, 0]
        for session in ("s0", "s1", "s2"):
            mine = [t for t in turns if t.performer == performer and t.session_id == session]
            aims = [t for t in sorted(mine, key=lambda t: t.turn_index) if t.intended]
            for before, turn in itertools.pairwise(aims):
                if before.intended == turn.intended:
                    continue
                who = seen[turn.task_id]
                marked = {
                    s.annotator
                    for s in spans
                    if s.session_id == session
                    and s.annotator in who
                    and turn.start - 1.0 <= (s.start + s.end) / 2 <= turn.end + 1.0
                }
                counts[0] += 1
                counts[1] += len(who)
                counts[2] += len(marked)
                counts[3] += bool(marked)
        want[performer] = counts
    got = {
        p["performer"]: [
            p["shifts"]["intended"],
            p["shifts"]["views"],
            p["shifts"]["marked"],
            p["shifts"]["marked_by_anyone"],
        ]
        for p in card["performers"]
    }
    assert got == want
    assert all(v[0] > 0 and v[2] > 0 for v in want.values())  # the scenes have both


def test_nothing_to_stand_on_is_null_with_a_reason() -> None:
    turns = [Turn("t0", "s", 0, "p1", 0.0, 1.0, None, 1)]
    card = performer_scorecard(turns, {"t0": {"a": "joy"}})
    p = card["performers"][0]
    assert p["recognition"]["rate"] is None and "intended" in p["recognition"]["reason"]
    assert p["shifts"]["rate"] is None and p["shifts"]["reason"]
    assert p["authenticity"] == {"n": 0, "mean": None, "median": None, "reason": "no rating"}


def test_card_section_escapes_task_text() -> None:
    hostile = "p|1<script>x</script>\nnext"
    turns = [
        Turn("t0", "s", 0, hostile, 0.0, 1.0, "joy", 1),
        Turn("t1", "s", 1, hostile, 2.0, 3.0, "a|b", 1),
    ]
    card = performer_scorecard(turns, {"t0": {"a": "joy"}, "t1": {"a": "<b>x</b>"}})
    lines = card_section(card)
    body = "\n".join(lines)
    assert "<script>" not in body and "<b>" not in body
    # every row keeps its table's columns: the pipes of the text are escaped
    widths = []
    for line in lines:
        if line.startswith("| performer"):
            widths.append(line.count("|"))
        elif line.startswith("| p"):
            assert line.replace("\\|", "").count("|") == widths[-1], line
    assert len(widths) == 2
