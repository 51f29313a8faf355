"""The annotators' scorecard figures (annotate.annotator_scores) against counts made here.

Alphas come from the ``krippendorff`` package, shares and lags from plain loops written
here; the data are small hand-made tables and a seeded random team.
"""

from __future__ import annotations

import krippendorff  # GPL-3.0+: a dev-only test oracle
import numpy as np
import pytest

from annotate import annotator_scores as scores


def test_consensus_by_level() -> None:
    assert scores.consensus([1.0, 1.0, 2.0], "nominal") == 1.0
    assert scores.consensus([1.0, 2.0], "nominal") is None  # a tie has no consensus
    assert scores.consensus([1.0, 2.0, 5.0, 4.0], "ordinal") == 3.0
    assert scores.consensus([1.0, 2.0, 6.0], "interval") == 3.0
    assert scores.consensus([], "nominal") is None


def _team(seed: int = 3) -> tuple[list[str], list[str], list[float]]:
    rng = np.random.default_rng(seed)
    units, annotators, codes = [], [], []
    for u in range(80):
        truth = int(rng.integers(0, 4))
        for a in rng.choice(6, 3, replace=False):
            skill = 0.95 if a != 5 else 0.25
            units.append(f"u{u}")
            annotators.append(f"a{a}")
            codes.append(float(truth if rng.random() < skill else rng.integers(0, 4)))
    return units, annotators, codes


def test_with_the_rest_equals_krippendorff_on_the_others_majority() -> None:
    units, annotators, codes = _team()
    table = scores._by_unit(units, annotators, codes)
    results = {}
    for who in sorted(set(annotators)):
        own = {u: c for u, a, c in zip(units, annotators, codes, strict=True) if a == who}
        rest = scores.others_consensus(table, who, "nominal")
        got = scores.versus(own, rest, "nominal", n_boot=200)
        # by hand: the others' most frequent label; ties left out
        pairs, ties = [], 0
        for u, mine in own.items():
            others = [
                c for uu, a, c in zip(units, annotators, codes, strict=True) if uu == u and a != who
            ]
            values, counts = np.unique(others, return_counts=True)
            top = counts.max()
            if (counts == top).sum() > 1:
                ties += 1
                continue
            pairs.append((mine, values[counts.argmax()]))
        data = np.array(pairs).T
        assert got["units"] == len(pairs) and got["ties"] == ties
        assert got["agreement"] == pytest.approx(np.mean(data[0] == data[1]))
        want = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert got["alpha"] == pytest.approx(want, abs=1e-9)
        assert got["ci_low"] <= got["alpha"] <= got["ci_high"]
        results[who] = got["alpha"]
    assert min(results, key=results.__getitem__) == "a5"  # the careless one


def test_versus_ratings_gives_the_mean_absolute_difference() -> None:
    got = scores.versus({"u1": 1.0, "u2": 4.0, "u3": 3.0}, {"u1": 2.0, "u2": 4.0}, "interval")
    assert got["units"] == 2 and got["mean_abs_difference"] == pytest.approx(0.5)
    nothing = scores.versus({"u1": 1.0}, {"u2": 1.0}, "nominal")
    assert nothing["alpha"] is None and nothing["reason"] == "no unit to compare"


def test_drift_compares_halves_in_labeling_order() -> None:
    order = [f"u{k}" for k in range(30)]
    reference = {u: 1.0 for u in order}
    own = {u: (1.0 if k < 15 else (1.0 if k % 3 == 0 else 2.0)) for k, u in enumerate(order)}
    got = scores.drift(order, own, reference)
    second = np.mean([own[u] == 1.0 for u in order[15:]])
    assert got["first"] == 1.0 and got["second"] == pytest.approx(second)
    assert got["change"] == pytest.approx(second - 1.0)
    short = scores.drift(order[:8], own, reference)
    assert short["change"] is None and "fewer than" in short["reason"]


def test_bias_is_the_total_variation_distance_from_the_pool() -> None:
    mine = ["joy"] * 6 + ["anger"] * 2
    pool = ["joy"] * 10 + ["anger"] * 10 + ["fear"] * 20
    got = scores.bias(mine, pool)
    # |0.75 - 0.25| + |0.25 - 0.25| + |0 - 0.5|, halved
    assert got["tvd"] == pytest.approx(0.5)
    assert got["over_used"] == "joy" and got["over_used_share"] == 0.75
    assert got["pool_share"] == 0.25


def test_shift_lag_is_the_start_behind_the_others_median() -> None:
    spans = [
        ("a", "c1", 10.0),
        ("b", "c1", 10.6),
        ("c", "c1", 11.4),
        ("a", "c1", 30.0),  # nobody near: not matched
        ("b", "c2", 5.0),
        ("c", "c2", 4.0),
    ]
    got = scores.shift_lag(spans, tolerance=2.0)
    assert got["a"]["spans"] == 2 and got["a"]["matched"] == 1
    assert got["a"]["median_lag_s"] == pytest.approx(10.0 - 11.0)
    # b: 10.6 - median(10.0, 11.4) = -0.1; 5.0 - 4.0 = 1.0; median of the two
    assert got["b"]["median_lag_s"] == pytest.approx(np.median([-0.1, 1.0]))
    assert got["c"]["median_lag_s"] == pytest.approx(np.median([11.4 - 10.3, -1.0]))
