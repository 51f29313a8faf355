"""The one bootstrap: the same data give the same interval, whatever holds them.

Alpha from a matrix, from the same matrix with raters and units shuffled, and from unit
profiles gives one interval; dropped resamples are counted; Fleiss' kappa, Gwet's AC1 and
Cohen's kappa get intervals, and Fleiss' kappa a reason when units have unequal ratings.
Point values are checked against the ``krippendorff`` package and statsmodels.
"""

from __future__ import annotations

import krippendorff  # GPL-3.0+: a dev-only test oracle
import numpy as np
import pytest
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from annotate.agreement import (
    N_BOOT,
    SEED,
    alpha_interval,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    profile_interval,
    profiles_of,
)
from annotate.agreement.intervals import draws
from annotate.agreement.kappa import fleiss_kappa_resampled, gwet_ac1_resampled
from annotate.csv_agreement import LongData, coefficients


def team(seed: int, raters: int = 9, units: int = 200, per_unit: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, units)
    data = np.full((raters, units), np.nan)
    for u in range(units):
        for r in rng.choice(raters, per_unit, replace=False):
            data[r, u] = truth[u] if rng.random() < 0.7 else rng.integers(1, 6)
    return data


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_same_interval_from_matrix_shuffled_matrix_and_profiles(level: str) -> None:
    data = team(1)
    rng = np.random.default_rng(2)
    shuffled = data[rng.permutation(data.shape[0])][:, rng.permutation(data.shape[1])]
    first = alpha_interval(data, level)
    assert first == alpha_interval(shuffled, level) == alpha_interval(profiles_of(data), level)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert first.estimate == pytest.approx(expected, abs=1e-12)
    assert first.low < first.estimate < first.high
    assert (first.n_boot, first.seed, first.dropped, first.confidence) == (N_BOOT, SEED, 0, 0.95)


def test_interval_equals_recomputing_alpha_on_each_resample() -> None:
    """The resampled coincidences equal alpha recomputed from scratch on each resample."""
    data = team(3, units=60)
    profiles = profiles_of(data)
    keys = sorted(profiles, key=lambda k: (len(k), k))
    sizes = np.array([profiles[k] for k in keys], dtype=float)
    stats = []
    for chunk in draws(sizes, 200, SEED):
        for counts in chunk:
            columns = [k for k, n in zip(keys, counts, strict=True) for _ in range(n)]
            rows = max(len(k) for k in columns)
            matrix = np.full((rows, len(columns)), np.nan)
            for j, k in enumerate(columns):
                matrix[: len(k), j] = k
            alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
            stats.append(alpha)
    interval = alpha_interval(data, n_boot=200)
    assert [interval.low, interval.high] == pytest.approx(
        np.quantile(stats, [0.025, 0.975]), abs=1e-12
    )


def test_dropped_resamples_are_counted() -> None:
    # few pairable units, one of them the only disagreement: some resamples lack spread
    data = np.array([[1, 1, 1, 2, 1], [1, 1, 1, 1, np.nan]])
    interval = alpha_interval(data, n_boot=400)
    assert interval.estimate == pytest.approx(krippendorff_alpha(data), abs=1e-12)
    assert 0 < interval.dropped < 200 and interval.low is not None
    as_json = interval.as_dict("alpha")
    assert as_json["dropped"] == interval.dropped and as_json["n_boot"] == 400
    # undefined on most resamples: no bounds, the count and the reason
    rare = np.array([[1] * 29 + [2, 2], [1] * 29 + [2, 2]])

    def as_drawn(d: np.ndarray) -> float:
        if np.count_nonzero(d == 2) != 4:  # defined only with the two units rated 2 once each
            raise ValueError("undefined")
        return 1.0

    sparse = profile_interval(as_drawn, rare, n_boot=200)
    assert sparse.low is None and sparse.high is None and sparse.dropped > 100
    assert f"undefined on {sparse.dropped} of 200 resamples" in sparse.reason
    # undefined on the data: the statistic's own reason
    assert "no unit has two or more values" in alpha_interval([[1, np.nan], [np.nan, 2]]).reason


