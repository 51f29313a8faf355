"""Tests for annotate.agreement: published reference values, an oracle, invariants, errors."""

import doctest
import importlib
import math
from types import ModuleType

import krippendorff  # GPL-3.0+: a dev-only test oracle, never imported by annotate/
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from annotate import agreement
from annotate.agreement import (
    ICC_FORMS,
    LEVELS,
    alpha_from_coincidences,
    annotator_vs_rest,
    bootstrap_ci,
    cohen_kappa,
    coincidence_matrix,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    gwet_ac1,
    gwet_ac2,
    icc,
    icc_table,
    krippendorff_alpha,
    lin_ccc,
    mean_pairwise_ccc,
    pairwise_alpha_matrix,
    percent_agreement,
    pivot,
    unit_coincidences,
)
from annotate.agreement.kappa import _GWET_WEIGHTS

AGREEMENT_MODULES = [
    importlib.import_module(f"annotate.agreement.{name}")
    for name in (
        "alpha",
        "kappa",
        "icc",
        "continuous",
        "pairwise",
        "pairboot",
        "intervals",
        "summary",
        "matrix",
    )
]

NAN = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers
# x 12 units, nominal data with missing values (used again in E and F for the other levels).
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses (1 depression,
# 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other), as the `diagnoses` data set
# of R's irr package (one row per patient, one column per rating).
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ],
    dtype=float,
)

# R irr package, `anxiety` data set (20 subjects rated by 3 raters on 1-6); raters 2 and 3.
# irr::kappa2(anxiety[, 2:3]) = -0.006289308, with weight "equal" 0.1459075 and "squared"
# 0.2520325 (irr weights by the position among the levels used, as cohen_kappa does).
ANXIETY_RATER2 = [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4]
ANXIETY_RATER3 = [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]


