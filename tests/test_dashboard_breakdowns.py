"""The dashboard's breakdowns (alpha by session, speaker and label), its shift figure and the
unit counts in the annotator matrix, against a recount made here.

A pooled team's webhook payloads go through the store's own path (``api.store.apply_event``)
into a fresh SQLite store; the page is rendered and the figures it carries are read back
from its JSON. Every expected alpha is computed with the ``krippendorff`` package from the
values this test gave, grouped here; every count is counted here.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import krippendorff  # GPL-3.0+: a dev-only test oracle
import numpy as np
import pytest
from sqlmodel import Session

from api import dashboard, store
from api.db import init_db, make_engine
from schemas.taxonomy import load_taxonomy
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
EMOTIONS = list(TAX.emotion.values)
POOL, OVERLAP, CLIPS, TURNS = 6, 3, 8, 6


def _team(seed: int = 7) -> tuple[list[dict], list[dict], dict[int, int]]:
    """Payloads, every emotion given (session, speaker, unit, annotator, label) and the
    shift spans marked per task."""
    rng = np.random.default_rng(seed)
    events, given, spans = [], [], Counter()
    ids = 0
    for clip in range(CLIPS):
        session = f"s{clip % 3}"
        lines = dialogue(TURNS, session_id=session, clip=clip)
        t = task(clip + 1, lines, session_id=session)
        truth = rng.integers(0, len(EMOTIONS), TURNS)
        for annotator in rng.choice(POOL, OVERLAP, replace=False):
            values = {}
            for turn in range(TURNS):
                if rng.random() < 0.2:
                    continue
                label = int(truth[turn] if rng.random() < 0.7 else rng.integers(0, 4))
                values[turn] = {"emotion": EMOTIONS[label]}
                given.append(
                    {
                        "session": session,
                        "speaker": lines[turn]["performer"],
                        "unit": lines[turn]["turn_id"],
                        "annotator": int(annotator),
                        "label": EMOTIONS[label],
                    }
                )
            shifts = [
                {"start": 2.0 * k + 0.2, "end": 2.0 * k + 1.0, "from": "neutral", "to": "joy"}
                for k in range(int(rng.integers(0, 3)))
            ]
            spans[clip + 1] += len(shifts)
            ids += 1
            events.append(annotation_event(TAX, ids, t, int(annotator) + 1, values, shifts=shifts))
    return events, given, dict(spans)


def _alpha(rows: list[dict], value=lambda r: r["label"]) -> float | None:
    """Nominal alpha of ``rows`` by the krippendorff package (None without a pairable unit)."""
    units = sorted({r["unit"] for r in rows})
    annotators = sorted({r["annotator"] for r in rows})
    codes = {label: i for i, label in enumerate(sorted({value(r) for r in rows}))}
    data = np.full((len(annotators), len(units)), np.nan)
    for r in rows:
        data[annotators.index(r["annotator"]), units.index(r["unit"])] = codes[value(r)]
    paired = (~np.isnan(data)).sum(axis=0) >= 2
    if not paired.any() or np.unique(data[:, paired][~np.isnan(data[:, paired])]).size < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict], dict[int, int]]:
    """The figures of the rendered page, what the team gave, and the spans per task."""
    events, given, spans = _team()
    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('dash')) / 'store.db'}")
    init_db(engine)
    try:
        with Session(engine) as db:
            for payload in events:
                store.apply_event(db, payload, TAX)
            html = dashboard.render(db, 1, TAX, threshold=0.5, ls_url="http://ls.test")
    finally:
        engine.dispose()
    found = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html)
    assert found
    return json.loads(found.group(1))["figures"], given, spans


@pytest.mark.parametrize("by", ["session", "speaker"])
def test_alpha_by_session_and_speaker_equals_the_recount(page, by: str) -> None:
    figures, given, _ = page
    trace = figures["breakdowns"]["data"][0 if by == "session" else 1]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in given:
        groups[r[by]].append(r)
    assert list(trace["x"]) == sorted(groups)
    for key, shown, note in zip(trace["x"], trace["y"], trace["customdata"], strict=True):
        expected = _alpha(groups[key])
        assert shown == pytest.approx(expected, abs=1e-9), key
        units = len({r["unit"] for r in groups[key]})
        assert note.startswith(f"{units} turns, {len(groups[key])} judgements"), note


def test_alpha_by_label_is_this_label_or_not(page) -> None:
    figures, given, _ = page
    trace = figures["breakdowns"]["data"][2]
    assert list(trace["x"]) == EMOTIONS
    used = Counter(r["label"] for r in given)
    for label, shown, note in zip(trace["x"], trace["y"], trace["customdata"], strict=True):
        assert note.startswith(f"{used[label]} judgements"), (label, note)
        if not used[label]:
            assert shown is None and "no alpha" in note
            continue
        expected = _alpha(given, value=lambda r, lab=label: r["label"] == lab)
        assert shown == pytest.approx(expected, abs=1e-9), label


def test_shift_figure_counts_the_spans_of_each_clip(page) -> None:
    figures, _, spans = page
    bars, marks = figures["shifts"]["data"]
    counted = {f"s{(t - 1) % 3}-c{t:03d}": n for t, n in spans.items()}
    assert dict(zip(marks["x"], marks["y"], strict=True)) == counted
    assert list(bars["x"]) == list(marks["x"])
    # a clip where nobody marked a span has no unitizing alpha to show
    for clip, alpha in zip(bars["x"], bars["y"], strict=True):
        if counted[clip] == 0:
            assert alpha is None, clip


def test_annotator_matrix_cells_show_the_units_each_pair_compared(page) -> None:
    figures, given, _ = page
    heat = figures["pairwise"]["data"][0]
    units = defaultdict(set)
    for r in given:
        units[f"user {r['annotator'] + 1}"].add(r["unit"])  # no names pulled yet
    names = list(heat["x"])
    assert heat["texttemplate"] == "%{text}"
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert heat["text"][i][j] == len(units[a] & units[b]), (a, b)