def test_fleiss_kappa_interval_and_reason() -> None:
    data = team(4, raters=6, per_unit=4)
    interval = profile_interval(fleiss_kappa, data, n_boot=300)
    codes = np.array([col[~np.isnan(col)] for col in data.T], dtype=int)
    expected = sm_fleiss(aggregate_raters(codes)[0])
    assert interval.estimate == pytest.approx(expected, abs=1e-12)
    assert interval.low < interval.estimate < interval.high and interval.dropped == 0
    uneven = team(5, raters=9, per_unit=3)
    uneven[0, ~np.isnan(uneven[0])] = np.nan  # some units now have 2 ratings
    result = profile_interval(fleiss_kappa, uneven).as_dict()
    assert result["estimate"] is None
    assert result["reason"].startswith(
        "units have 2 to 3 ratings; Fleiss' kappa needs the same number per unit"
    )


def test_gwet_ac1_interval() -> None:
    data = team(6)
    interval = profile_interval(gwet_ac1, data, n_boot=300)
    assert interval.estimate == pytest.approx(gwet_ac1(data), abs=1e-12)
    assert interval.low < interval.estimate < interval.high


def test_csv_coefficients_carry_intervals_and_reasons() -> None:
    data = team(7)
    long = LongData()
    for r, u in zip(*np.nonzero(~np.isnan(data)), strict=True):
        long.units.append(f"u{u}")
        long.annotators.append(f"a{r}")
        long.values.append(str(int(data[r, u])))
    figures = coefficients(long, "nominal", n_boot=200)
    assert figures["n_boot"] == 200 and figures["min_overlap"] == 10
    for name in ("krippendorff_alpha", "gwet_ac1", "cohen_kappa_mean"):
        assert figures[f"{name}_ci_low"] < figures[name] < figures[f"{name}_ci_high"]
        assert figures[f"{name}_dropped"] == 0
    assert figures["fleiss_kappa"] is not None  # every unit has 3 ratings here
    assert figures["cohen_kappa_mean_pairs_counted"] == 36
    ordinal = coefficients(long, "ordinal", n_boot=100)
    assert ordinal["cohen_kappa_linear_mean_ci_low"] is not None
    assert ordinal["cohen_kappa_quadratic_mean"] is not None
    interval = coefficients(long, "interval", n_boot=100)
    assert (interval["icc_design"], interval["icc_form"]) == ("incomplete", "ICC1")
    assert interval["icc_single_ci_low"] < interval["icc_single"] < interval["icc_single_ci_high"]
    assert interval["icc_ratings_per_unit"] == pytest.approx(3.0)


@pytest.mark.parametrize("categories", [None, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
def test_fleiss_and_ac1_on_resamples_equal_recomputing(categories: list[float] | None) -> None:
    rng = np.random.default_rng(10)
    equal = team(11, raters=6, units=40, per_unit=3)
    uneven = team(12, units=40)
    uneven[0, :20] = np.nan  # some units now rated once or twice
    draws_ = rng.multinomial(40, np.full(40, 1 / 40), size=8)
    fleiss = fleiss_kappa_resampled(equal, draws_)
    ac1 = gwet_ac1_resampled(uneven, draws_, categories)
    for w, f, a in zip(draws_, fleiss, ac1, strict=True):
        assert f == pytest.approx(sm_fleiss(aggregate_raters(_columns(equal, w))[0]), abs=1e-12)
        assert a == pytest.approx(gwet_ac1(np.repeat(uneven, w, axis=1), categories), abs=1e-12)


def _columns(data: np.ndarray, w: np.ndarray) -> np.ndarray:
    repeated = np.repeat(data, w, axis=1)
    return np.array([col[~np.isnan(col)] for col in repeated.T], dtype=int)