def expand_table(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Two raters' values (category = row / column index) from a K x K contingency table."""
    counts = np.asarray(table)
    k = counts.shape[0]
    rows, cols = np.divmod(np.repeat(np.arange(k * k), counts.ravel()), k)
    return rows.astype(float), cols.astype(float)


def random_data(
    rng: np.random.Generator,
    raters: int,
    units: int,
    categories: int,
    *,
    missing: float = 0.2,
    agreement: float = 0.6,
) -> np.ndarray:
    """Seeded reliability data: raters agree on a true value with probability `agreement`."""
    truth = rng.integers(0, categories, units)
    noise = rng.integers(0, categories, (raters, units))
    data = np.where(rng.random((raters, units)) < agreement, truth, noise).astype(float)
    data[rng.random((raters, units)) < missing] = np.nan
    return data


# ---------------------------------------------------------------------------- references


@pytest.mark.parametrize("level", LEVELS)
def test_krippendorff_2011_reference_values(level: str) -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == KRIPPENDORFF_2011_ALPHA[level]


@pytest.mark.parametrize("level", LEVELS)
def test_krippendorff_2011_from_coincidences(level: str) -> None:
    o, values = coincidence_matrix(KRIPPENDORFF_2011)
    alpha = alpha_from_coincidences(o, values, level)
    assert round(alpha, 3) == KRIPPENDORFF_2011_ALPHA[level]
    assert alpha == pytest.approx(krippendorff_alpha(KRIPPENDORFF_2011, level), abs=1e-12)


def test_krippendorff_2011_coincidence_matrix() -> None:
    o, values = coincidence_matrix(KRIPPENDORFF_2011)
    expected = np.array(
        [
            [7, 4 / 3, 1 / 3, 1 / 3, 0],
            [4 / 3, 10, 4 / 3, 1 / 3, 0],
            [1 / 3, 4 / 3, 8, 1 / 3, 0],
            [1 / 3, 1 / 3, 1 / 3, 4, 0],
            [0, 0, 0, 0, 3],
        ]
    )
    np.testing.assert_array_equal(values, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(o, expected, atol=1e-12)
    np.testing.assert_allclose(o.sum(axis=1), [9, 13, 10, 5, 3])  # n_c, n = 40


def test_fleiss_1971_reference_value() -> None:
    assert round(fleiss_kappa(FLEISS_1971.T), 3) == 0.430
    # R irr::kappam.fleiss(diagnoses) prints 0.4302445.
    assert fleiss_kappa(FLEISS_1971.T) == pytest.approx(0.4302445, abs=1e-7)


def test_fleiss_1971_from_counts() -> None:
    counts = np.stack([np.sum(code == FLEISS_1971, axis=1) for code in range(1, 6)], axis=1)
    np.testing.assert_array_equal(counts.sum(axis=0), [26, 26, 30, 55, 43])
    assert round(fleiss_kappa_from_counts(counts), 3) == 0.430


def test_fleiss_wikipedia_worked_example() -> None:
    # Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert round(fleiss_kappa_from_counts(counts), 3) == 0.210


def test_fleiss_kappa_allows_missing_with_equal_counts() -> None:
    full = FLEISS_1971.T.copy()
    # Spread the same ratings over 8 "raters" with NaN holes: still 6 ratings per unit.
    spread = np.full((8, full.shape[1]), np.nan)
    for unit in range(full.shape[1]):
        rows = np.roll(np.arange(8), unit)[:6]
        spread[rows, unit] = full[:, unit]
    assert fleiss_kappa(spread) == pytest.approx(fleiss_kappa(full), abs=1e-15)


def test_cohen_wikipedia_two_by_two() -> None:
    # Wikipedia, "Cohen's kappa", simple example: 50 grant proposals read by A and B;
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a, b = expand_table([[20, 5], [10, 15]])
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_cohen_sas_three_by_three_weighted() -> None:
    # SAS PROC FREQ AGREE printout reproduced in statsmodels' test_inter_rater.py (table10):
    # simple kappa 0.4842, weighted kappa with scores 0, 1, 2 and linear weights 0.4701.
    a, b = expand_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    assert round(cohen_kappa(a, b), 4) == 0.4842
    assert round(cohen_kappa(a, b, weights="linear"), 4) == 0.4701


@pytest.mark.parametrize(
    ("weights", "expected"),
    [(None, -0.006289308), ("linear", 0.1459075), ("quadratic", 0.2520325)],
)
def test_cohen_irr_anxiety(weights: str | None, expected: float) -> None:
    kappa = cohen_kappa(ANXIETY_RATER2, ANXIETY_RATER3, weights=weights)
    assert kappa == pytest.approx(expected, abs=1e-7)


def test_cohen_value_domain_keeps_unused_categories_in_weights() -> None:
    # Category 5 is unused; with the full scale 4 -> 6 is two steps apart, not one.
    by_levels = cohen_kappa(ANXIETY_RATER2, ANXIETY_RATER3, "linear")
    by_scale = cohen_kappa(ANXIETY_RATER2, ANXIETY_RATER3, "linear", value_domain=range(1, 7))
    assert by_scale != pytest.approx(by_levels)
    # Unweighted kappa does not depend on unused categories.
    assert cohen_kappa(ANXIETY_RATER2, ANXIETY_RATER3, value_domain=range(1, 7)) == pytest.approx(
        -0.006289308, abs=1e-7
    )


def test_cohen_drops_missing_pairs() -> None:
    a = [1, 2, NAN, 3, 1, None]
    b = [1, 2, 2, NAN, 2, 1]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa([1, 2, 1], [1, 2, 2]))


def test_percent_agreement_counts_pairs() -> None:
    data = [[1, 2, 3, 1], [1, 2, 1, NAN], [1, NAN, 1, NAN]]
    # Unit 1: 3 of 3 pairs agree; unit 2: 1 of 1; unit 3: 1 of 3; unit 4: no pair.
    assert percent_agreement(data) == pytest.approx(5 / 7)


# ---------------------------------------------------------------------------- oracle


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_matches_krippendorff_package(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = random_data(rng, raters=6, units=300, categories=7, missing=0.3)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_matches_krippendorff_package_on_sparse_wide_data(level: str) -> None:
    # A pool of 20 annotators, 2-4 of them per unit: rows are compacted before pairing.
    rng = np.random.default_rng(11)
    full = random_data(rng, raters=20, units=400, categories=5, missing=0.0)
    data = np.full_like(full, np.nan)
    for unit in range(full.shape[1]):
        raters = rng.choice(20, size=rng.integers(1, 5), replace=False)
        data[raters, unit] = full[raters, unit]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)
    o, values = coincidence_matrix(data)
    assert alpha_from_coincidences(o, values, level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_matches_krippendorff_package_on_continuous_values(level: str) -> None:
    rng = np.random.default_rng(440)
    data = rng.normal(3.0, 1.0, size=(1, 150)) + rng.normal(0.0, 0.7, size=(4, 150))
    data = np.abs(data)
    data[rng.random(data.shape) < 0.25] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_value_domain_matches_krippendorff_package(level: str) -> None:
    rng = np.random.default_rng(7)
    data = random_data(rng, raters=4, units=200, categories=5) * 2 + 1  # 1, 3, 5, 7, 9
    domain = list(range(0, 11))
    expected = krippendorff.alpha(
        reliability_data=data, value_domain=domain, level_of_measurement=level
    )
    assert krippendorff_alpha(data, level, value_domain=domain) == pytest.approx(expected, abs=1e-9)
    # Unused values of the domain have zero frequency: alpha does not change.
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


def test_ordinal_value_domain_order_is_used() -> None:
    data = np.array([[1, 2, 3, 3, 1], [1, 3, 3, 2, 2], [2, 2, 3, 3, 1]], dtype=float)
    recoded = np.select([data == 1, data == 2, data == 3], [30.0, 10.0, 20.0])
    assert krippendorff_alpha(recoded, "ordinal", value_domain=[30, 10, 20]) == pytest.approx(
        krippendorff_alpha(data, "ordinal"), abs=1e-12
    )


def test_continuous_interval_data_stays_linear_in_memory() -> None:
    # 2,400 units x 5 raters of distinct floats: a V x V (or N x V x V) matrix would not fit.
    rng = np.random.default_rng(440)
    data = rng.normal(size=(1, 2400)) + rng.normal(scale=0.5, size=(5, 2400))
    data[rng.random(data.shape) < 0.1] = np.nan
    alpha = krippendorff_alpha(data, "interval")
    assert 0.7 < alpha < 0.9
    assert 0.7 < krippendorff_alpha(data, "ordinal") < 0.9


# ---------------------------------------------------------------------------- invariants

data_matrices = st.integers(min_value=2, max_value=6).flatmap(
    lambda raters: st.integers(min_value=1, max_value=12).flatmap(
        lambda units: st.lists(
            st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
            min_size=raters * units,
            max_size=raters * units,
        ).map(lambda cells: np.array(cells, dtype=float).reshape(raters, units))
    )
)


def alpha_or_none(data: np.ndarray, level: str) -> float | None:
    try:
        return krippendorff_alpha(data, level)
    except ValueError:
        return None


@settings(max_examples=150, deadline=None)
@given(data=data_matrices, level=st.sampled_from(LEVELS), seed=st.integers(0, 2**32 - 1))
def test_alpha_invariant_to_order_of_raters_and_units(data: np.ndarray, level: str, seed: int):
    alpha = alpha_or_none(data, level)
    assume(alpha is not None)
    rng = np.random.default_rng(seed)
    shuffled = data[rng.permutation(data.shape[0])][:, rng.permutation(data.shape[1])]
    assert krippendorff_alpha(shuffled, level) == pytest.approx(alpha, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(min_value=0, max_value=9), min_size=2, max_size=15),
    raters=st.integers(min_value=2, max_value=5),
    level=st.sampled_from(LEVELS),
)
def test_alpha_is_one_for_perfect_agreement(values: list[int], raters: int, level: str):
    assume(len(set(values)) > 1)
    data = np.tile(np.array(values, dtype=float), (raters, 1))
    assert krippendorff_alpha(data, level) == 1.0


@settings(max_examples=150, deadline=None)
@given(data=data_matrices, level=st.sampled_from(LEVELS))
def test_incremental_coincidences_equal_batch(data: np.ndarray, level: str):
    domain = np.arange(5.0)
    batch, _ = coincidence_matrix(data, domain)
    summed = sum(unit_coincidences(data[:, u], domain) for u in range(data.shape[1]))
    np.testing.assert_allclose(summed, batch, atol=1e-12)
    alpha = alpha_or_none(data, level)
    assume(alpha is not None)
    assert alpha_from_coincidences(summed, domain, level) == pytest.approx(alpha, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(data=data_matrices)
def test_percent_agreement_matches_brute_force(data: np.ndarray):
    agree = pairs = 0
    for unit in data.T:
        present = unit[~np.isnan(unit)]
        for i in range(present.size):
            for j in range(i + 1, present.size):
                pairs += 1
                agree += present[i] == present[j]
    assume(pairs > 0)
    assert percent_agreement(data) == pytest.approx(agree / pairs, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(data=data_matrices)
def test_cohen_quadratic_kappa_is_symmetric_in_raters(data: np.ndarray):
    try:
        forward = cohen_kappa(data[0], data[1], "quadratic")
    except ValueError:
        assume(False)
    assert cohen_kappa(data[1], data[0], "quadratic") == pytest.approx(forward, abs=1e-12)


# ---------------------------------------------------------------------------- pivot


def test_pivot_orders_labels_by_first_appearance() -> None:
    data, annotators, units = pivot(
        ["t2", "t1", "t2", "t3", "t1"], ["bo", "ann", "ann", "bo", "bo"], [1, 2, 3, 4, 5]
    )
    assert annotators == ["bo", "ann"]
    assert units == ["t2", "t1", "t3"]
    np.testing.assert_array_equal(data, [[1, 5, 4], [3, 2, NAN]])


def test_pivot_accepts_repeated_identical_judgements() -> None:
    data, _, _ = pivot(["u", "u", "v"], ["a", "a", "a"], [2, 2, 1])
    np.testing.assert_array_equal(data, [[2, 1]])


def test_pivot_then_alpha_equals_matrix_alpha() -> None:
    rows = [
        (unit, f"coder{rater}", value)
        for unit in range(12)
        for rater, value in enumerate(KRIPPENDORFF_2011[:, unit])
        if not np.isnan(value)
    ]
    units, annotators, values = zip(*rows, strict=True)
    data, annotator_labels, unit_labels = pivot(units, annotators, values)
    assert annotator_labels == ["coder0", "coder1", "coder3", "coder2"]  # first appearance
    assert unit_labels == list(range(12))
    assert round(krippendorff_alpha(data, "interval"), 3) == 0.849


# ---------------------------------------------------------------------------- errors


def test_unknown_level_lists_known_levels() -> None:
    with pytest.raises(ValueError, match="expected one of nominal, ordinal, interval, ratio"):
        krippendorff_alpha(KRIPPENDORFF_2011, "cardinal")
    with pytest.raises(ValueError, match="unknown level of measurement 'Nominal'"):
        alpha_from_coincidences(np.eye(2), [0, 1], "Nominal")


@pytest.mark.parametrize("level", LEVELS)
def test_no_pairable_unit(level: str) -> None:
    with pytest.raises(ValueError, match="no unit has two or more values"):
        krippendorff_alpha([[1, NAN, 3], [NAN, 2, NAN]], level)


def test_no_pairable_unit_for_percent_agreement() -> None:
    with pytest.raises(ValueError, match="no unit has two or more values"):
        percent_agreement([[1, NAN], [NAN, 2]])


@pytest.mark.parametrize("level", LEVELS)
def test_single_distinct_value_is_undefined(level: str) -> None:
    with pytest.raises(ValueError, match=r"all pairable values are equal \(2\)"):
        krippendorff_alpha([[2, 2, 5], [2, 2, NAN]], level)


def test_empty_coincidence_matrix() -> None:
    o, values = coincidence_matrix([[1, NAN], [NAN, 2]])
    np.testing.assert_array_equal(o, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="coincidence matrix is empty"):
        alpha_from_coincidences(o, values)


def test_coincidence_shape_must_match_values() -> None:
    with pytest.raises(ValueError, match=r"must have shape \(3, 3\) to match values"):
        alpha_from_coincidences(np.eye(2), [1, 2, 3])


@pytest.mark.parametrize("data", [[1, 2, 3], np.zeros((2, 2, 2))])
def test_data_must_be_two_dimensional(data: object) -> None:
    with pytest.raises(ValueError, match="must be 2-D with shape"):
        krippendorff_alpha(data)


def test_data_must_be_numeric_and_finite() -> None:
    with pytest.raises(ValueError, match="code categories as numbers"):
        krippendorff_alpha([["joy", "anger"], ["joy", "joy"]])
    with pytest.raises(ValueError, match="infinite values"):
        krippendorff_alpha([[1, np.inf], [1, 2]])


def test_value_outside_domain_is_named() -> None:
    with pytest.raises(ValueError, match=r"values not in value_domain: 5, 7"):
        krippendorff_alpha([[1, 5, 7], [1, 2, 7]], "ordinal", value_domain=[1, 2, 3])
    with pytest.raises(ValueError, match=r"values not in value_domain: 9"):
        unit_coincidences([1, 9], [1, 2])


def test_value_domain_must_not_repeat() -> None:
    with pytest.raises(ValueError, match=r"value_domain repeats values: 2"):
        krippendorff_alpha([[1, 2], [1, 2]], value_domain=[1, 2, 2])


def test_ratio_needs_non_negative_values() -> None:
    with pytest.raises(ValueError, match="ratio level needs non-negative values; found -1"):
        krippendorff_alpha([[1, -1, 2], [1, 2, 2]], "ratio")


def test_fleiss_names_units_with_other_rating_counts() -> None:
    data = FLEISS_1971.T.copy()
    data[0, 3] = np.nan
    data[:2, 17] = np.nan
    with pytest.raises(ValueError, match="most have 6, but unit 3 has 5, unit 17 has 4"):
        fleiss_kappa(data)


def test_fleiss_counts_errors() -> None:
    with pytest.raises(ValueError, match="subject 1 has 2"):
        fleiss_kappa_from_counts([[3, 0], [1, 1], [2, 1]])
    with pytest.raises(ValueError, match="at least two ratings per subject"):
        fleiss_kappa_from_counts([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        fleiss_kappa_from_counts([[3, -1], [1, 1]])
    with pytest.raises(ValueError, match="all ratings fall in one category"):
        fleiss_kappa_from_counts([[3, 0], [3, 0]])
    with pytest.raises(ValueError, match="non-empty 2-D table"):
        fleiss_kappa_from_counts([3, 0])


def test_cohen_errors() -> None:
    with pytest.raises(ValueError, match="unknown weights 'cubic'; expected None, 'linear'"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.raises(ValueError, match="1-D of equal length"):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no unit was rated by both raters"):
        cohen_kappa([1, NAN], [NAN, 2])
    with pytest.raises(ValueError, match=r"both raters used only 3\)"):
        cohen_kappa([3, 3, NAN], [3, 3, 1])


def test_pivot_errors() -> None:
    with pytest.raises(ValueError, match="annotator 'a' gave unit 'u' two different values"):
        pivot(["u", "v", "u"], ["a", "a", "a"], [1, 2, 3])
    with pytest.raises(ValueError, match="equal lengths; got 2, 1, 2"):
        pivot(["u", "v"], ["a"], [1, 2])
    with pytest.raises(ValueError, match="no judgements to pivot"):
        pivot([], [], [])
    with pytest.raises(ValueError, match="values must be numeric"):
        pivot(["u"], ["a"], ["joy"])
    with pytest.raises(ValueError, match="values must be numeric"):
        pivot(["u"], ["a"], ["1"])  # numeric strings are not coded values either


# ---------------------------------------------------------------------------- docs


@pytest.mark.parametrize("module", AGREEMENT_MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0
    assert failures == 0


def test_public_names() -> None:
    assert LEVELS == ("nominal", "ordinal", "interval", "ratio")
    assert set(agreement.__all__) <= set(dir(agreement))
    assert math.isclose(krippendorff_alpha(KRIPPENDORFF_2011), 0.743421052631579)


# ============================================================================ Gwet, ICC, CCC,
# breakdowns and bootstrap

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; Table 4 gives the six ICCs.
SHROUT_FLEISS_1979 = np.array(
    [
        [9, 2, 5, 8],
        [6, 1, 3, 2],
        [8, 4, 6, 8],
        [7, 1, 2, 6],
        [10, 5, 6, 9],
        [6, 2, 4, 7],
    ],
    dtype=float,
).T  # (4 judges, 6 targets)
SHROUT_FLEISS_1979_ICC = {
    "ICC1": 0.17,
    "ICC2": 0.29,
    "ICC3": 0.71,
    "ICC1k": 0.44,
    "ICC2k": 0.62,
    "ICC3k": 0.91,
}

# Gwet (2014), Handbook of Inter-Rater Reliability, the 4 raters x 12 units example shipped
# as irrCAC's `cac.raw4raters` / `raw_4raters`: the same ratings per unit as
# KRIPPENDORFF_2011 (only the lone rating of unit 12 sits with another rater, which Gwet's
# AC does not see). irrCAC documents AC1 = 0.77544 (pa 0.81818, pe 0.19032).
GWET_2014_AC1 = 0.77544
# AC2 on the same data from irrCAC 0.4.4 (CAC(..., weights=w, categories=[1..5]).gwet(),
# run once as an oracle; irrCAC pins scipy==1.12 so it cannot be a dev dependency here).
GWET_2014_AC2 = {"linear": 0.8587391364, "quadratic": 0.9140007236, "ordinal": 0.8989397699}


def gwet_loops(data: np.ndarray, weights: np.ndarray, categories: list[float]) -> float:
    """Gwet's AC as irrCAC's gwet.ac1.raw spells it, one unit at a time."""
    q = len(categories)
    rated, pa_terms, pi = 0, [], np.zeros(q)
    for unit in data.T:
        values = unit[~np.isnan(unit)]
        if values.size == 0:
            continue
        rated += 1
        r = np.array([np.sum(values == c) for c in categories], dtype=float)
        pi += r / values.size
        if values.size >= 2:
            r_star = weights @ r
            pa_terms.append(np.sum(r * (r_star - 1)) / (values.size * (values.size - 1)))
    pi /= rated
    pe = weights.sum() / (q * (q - 1)) * np.sum(pi * (1 - pi))
    return (np.mean(pa_terms) - pe) / (1 - pe)


# ---------------------------------------------------------------------------- Gwet's AC


def test_gwet_2014_ac1_reference_value() -> None:
    assert round(gwet_ac1(KRIPPENDORFF_2011), 5) == GWET_2014_AC1
    assert gwet_ac1(KRIPPENDORFF_2011) == pytest.approx(0.7754440681, abs=1e-9)  # irrCAC
    assert gwet_ac2(KRIPPENDORFF_2011, "identity") == gwet_ac1(KRIPPENDORFF_2011)


@pytest.mark.parametrize("weights", sorted(GWET_2014_AC2))
def test_gwet_2014_ac2_matches_irrcac(weights: str) -> None:
    assert gwet_ac2(KRIPPENDORFF_2011, weights) == pytest.approx(GWET_2014_AC2[weights], abs=1e-9)


def test_gwet_categories_enter_chance_agreement() -> None:
    # Everybody agrees on one category: AC1 is 1 once q >= 2 is known (kappa is undefined).
    assert gwet_ac1([[1, 1, 1], [1, 1, 1]], categories=[1, 2]) == 1.0
    # An unused category lowers p_e = sum pi (1 - pi) / (q - 1), so AC1 rises.
    data = [[1, 1, 2, 1], [1, 1, 2, 2]]
    assert gwet_ac1(data, categories=[1, 2, 3]) > gwet_ac1(data)


def test_gwet_custom_weight_matrix() -> None:
    w = 1 - np.abs(np.subtract.outer(np.arange(5), np.arange(5))) / 4
    assert gwet_ac2(KRIPPENDORFF_2011, w) == pytest.approx(GWET_2014_AC2["linear"], abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    data=data_matrices,
    weights=st.sampled_from(["identity", "linear", "quadratic", "ordinal"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_gwet_matches_unit_loops_and_ignores_order(data: np.ndarray, weights: str, seed: int):
    categories = [0.0, 1.0, 2.0, 3.0, 4.0]
    assume((np.sum(~np.isnan(data), axis=0) >= 2).any())
    w = _GWET_WEIGHTS[weights](np.array(categories))
    value = gwet_ac2(data, weights, categories=categories)
    assert value == pytest.approx(gwet_loops(data, w, categories), abs=1e-12)
    rng = np.random.default_rng(seed)
    shuffled = data[rng.permutation(data.shape[0])][:, rng.permutation(data.shape[1])]
    assert gwet_ac2(shuffled, weights, categories=categories) == pytest.approx(value, abs=1e-12)


def test_gwet_errors() -> None:
    with pytest.raises(ValueError, match="at least two categories; the data use only 1"):
        gwet_ac1([[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="unknown weights 'cubic'; expected one of identity"):
        gwet_ac2([[1, 2], [1, 2]], "cubic")
    with pytest.raises(ValueError, match=r"weights must have shape \(2, 2\)"):
        gwet_ac2([[1, 2], [1, 2]], np.eye(3))
    with pytest.raises(ValueError, match="no unit has two or more values"):
        gwet_ac1([[1, NAN], [NAN, 2]])
    with pytest.raises(ValueError, match=r"values not in categories: 3 \(categories: 1, 2\)"):
        gwet_ac1([[1, 3], [1, 2]], categories=[1, 2])
    with pytest.raises(ValueError, match="categories repeats values: 2"):
        gwet_ac1([[1, 2], [1, 2]], categories=[1, 2, 2])
    with pytest.raises(ValueError, match="data holds no ratings"):
        gwet_ac1([[NAN, NAN], [NAN, NAN]])


# ---------------------------------------------------------------------------- ICC


@pytest.mark.parametrize("form", ICC_FORMS)
def test_shrout_fleiss_1979_reference_values(form: str) -> None:
    assert round(icc(SHROUT_FLEISS_1979, form), 2) == SHROUT_FLEISS_1979_ICC[form]


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # pingouin on pandas 3
def test_icc_table_matches_pingouin() -> None:
    pd = pytest.importorskip("pandas")
    pg = pytest.importorskip("pingouin")  # GPL-3.0: a dev-only test oracle
    rng = np.random.default_rng(440)
    samples = [SHROUT_FLEISS_1979] + [
        rng.normal(size=(k, n)) + 2 * rng.normal(size=n) + rng.normal(size=(k, 1))
        for k, n in [(3, 20)]
    ]
    for data in samples:
        k, n = data.shape
        long = pd.DataFrame(
            {
                "target": np.tile(np.arange(n), k),
                "rater": np.repeat(np.arange(k), n),
                "score": data.ravel(),
            }
        )
        # pingouin's rows: ICC1, ICC2 (A,1), ICC3 (C,1), ICC1k, ICC2k, ICC3k.
        expected = pg.intraclass_corr(long, "target", "rater", "score")["ICC"].to_numpy()
        got = np.array(list(icc_table(data).values()))
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_icc_table_lists_every_form() -> None:
    table = icc_table(SHROUT_FLEISS_1979)
    assert tuple(table) == ICC_FORMS
    assert all(table[f] == icc(SHROUT_FLEISS_1979, f) for f in ICC_FORMS)


def test_icc_errors() -> None:
    with pytest.raises(
        ValueError, match=r"unknown ICC form 'ICC\(2,1\)'; expected one of ICC1, ICC2, ICC3, ICC1k"
    ):
        icc(SHROUT_FLEISS_1979, "ICC(2,1)")
    holes = SHROUT_FLEISS_1979.copy()
    holes[1, 2] = holes[3, 4] = NAN
    with pytest.raises(ValueError, match="complete data; units with missing values: 2, 4"):
        icc(holes, "ICC2")
    with pytest.raises(ValueError, match="at least two raters and two units"):
        icc([[1, 2, 3]], "ICC1")
    with pytest.raises(ValueError, match="ICC3 is undefined: its denominator is zero"):
        icc([[1, 1, 1], [1, 1, 1]], "ICC3")


# ---------------------------------------------------------------------------- Lin's CCC


def test_lin_ccc_hand_computed() -> None:
    # a = 1, 2, 3 and b = 1, 2, 4: means 2 and 7/3, variances 2/3 and 14/9, covariance 1
    # (divided by n, as Lin 1989): 2 / (2/3 + 14/9 + 1/9) = 6/7.
    assert lin_ccc([1, 2, 3], [1, 2, 4]) == pytest.approx(6 / 7, abs=1e-15)
    assert lin_ccc([1, 2, 3, NAN], [1, 2, 4, 9]) == pytest.approx(6 / 7, abs=1e-15)
    assert lin_ccc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert lin_ccc([1, 2, 3], [11, 12, 13]) == pytest.approx(2 * (2 / 3) / (4 / 3 + 100))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40))
def test_lin_ccc_decomposition_and_symmetry(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.7 * a + rng.normal(scale=0.5, size=n) + rng.normal()
    ccc = lin_ccc(a, b)
    # Lin (1989): rho_c = r * C_b, C_b = 2 / (v + 1/v + u^2), v = s_a / s_b,
    # u = (mean_a - mean_b) / sqrt(s_a s_b); and rho_c = 1 - MSD / (s_a^2 + s_b^2 + d^2).
    s_a, s_b = a.std(), b.std()
    v, u = s_a / s_b, (a.mean() - b.mean()) / math.sqrt(s_a * s_b)
    r = np.corrcoef(a, b)[0, 1]
    assert ccc == pytest.approx(r * 2 / (v + 1 / v + u**2), abs=1e-12)
    msd = np.mean((a - b) ** 2)
    assert ccc == pytest.approx(1 - msd / (s_a**2 + s_b**2 + (a.mean() - b.mean()) ** 2))
    assert lin_ccc(b, a) == pytest.approx(ccc, abs=1e-15)
    assert lin_ccc(a, a) == pytest.approx(1.0)
    assert -1.0 <= ccc <= 1.0


def test_mean_pairwise_ccc() -> None:
    data = np.array([[1, 2, 3, 4], [1, 2, 4, 4], [2, 2, 3, 5]], dtype=float)
    pairs = [lin_ccc(data[i], data[j]) for i, j in [(0, 1), (0, 2), (1, 2)]]
    assert mean_pairwise_ccc(data) == pytest.approx(np.mean(pairs))
    # A rater sharing fewer than two units with another leaves that pair out.
    sparse = np.vstack([data, [NAN, NAN, NAN, 7]])
    assert mean_pairwise_ccc(sparse) == pytest.approx(np.mean(pairs))


def test_ccc_errors() -> None:
    with pytest.raises(ValueError, match="at least two units rated by both; got 1"):
        lin_ccc([1, NAN], [1, 2])
    with pytest.raises(ValueError, match="both raters gave 3 to every unit"):
        lin_ccc([3, 3], [3, 3])
    with pytest.raises(ValueError, match="a and b must be 1-D of equal length"):
        lin_ccc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="raters 0 and 1: both raters gave 3"):
        mean_pairwise_ccc([[3, 3, 3], [3, 3, 3]])
    with pytest.raises(ValueError, match="no two raters share two or more units"):
        mean_pairwise_ccc([[1, 2, NAN, NAN], [NAN, NAN, 1, 2]])


# ---------------------------------------------------------------------------- breakdowns


def restricted_coincidences(data: np.ndarray, rater: int, values: np.ndarray) -> np.ndarray:
    """Pairs (rater, other) and (other, rater) within units, each 1 / (m_u - 1)."""
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((values.size, values.size))
    for unit in data.T:
        present = np.flatnonzero(~np.isnan(unit))
        if rater not in present or present.size < 2:
            continue
        for other in present[present != rater]:
            c, k = index[unit[rater]], index[unit[other]]
            o[c, k] += 1 / (present.size - 1)
            o[k, c] += 1 / (present.size - 1)
    return o


@pytest.mark.parametrize("level", LEVELS)
def test_annotator_vs_rest_definition(level: str) -> None:
    data = random_data(np.random.default_rng(7), raters=4, units=60, categories=5)
    _, values = coincidence_matrix(data)
    got = annotator_vs_rest(data, level)
    total = np.zeros((values.size, values.size))
    for rater in range(data.shape[0]):
        o = restricted_coincidences(data, rater, values)
        total += o
        assert got[rater] == pytest.approx(alpha_from_coincidences(o, values, level), abs=1e-12)
    # Every within-unit pair involves two raters, so the restricted matrices sum to twice
    # the full one.
    np.testing.assert_allclose(total, 2 * coincidence_matrix(data)[0], atol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_two_raters_vs_rest_is_alpha(level: str) -> None:
    data = random_data(np.random.default_rng(3), raters=2, units=40, categories=4)
    alpha = krippendorff_alpha(data, level)
    assert annotator_vs_rest(data, level) == pytest.approx([alpha, alpha], abs=1e-12)
    matrix = pairwise_alpha_matrix(data, level)
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(alpha, abs=1e-12)


def test_pairwise_alpha_matrix() -> None:
    data = random_data(np.random.default_rng(11), raters=4, units=50, categories=4)
    data[3] = NAN
    data[:, 0] = [NAN, NAN, NAN, 1.0]  # rater 3 shares no unit with anybody
    matrix = pairwise_alpha_matrix(data, "ordinal")
    assert matrix.shape == (4, 4)
    assert np.isnan(np.diag(matrix)).all()
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.isnan(matrix[3, :3]).all()  # nothing shared: alpha is undefined
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert matrix[i, j] == krippendorff_alpha(data[[i, j]], "ordinal")
    vs_rest = annotator_vs_rest(data, "nominal")
    assert len(vs_rest) == 4 and math.isnan(vs_rest[3]) and not math.isnan(vs_rest[0])


def test_breakdown_errors() -> None:
    with pytest.raises(ValueError, match="unknown level of measurement 'metric'"):
        pairwise_alpha_matrix([[1, 2], [1, 2]], "metric")
    with pytest.raises(ValueError, match="unknown level of measurement 'metric'"):
        annotator_vs_rest([[1, 2], [1, 2]], "metric")


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_and_contains_estimate() -> None:
    data = random_data(np.random.default_rng(5), raters=3, units=300, categories=4)
    first = bootstrap_ci(krippendorff_alpha, data, n_boot=300, seed=1)
    assert first == bootstrap_ci(krippendorff_alpha, data, n_boot=300, seed=1)
    assert first != bootstrap_ci(krippendorff_alpha, data, n_boot=300, seed=2)
    estimate, low, high = first
    assert estimate == krippendorff_alpha(data)
    assert low < estimate < high


def test_bootstrap_narrows_as_units_grow() -> None:
    rng = np.random.default_rng(8)
    widths = []
    for units in (100, 1600):
        data = random_data(rng, raters=3, units=units, categories=4)
        _, low, high = bootstrap_ci(krippendorff_alpha, data, n_boot=200)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about 1 / sqrt(16) = 1/4 expected


def test_bootstrap_other_statistics_and_raters_axis() -> None:
    data = SHROUT_FLEISS_1979
    estimate, low, high = bootstrap_ci(lambda d: icc(d, "ICC3"), data, n_boot=200)
    assert estimate == icc(data, "ICC3") and low <= high
    wide = random_data(np.random.default_rng(2), raters=8, units=40, categories=3, missing=0)
    estimate, low, high = bootstrap_ci(fleiss_kappa, wide, n_boot=100, axis="raters")
    assert estimate == fleiss_kappa(wide)
    assert -1.0 <= low <= high <= 1.0


def test_bootstrap_errors() -> None:
    data = [[1, 2, 1, 2], [1, 2, 2, 2]]
    with pytest.raises(ValueError, match="unknown axis 'columns'; expected one of units, raters"):
        bootstrap_ci(krippendorff_alpha, data, axis="columns")
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1; got 95"):
        bootstrap_ci(krippendorff_alpha, data, level=95)
    with pytest.raises(ValueError, match="n_boot must be a positive integer; got 0"):
        bootstrap_ci(krippendorff_alpha, data, n_boot=0)

    def only_on_the_original(d: np.ndarray) -> float:
        if not np.array_equal(d, data):
            raise ValueError("undefined")
        return 1.0

    with pytest.raises(ValueError, match=r"undefined on \d+ of 200 resamples; too few units"):
        bootstrap_ci(only_on_the_original, data, n_boot=200)
    # Skipped resamples are fine while they are at most half.
    _, low, high = bootstrap_ci(krippendorff_alpha, [[1, 2], [1, 1]], n_boot=200)
    assert low <= high
    with pytest.raises(ValueError, match="no unit has two or more values"):
        bootstrap_ci(krippendorff_alpha, [[1, NAN], [NAN, 2]])
