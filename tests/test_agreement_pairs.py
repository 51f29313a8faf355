"""Pairs of annotators carry the units they compared; means over pairs are weighted by them.

The issue's figure: a team whose mean pairwise alpha is about 0.58, and one more annotator who
labels 2 turns. Averaged pair by pair without weights, that annotator's six two-unit pairs
drag the mean to about 0.42; weighted by units compared, with pairs under the minimum overlap
left out, the mean stays the team's. Every pair's alpha is recomputed here, one pair at a
time, with the ``krippendorff`` package.
"""

from __future__ import annotations

from types import SimpleNamespace

import krippendorff  # GPL-3.0+: a dev-only test oracle
import numpy as np
import pytest

from annotate.agreement import (
    MIN_OVERLAP,
    cohen_kappa,
    lin_ccc,
    pair_units,
    pairwise_alpha,
    pairwise_statistic,
)
from annotate.agreement.pairboot import resampled_pair_means
from api import dashboard, reports

TEAM, UNITS = 6, 60


def simulated_team(seed: int = 2026, skill: float = 0.8) -> np.ndarray:
    """6 annotators who label 80% of 60 turns (right with probability ``skill``, else a
    random one of 5 labels), and a 7th who labels turns 0 and 1, both wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, UNITS)
    data = np.full((TEAM + 1, UNITS), np.nan)
    for a in range(TEAM):
        for u in range(UNITS):
            if rng.random() < 0.8:
                data[a, u] = truth[u] if rng.random() < skill else rng.integers(0, 5)
    data[TEAM, [0, 1]] = (truth[[0, 1]] + 1) % 5
    return data


def oracle_pairs(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alpha (krippendorff package) and shared units of every pair, one pair at a time."""
    m = data.shape[0]
    alpha, units = np.full((m, m), np.nan), np.zeros((m, m), dtype=int)
    for i in range(m):
        for j in range(m):
            shared = ~np.isnan(data[i]) & ~np.isnan(data[j])
            units[i, j] = int(shared.sum())
            if i == j or shared.sum() == 0:
                continue
            pair = data[[i, j]][:, shared]
            if np.unique(pair).size < 2:
                continue  # no variation: alpha undefined for this pair
            alpha[i, j] = krippendorff.alpha(reliability_data=pair, level_of_measurement="nominal")
    return alpha, units


def test_a_two_turn_annotator_no_longer_drags_the_mean() -> None:
    data = simulated_team()
    alpha, units = oracle_pairs(data)
    upper = np.triu(np.ones_like(units, dtype=bool), k=1) & np.isfinite(alpha)
    team_only = upper.copy()
    team_only[:, TEAM] = False
    unweighted_team = alpha[team_only].mean()
    unweighted_all = alpha[upper].mean()
    # the figure of the issue: ~0.58 without the 2-turn annotator, far lower with them
    assert unweighted_team == pytest.approx(0.585, abs=0.01)
    assert unweighted_all < unweighted_team - 0.15

    pairs = pairwise_alpha(data)
    assert np.array_equal(pairs.units, units)
    finite = np.isfinite(alpha)
    assert np.array_equal(np.isfinite(pairs.values), finite)
    assert pairs.values[finite] == pytest.approx(alpha[finite], abs=1e-12)
    counted = upper & (units >= MIN_OVERLAP)
    expected = float(np.sum(alpha[counted] * units[counted]) / units[counted].sum())
    assert pairs.mean() == pytest.approx(expected, abs=1e-12)
    # the short annotator's pairs are shown but not averaged: the mean is the team's alone
    assert pairwise_alpha(data[:TEAM]).mean() == pytest.approx(pairs.mean(), abs=1e-12)
    assert pairs.mean() == pytest.approx(unweighted_team, abs=0.03)
    tally = pairs.tally()
    assert tally == {"pairs": 21, "counted": 15, "below_min_overlap": 6, "undefined": 0}
    assert pairs.mean(rater=TEAM) is None
    # per annotator, weighted over that annotator's counted pairs
    for a in range(TEAM):
        row = counted[a] | counted[:, a]
        want = np.sum(alpha[a][row] * units[a][row]) / units[a][row].sum()
        assert pairs.mean(rater=a) == pytest.approx(want, abs=1e-12)


def test_min_overlap_is_a_parameter() -> None:
    data = simulated_team()
    everything = pairwise_alpha(data, min_overlap=1)
    assert everything.tally()["counted"] == 21
    assert everything.mean() < pairwise_alpha(data).mean()
    with pytest.raises(ValueError, match="min_overlap must be a positive integer; got 0"):
        pairwise_alpha(data, min_overlap=0)


