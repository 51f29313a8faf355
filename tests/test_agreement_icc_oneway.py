"""One-way ICC for incomplete designs, checked against independent computations.

Oracles: the published Shrout & Fleiss (1979) table (balanced), pingouin (balanced: the
ICC(1,1) and ICC(1,k) rows with their F-based 95% intervals), and for unbalanced data a
one-way ANOVA by statsmodels (``anova_lm`` of ``score ~ C(unit)``) with ``k0`` written out
here from its textbook formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy.stats import f as f_dist
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from annotate.agreement import icc, icc_oneway, icc_oneway_f_ci, icc_report
from annotate.agreement.continuous import _oneway_resampled
from annotate.agreement.intervals import unit_interval

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; Table 4: ICC(1,1) = .17, ICC(1,4) = .44
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
).T


def long(matrix: np.ndarray) -> pd.DataFrame:
    rows = [
        (f"u{u}", f"r{r}", matrix[r, u])
        for r in range(matrix.shape[0])
        for u in range(matrix.shape[1])
        if not np.isnan(matrix[r, u])
    ]
    return pd.DataFrame(rows, columns=["unit", "rater", "score"])


def pool(rng: np.random.Generator, raters: int, units: int, low: int, high: int) -> np.ndarray:
    """A pool design: each unit rated by ``low..high`` raters drawn from ``raters``."""
    truth = rng.normal(3.0, 1.0, units)
    out = np.full((raters, units), np.nan)
    for u in range(units):
        who = rng.choice(raters, rng.integers(low, high + 1), replace=False)
        out[who, u] = np.round(truth[u] + rng.normal(0.0, 0.8, who.size), 1)
    return out


def test_shrout_fleiss_1979_published_values() -> None:
    assert round(icc_oneway(SHROUT_FLEISS, "ICC1"), 2) == 0.17
    assert round(icc_oneway(SHROUT_FLEISS, "ICC1k"), 2) == 0.44


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # pingouin on pandas 3
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_balanced_equals_pingouin_with_f_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = pool(rng, raters=4, units=30, low=4, high=4)
    table = pg.intraclass_corr(long(data), targets="unit", raters="rater", ratings="score")
    table = table.set_index("Type")
    for form, row in (("ICC1", "ICC(1,1)"), ("ICC1k", "ICC(1,k)")):
        assert icc_oneway(data, form) == pytest.approx(table.loc[row, "ICC"], abs=1e-12)
        assert icc_oneway(data, form) == pytest.approx(icc(data, form), abs=1e-12)
        low, high = icc_oneway_f_ci(data, form)
        # pingouin rounds its interval to two decimals
        assert [round(low, 2), round(high, 2)] == list(table.loc[row, "CI95"])


def _statsmodels_oneway(data: np.ndarray) -> tuple[float, float]:
    frame = long(data)
    frame = frame[frame.groupby("unit")["score"].transform("size") >= 2]
    anova = anova_lm(ols("score ~ C(unit)", data=frame).fit())
    msb, msw = anova.loc["C(unit)", "mean_sq"], anova.loc["Residual", "mean_sq"]
    sizes = frame.groupby("unit").size().to_numpy(dtype=float)
    n, total = sizes.size, sizes.sum()
    k0 = (total - np.sum(sizes**2) / total) / (n - 1)
    return (msb - msw) / (msb + (k0 - 1) * msw), (msb - msw) / msb


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_unbalanced_equals_statsmodels_anova(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = pool(rng, raters=9, units=80, low=1, high=4)
    single, average = _statsmodels_oneway(data)
    assert icc_oneway(data, "ICC1") == pytest.approx(single, abs=1e-10)
    assert icc_oneway(data, "ICC1k") == pytest.approx(average, abs=1e-10)


def test_unbalanced_f_interval_from_its_formula() -> None:
    data = pool(np.random.default_rng(7), raters=9, units=60, low=2, high=4)
    frame = long(data)
    anova = anova_lm(ols("score ~ C(unit)", data=frame).fit())
    f_obs = anova.loc["C(unit)", "F"]
    df1, df2 = anova.loc["C(unit)", "df"], anova.loc["Residual", "df"]
    sizes = frame.groupby("unit").size().to_numpy(dtype=float)
    k0 = (sizes.sum() - np.sum(sizes**2) / sizes.sum()) / (sizes.size - 1)
    f_low = f_obs / f_dist.ppf(0.975, df1, df2)
    f_high = f_obs * f_dist.ppf(0.975, df2, df1)
    low, high = icc_oneway_f_ci(data, "ICC1")
    assert low == pytest.approx((f_low - 1) / (f_low + k0 - 1), abs=1e-10)
    assert high == pytest.approx((f_high - 1) / (f_high + k0 - 1), abs=1e-10)
    assert low < icc_oneway(data) < high


def test_report_picks_the_form_of_the_design() -> None:
    rng = np.random.default_rng(8)
    complete = pool(rng, raters=3, units=40, low=3, high=3)
    report = icc_report(complete, n_boot=200)
    assert (report["design"], report["form"], report["form_k"]) == ("complete", "ICC2", "ICC2k")
    assert report["single"]["icc"] == pytest.approx(icc(complete, "ICC2"), abs=1e-12)
    assert report["units"] == 40 and report["raters_per_unit"]["k"] == 3
    pooled = pool(rng, raters=9, units=120, low=1, high=3)
    report = icc_report(pooled, n_boot=200)
    assert (report["design"], report["form"], report["form_k"]) == ("incomplete", "ICC1", "ICC1k")
    assert "one-way" in report["why"] and "of the 9 annotators" in report["why"]
    rated_twice = int(((~np.isnan(pooled)).sum(axis=0) >= 2).sum())
    assert report["units"] == rated_twice
    assert (report["raters_per_unit"]["min"], report["raters_per_unit"]["max"]) == (2, 3)
    single = report["single"]
    assert single["icc"] == pytest.approx(_statsmodels_oneway(pooled)[0], abs=1e-10)
    assert single["ci_low"] < single["icc"] < single["ci_high"]
    assert single["f_ci"][0] < single["icc"] < single["f_ci"][1]
    assert single["n_boot"] == 200 and single["dropped"] == 0
    # too few units rated twice: a reason, no number
    sparse = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, np.nan]])
    assert "two or more units rated at least twice" in icc_report(sparse)["reason"]


def test_resampled_oneway_equals_the_function_on_each_resample() -> None:
    data = pool(np.random.default_rng(9), raters=9, units=50, low=2, high=4)
    single, average = _oneway_resampled(data, 150, 0)
    for form, fast in (("ICC1", single), ("ICC1k", average)):
        slow = unit_interval(lambda d, f=form: icc_oneway(d, f), data, n_boot=150)
        assert np.quantile(fast, [0.025, 0.975]) == pytest.approx([slow.low, slow.high], abs=1e-12)
