"""One alpha, one interval: the dashboard, ``/agreement/summary`` and the data card agree.

A pooled team (9 annotators, 3 per clip, turns and dimensions skipped) labels through the
real service over HTTP; the summary endpoint's JSON, the dashboard page's data and the data
card of an export of the same store must carry the same alpha and the same 95% interval, to
the last digit. The alpha itself is checked against the ``krippendorff`` package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import krippendorff  # GPL-3.0+: a dev-only test oracle
import numpy as np
import pytest
from sqlmodel import Session

from annotate import stack
from annotate.config import load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER
from api import dashboard
from api.db import make_engine
from exporters import ExportOptions, export_dataset, read_jsonl
from exporters.card import CardStats
from schemas.taxonomy import load_taxonomy
from tests.conftest import write_config
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
EMOTIONS = list(TAX.emotion.values)
POOL, OVERLAP, CLIPS, TURNS = 9, 3, 14, 8
INTERVAL_KEYS = ("alpha", "ci_low", "ci_high", "n_boot", "dropped", "seed")


def pooled_team(seed: int = 15) -> tuple[list[dict], dict[str, dict[tuple[int, int], float]]]:
    """Webhook payloads of a pooled team, and every value given per dimension (the recount).

    Each clip gets 3 of the 9 annotators; each skips a turn with probability 0.15 and the
    valence of a turn with probability 0.2; labels follow the clip's truth with a per-annotator
    skill.
    """
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.45, 0.9, POOL)
    events, given = [], {"emotion": {}, "valence": {}}
    ids = 0
    for clip in range(CLIPS):
        t = task(clip + 1, dialogue(TURNS, session_id=f"s{clip % 4}", clip=clip))
        truth = rng.integers(0, len(EMOTIONS), TURNS)
        valence = rng.integers(1, 6, TURNS)
        for annotator in rng.choice(POOL, OVERLAP, replace=False):
            values: dict[int, dict[str, str | int]] = {}
            for turn in range(TURNS):
                if rng.random() < 0.15:
                    continue
                label = truth[turn] if rng.random() < skill[annotator] else rng.integers(0, 5)
                values[turn] = {"emotion": EMOTIONS[int(label)]}
                given["emotion"][(int(annotator), clip * TURNS + turn)] = float(label)
                if rng.random() >= 0.2:
                    v = int(np.clip(valence[turn] + rng.integers(-1, 2), 1, 5))
                    values[turn]["valence"] = v
                    given["valence"][(int(annotator), clip * TURNS + turn)] = float(v)
            ids += 1
            events.append(annotation_event(TAX, ids, t, int(annotator) + 1, values))
    return events, given


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(webhook client, API client) of a real service started for this test."""
    config = write_config(
        tmp_path,
        service={
            "database_url": database_url,
            "webhook_secret": "s3cret",
            "api_key": "k3y",
            "reconcile_seconds": 0,
        },
    )
    settings = with_local_secrets(load_settings(config))
    stack.start_service(settings, config)
    url = settings.service.url
    hooks = httpx.Client(base_url=url, headers={SECRET_HEADER: "s3cret"}, timeout=30)
    reads = httpx.Client(base_url=url, headers={"X-API-Key": "k3y"}, timeout=120)
    try:
        yield hooks, reads
    finally:
        hooks.close()
        reads.close()
        stack.stop(settings, stack.SERVICE)


def _page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html)
    assert found, "the dashboard page carries its data"
    return json.loads(found.group(1))


def test_dashboard_summary_and_card_show_one_interval(
    served, database_url: str, tmp_path: Path
) -> None:
    hooks, reads = served
    events, given = pooled_team()
    for payload in events:
        assert hooks.post("/webhooks/label-studio", json=payload).status_code == 200
    summaries = {}
    for dim in ("emotion", "valence"):
        answer = reads.get("/projects/1/agreement/summary", params={"dimension": dim})
        assert answer.status_code == 200, answer.text
        summaries[dim] = answer.json()
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            page = dashboard.render(db, 1, TAX, threshold=0.5, ls_url="http://ls.test")
            report = export_dataset(db, 1, TAX, tmp_path / "out", options=ExportOptions(salt="x"))
    finally:
        engine.dispose()
    shown = _page_data(page)["intervals"]
    card = CardStats(TAX)
    for row in read_jsonl(report.files["jsonl"]):
        card.add(row)
    carded = card.agreement()
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    for dim, level in (("emotion", "nominal"), ("valence", "interval")):
        figures = summaries[dim]
        # the alpha: an independent recount from the values the team gave
        keys = sorted({u for _, u in given[dim]})
        matrix = np.full((POOL, len(keys)), np.nan)
        column = {u: i for i, u in enumerate(keys)}
        for (annotator, unit), value in given[dim].items():
            matrix[annotator, column[unit]] = value
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
        assert figures["alpha"] == pytest.approx(expected, abs=1e-12)
        assert figures["ci_low"] < figures["alpha"] < figures["ci_high"]
        assert figures["n_boot"] == 1000 and figures["seed"] == 0 and figures["dropped"] == 0
        # one interval: identical in the three places
        for place in (shown[dim], carded[dim]):
            assert {k: place[k] for k in INTERVAL_KEYS} == {k: figures[k] for k in INTERVAL_KEYS}
        row = (
            f"| {dim} | {level} | {figures['alpha']:.3f} | {figures['ci_low']:.3f} | "
            f"{figures['ci_high']:.3f} |"
        )
        assert row in readme
    # the pool design: no turn has all 9 annotators, so the valence ICC is the one-way form
    icc = summaries["valence"]["icc"]
    assert icc["design"] == "incomplete" and icc["form"] == "ICC1"
    assert icc["single"]["icc"] is not None and icc["single"]["ci_low"] is not None
    assert icc["raters_per_unit"]["max"] <= OVERLAP
    # Fleiss' kappa says why it is not given
    assert (
        "Fleiss' kappa needs the same number per unit"
        in (summaries["emotion"]["fleiss_kappa"]["reason"])
    )
    assert summaries["emotion"]["gwet_ac1"]["ci_low"] is not None
    assert summaries["emotion"]["cohen_kappa_pairwise"]["min_overlap"] == 10