def test_pair_units_counts_shared_units() -> None:
    data = simulated_team()
    present = ~np.isnan(data)
    for i in range(TEAM + 1):
        for j in range(TEAM + 1):
            assert pair_units(data)[i, j] == np.count_nonzero(present[i] & present[j])


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_resampled_kappa_means_equal_recomputing_each_resample(weights: str | None) -> None:
    data = simulated_team()
    domain = np.arange(5.0)
    rng = np.random.default_rng(4)
    draws = rng.multinomial(UNITS, np.full(UNITS, 1 / UNITS), size=6)
    fast = resampled_pair_means(
        data, draws, "cohen_kappa", value_domain=domain, weights=weights, min_overlap=10
    )
    for w, got in zip(draws, fast, strict=True):
        resampled = np.repeat(data, w, axis=1)
        slow = pairwise_statistic(
            resampled, lambda p: cohen_kappa(p[0], p[1], weights, value_domain=domain)
        ).mean()
        assert got == pytest.approx(slow, abs=1e-12)


def test_resampled_ccc_means_equal_recomputing_each_resample() -> None:
    rng = np.random.default_rng(5)
    data = np.where(rng.random((5, 40)) < 0.7, rng.normal(3, 1, (5, 40)), np.nan)
    draws = rng.multinomial(40, np.full(40, 1 / 40), size=6)
    fast = resampled_pair_means(data, draws, "lin_ccc", min_overlap=10)
    for w, got in zip(draws, fast, strict=True):
        slow = pairwise_statistic(np.repeat(data, w, axis=1), lambda p: lin_ccc(p[0], p[1]))
        assert got == pytest.approx(slow.mean(), abs=1e-12)


class _Frame(SimpleNamespace):
    """What reports.pairwise and the dashboard's heatmap read from a frame."""

    def __len__(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.data)))

    def matrix(self) -> tuple[np.ndarray, list, list]:
        return self.data, self.names, list(range(self.data.shape[1]))


def test_report_and_heatmap_show_counts_in_one_order() -> None:
    data = simulated_team()
    names = [f"ann-{c}" for c in "gfedcba"]  # not sorted: the order is the matrix's own
    frame = _Frame(data=data, names=names, dim=SimpleNamespace(name="emotion", level="nominal"))
    report = reports.pairwise(frame)
    assert report["annotators"] == names
    assert report["units"] == pair_units(data).tolist()
    assert report["min_overlap"] == MIN_OVERLAP and report["below_min_overlap"] == 6
    assert report["mean"] == pytest.approx(pairwise_alpha(data).mean(), abs=1e-12)
    figure = dashboard._pairwise(frame, {}).to_plotly_json()
    trace, layout = figure["data"][0], figure["layout"]
    assert list(trace["x"]) == list(trace["y"]) == names
    assert list(layout["xaxis"]["categoryarray"]) == list(layout["yaxis"]["categoryarray"])
    assert layout["yaxis"]["autorange"] == "reversed"  # row i is column i: diagonal from top left
    hover = trace["customdata"]
    assert hover[0][TEAM] == f"2 units compared (under {MIN_OVERLAP}: not in means)"
    assert hover[0][1] == f"{pair_units(data)[0, 1]} units compared"
    assert "%{customdata}" in trace["hovertemplate"]


def test_annotator_breakdown_weights_pairs_and_counts_gold_units() -> None:
    data = simulated_team()
    frame = reports.Frame.__new__(reports.Frame)
    rows = [(a, u, data[a, u]) for a in range(TEAM + 1) for u in range(UNITS)]
    rows = [r for r in rows if not np.isnan(r[2])]
    gold_units = range(0, UNITS, 3)  # an expert's answer on every third turn
    truth = np.nanmedian(data[:TEAM], axis=0)
    rows += [("expert", u, float(np.round(truth[u]))) for u in gold_units]
    frame.turn = [f"t{u}" for _, u, _ in rows]
    frame.annotator = [str(a) for a, _, _ in rows]
    frame.code = [float(v) for _, _, v in rows]
    frame.value = [str(v) for _, _, v in rows]
    frame.gold = [a == "expert" for a, _, _ in rows]
    frame.dim = SimpleNamespace(name="emotion", level="nominal")
    people = {r["key"]: r for r in reports.annotators(frame)}
    expert = np.full(UNITS, np.nan)
    expert[list(gold_units)] = np.round(truth[list(gold_units)])
    alpha, units = oracle_pairs(np.vstack([data, expert]))  # the gold answers are a rater too
    for a in range(TEAM):
        row = (units[a] >= MIN_OVERLAP) & np.isfinite(alpha[a])
        want = np.sum(alpha[a][row] * units[a][row]) / units[a][row].sum()
        assert people[str(a)]["alpha_pairwise_mean"] == pytest.approx(want, abs=1e-12)
        assert people[str(a)]["pairs_counted"] == int(row.sum())
        shared = sum(1 for u in gold_units if not np.isnan(data[a, u]))
        assert people[str(a)]["units_vs_gold"] == shared
    assert people[str(TEAM)]["alpha_pairwise_mean"] is None  # only two-unit pairs
    assert people[str(TEAM)]["pairs_counted"] == 0
