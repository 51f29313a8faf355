"""The kappa family: Fleiss' kappa, Cohen's kappa, Gwet's AC1 / AC2, percent agreement.

References
----------
Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological
Bulletin, 76(5), 378-382.
Cohen, J. (1968). Weighted kappa. Psychological Bulletin, 70(4), 213-220.
Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence of
high agreement. British Journal of Mathematical and Statistical Psychology, 61, 29-48.
Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed. Advanced Analytics.
"""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from annotate.agreement.matrix import (
    FloatArray,
    _as_domain,
    _as_matrix,
    _encode,
    _equal_pairs,
    _factorize,
    _floats,
    _fmt_list,
    _pairable,
)


def fleiss_kappa_from_counts(counts: npt.ArrayLike) -> float:
    """Fleiss' kappa from a subjects x categories table of rating counts.

    Parameters
    ----------
    counts : array_like, shape (N, K)
        ``counts[i, j]``: how many raters put subject ``i`` in category ``j``. Every subject
        must have the same number of ratings ``n >= 2``.

    Returns
    -------
    float
        ``(P_bar - P_e) / (1 - P_e)``.

    Raises
    ------
    ValueError
        If the table is not 2-D, has negative or non-integer counts, subjects with differing
        numbers of ratings, fewer than two ratings per subject, or all ratings in one
        category.

    Examples
    --------
    >>> round(fleiss_kappa_from_counts([[3, 0], [0, 3], [2, 1], [3, 0]]), 4)
    0.625
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(
            f"counts must be a non-empty 2-D table (subjects, categories); got shape {table.shape}"
        )
    if (
        not np.isfinite(table).all()
        or (table < 0).any()
        or not np.array_equal(table, np.rint(table))
    ):
        raise ValueError("counts must be non-negative whole numbers")
    raters = table.sum(axis=1)
    _check_equal_ratings(raters.astype(np.intp), "subject")
    n = float(raters[0])
    p_bar = float(np.mean((np.einsum("ij,ij->i", table, table) - n) / (n * (n - 1.0))))
    shares = table.sum(axis=0) / (table.shape[0] * n)
    p_e = float(np.dot(shares, shares))
    if p_e >= 1.0:
        raise ValueError("all ratings fall in one category; Fleiss' kappa is undefined")
    return (p_bar - p_e) / (1.0 - p_e)


def _check_equal_ratings(ratings: npt.NDArray[np.intp], what: str) -> None:
    usual = int(np.bincount(ratings).argmax())
    odd = np.flatnonzero(ratings != usual)
    if odd.size:
        listed = ", ".join(f"{what} {i} has {ratings[i]}" for i in odd[:10])
        more = f", ... ({odd.size - 10} more)" if odd.size > 10 else ""
        raise ValueError(
            f"{what}s have {int(ratings.min())} to {int(ratings.max())} ratings; Fleiss' kappa "
            f"needs the same number per {what} (most have {usual}, but {listed}{more})"
        )
    if usual < 2:
        raise ValueError(
            f"Fleiss' kappa needs at least two ratings per {what}; every {what} has {usual}"
        )


def fleiss_kappa(data: npt.ArrayLike) -> float:
    """Fleiss' kappa for many raters on a nominal scale.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing. Raters may differ between units, but
        every unit must have the same number of ratings.

    Returns
    -------
    float
        Fleiss' kappa, as :func:`fleiss_kappa_from_counts` on the units x categories counts.

    Raises
    ------
    ValueError
        If units have different numbers of ratings (the message names them), fewer than
        two ratings, or all ratings fall in one category.

    Examples
    --------
    >>> round(fleiss_kappa([[1, 2, 1, 1], [1, 2, 2, 1], [1, 2, 1, 1]]), 4)
    0.625
    """
    x = _as_matrix(data)
    if x.shape[1] == 0:
        raise ValueError("data has no units")
    present = ~np.isnan(x)
    _check_equal_ratings(present.sum(axis=0), "unit")
    values, codes = _factorize(x[present])
    units = np.nonzero(present)[1]
    k = values.size
    table = np.bincount(units * k + codes, minlength=x.shape[1] * k).reshape(x.shape[1], k)
    return fleiss_kappa_from_counts(table)


def _linear(distance: FloatArray) -> FloatArray:
    return np.abs(distance)


def _quadratic(distance: FloatArray) -> FloatArray:
    return np.square(distance)


_KAPPA_WEIGHTS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "linear": _linear,
    "quadratic": _quadratic,
}


def cohen_kappa(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    weights: str | None = None,
    *,
    value_domain: Sequence[float] | npt.ArrayLike | None = None,
) -> float:
    """Cohen's kappa for two raters, optionally weighted for ordered categories.

    Parameters
    ----------
    a, b : array_like, shape (N,)
        The two raters' values per unit; units where either is NaN (or None) are dropped.
    weights : {None, "linear", "quadratic"}
        Disagreement weights on the distance between category positions ``|i - j|``:
        None for unweighted kappa, ``|i - j|`` or ``(i - j)^2`` otherwise.
    value_domain : sequence of float, shape (K,), optional
        The categories in order. Default: the sorted distinct values both raters used (as
        R's ``irr::kappa2``); pass the full scale so that unused categories keep their
        place in the weights.

    Returns
    -------
    float
        ``1 - sum(w * observed) / sum(w * expected)``.

    Raises
    ------
    ValueError
        If ``weights`` is unknown, the arrays differ in length or are not 1-D, no unit was
        rated by both, a value is outside ``value_domain``, or the expected disagreement is
        zero (both raters used the same single category).

    Examples
    --------
    >>> round(cohen_kappa([1, 1, 2, 2, 3], [1, 2, 2, 2, 3]), 4)
    0.6875
    >>> round(cohen_kappa([1, 1, 2, 2, 3], [1, 2, 2, 2, 3], weights="quadratic"), 4)
    0.8
    """
    if weights is not None and weights not in _KAPPA_WEIGHTS:
        raise ValueError(
            f"unknown weights {weights!r}; expected None, {', '.join(map(repr, _KAPPA_WEIGHTS))}"
        )
    x = _floats(a, "a must be numbers (NaN or None for missing)")
    y = _floats(b, "b must be numbers (NaN or None for missing)")
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1-D of equal length; got shapes {x.shape}, {y.shape}")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError("a and b contain infinite values; use NaN for missing values")
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    if x.size == 0:
        raise ValueError("no unit was rated by both raters")
    if value_domain is None:
        domain, codes = _factorize(np.concatenate([x, y]))
    else:
        domain = _as_domain(value_domain)
        codes = _encode(np.concatenate([x, y]), domain)
    k = domain.size
    observed = np.bincount(codes[: x.size] * k + codes[x.size :], minlength=k * k)
    observed = observed.reshape(k, k).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / x.size
    positions = np.arange(k, dtype=np.float64)
    if weights is None:
        w = 1.0 - np.eye(k)
    else:
        w = _KAPPA_WEIGHTS[weights](positions[:, None] - positions[None, :])
    expected_disagreement = float(np.sum(w * expected))
    if expected_disagreement == 0.0:
        used = domain[(observed.sum(axis=0) + observed.sum(axis=1)) > 0]
        raise ValueError(
            f"expected disagreement is zero (both raters used only {_fmt_list(used)}); "
            "Cohen's kappa is undefined"
        )
    return 1.0 - float(np.sum(w * observed)) / expected_disagreement


def percent_agreement(data: npt.ArrayLike) -> float:
    """Share of agreeing pairs among all pairs of values within units.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing. A unit with ``m`` values has
        ``m (m - 1) / 2`` pairs; units with fewer than two values have none.

    Returns
    -------
    float
        Agreeing pairs divided by all pairs, in [0, 1]; not corrected for chance.

    Raises
    ------
    ValueError
        If no unit has two or more values.

    Examples
    --------
    >>> percent_agreement([[1, 2, 3], [1, 2, 1], [1, float("nan"), 1]])
    0.7142857142857143
    """
    p = _pairable(_as_matrix(data))
    pairs = int(np.sum(p.m * (p.m - 1) // 2))
    return int(_equal_pairs(p).sum()) / pairs


def _identity_weights(values: FloatArray) -> FloatArray:
    return np.eye(values.size)


def _linear_weights(values: FloatArray) -> FloatArray:
    distance = np.abs(values[:, None] - values[None, :])
    return 1.0 - distance / distance.max()


def _quadratic_weights(values: FloatArray) -> FloatArray:
    distance = np.square(values[:, None] - values[None, :])
    return 1.0 - distance / distance.max()


def _ordinal_weights(values: FloatArray) -> FloatArray:
    position = np.arange(values.size)
    steps = np.abs(position[:, None] - position[None, :])
    pairs = steps * (steps + 1) / 2.0  # (|k - l| + 1) choose 2
    return 1.0 - pairs / pairs.max()


# Agreement weights (1 on the diagonal) of Gwet (2014), as irrCAC names them.
_GWET_WEIGHTS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "identity": _identity_weights,
    "linear": _linear_weights,
    "quadratic": _quadratic_weights,
    "ordinal": _ordinal_weights,
}


def _gwet(
    data: npt.ArrayLike,
    weights: str | npt.ArrayLike,
    categories: Sequence[float] | npt.ArrayLike | None,
) -> float:
    if isinstance(weights, str) and weights not in _GWET_WEIGHTS:
        raise ValueError(
            f"unknown weights {weights!r}; expected one of {', '.join(_GWET_WEIGHTS)} "
            "or a (q, q) matrix"
        )
    x = _as_matrix(data)
    present = ~np.isnan(x)
    flat = x[present]
    if flat.size == 0:
        raise ValueError("data holds no ratings")
    if categories is None:
        domain, codes = _factorize(flat)
    else:
        try:
            domain = _as_domain(categories)
            codes = _encode(flat, domain)
        except ValueError as err:  # name this function's parameter
            raise ValueError(str(err).replace("value_domain", "categories")) from None
    q = domain.size
    if q < 2:
        raise ValueError(
            f"Gwet's AC needs at least two categories; the data use only {_fmt_list(domain)} "
            "(pass categories= with the full scale)"
        )
    if isinstance(weights, str):
        w = _GWET_WEIGHTS[weights](domain)
    else:
        w = _floats(weights, "weights must be a name or a numeric (q, q) matrix")
        if w.shape != (q, q):
            raise ValueError(
                f"weights must have shape ({q}, {q}) to match the categories; got {w.shape}"
            )
    n_units = x.shape[1]
    units = np.nonzero(present)[1]
    r = np.bincount(units * q + codes, minlength=n_units * q).reshape(n_units, q).astype(float)
    r = r[r.sum(axis=1) > 0]  # units nobody rated do not count
    r_i = r.sum(axis=1)
    pairable = r_i >= 2
    if not pairable.any():
        raise ValueError(
            "no unit has two or more values; agreement needs units rated at least twice"
        )
    rp, rpi = r[pairable], r_i[pairable]
    p_a = float(np.mean(np.einsum("ik,ik->i", rp, rp @ w.T - 1.0) / (rpi * (rpi - 1.0))))
    pi = np.mean(r / r_i[:, None], axis=0)
    p_e = float(w.sum() / (q * (q - 1.0)) * np.dot(pi, 1.0 - pi))
    if p_e >= 1.0:
        raise ValueError("chance agreement is 1 with these weights; Gwet's AC is undefined")
    return (p_a - p_e) / (1.0 - p_e)


def gwet_ac1(
    data: npt.ArrayLike, categories: Sequence[float] | npt.ArrayLike | None = None
) -> float:
    """Gwet's AC1 for nominal data, any number of raters, missing values allowed.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing. Units nobody rated are dropped.
    categories : sequence of float, shape (q,), optional
        All categories raters could choose. Default: the distinct values in ``data``. The
        number of categories ``q`` enters the chance agreement, so pass the full scale when
        some category went unused.

    Returns
    -------
    float
        ``(p_a - p_e) / (1 - p_e)``, with ``p_a`` the mean share of agreeing pairs over units
        rated at least twice, and ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``, where ``pi_k``
        is the mean over rated units of the share of the unit's ratings in category ``k``
        (Gwet 2014, as irrCAC's ``gwet.ac1.raw``).

    Raises
    ------
    ValueError
        If the data hold fewer than two categories (and ``categories`` is not given), no
        unit has two or more values, or a value is outside ``categories``.

    Examples
    --------
    >>> round(gwet_ac1([[1, 1, 2, 1], [1, 1, 2, 2]]), 4)
    0.5294
    """
    return _gwet(data, "identity", categories)


def gwet_ac2(
    data: npt.ArrayLike,
    weights: str | npt.ArrayLike = "quadratic",
    categories: Sequence[float] | npt.ArrayLike | None = None,
) -> float:
    """Gwet's AC2: AC1 with agreement weights for ordered categories.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    weights : {"quadratic", "linear", "ordinal", "identity"} or array_like, shape (q, q)
        Agreement weights, 1 on the diagonal. "quadratic" is
        ``1 - (c_k - c_l)^2 / (c_max - c_min)^2`` and "linear"
        ``1 - |c_k - c_l| / (c_max - c_min)`` on the category *values* (as irrCAC; code
        categories as positions 1..q for weights by rank); "ordinal" uses ranks,
        ``1 - C(|k - l| + 1, 2) / max``; "identity" gives AC1.
    categories : sequence of float, shape (q,), optional
        All categories in order. Default: the sorted distinct values in ``data``.

    Returns
    -------
    float
        ``(p_a - p_e) / (1 - p_e)`` with weighted ``p_a`` and
        ``p_e = sum(w) / (q (q - 1)) * sum_k pi_k (1 - pi_k)`` (Gwet 2014).

    Raises
    ------
    ValueError
        If ``weights`` is an unknown name or a matrix of the wrong shape, or as
        :func:`gwet_ac1`.

    Examples
    --------
    >>> round(gwet_ac2([[1, 2, 3, 4], [1, 2, 4, 4]]), 4)
    0.9098
    """
    return _gwet(data, weights, categories)


# ---------------------------------------------------------------------------- on resamples
#
# Fleiss' kappa and AC1 are means over units of per-unit terms, so on a resample of the units
# (multiplicities ``weights``, shape (R, N)) they come from weighted sums: the same numbers as
# the functions above on the matrix with every unit repeated (tests check it).


def _category_table(x: FloatArray, domain: FloatArray | None) -> tuple[FloatArray, int]:
    present = ~np.isnan(x)
    flat = x[present]
    values = np.unique(flat) if domain is None else domain
    codes = _encode(flat, values)
    units = np.nonzero(present)[1]
    k = values.size
    table = np.bincount(units * k + codes, minlength=x.shape[1] * k).reshape(x.shape[1], k)
    return table.astype(np.float64), k


def fleiss_kappa_resampled(data: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """:func:`fleiss_kappa` on resamples of the units, shape (R,); NaN where undefined.

    ``weights[r, u]``: how often unit ``u`` is in resample ``r``. Every unit must have the
    same number of ratings (as for :func:`fleiss_kappa`, which says why otherwise).
    """
    x = _as_matrix(data)
    w = np.asarray(weights, dtype=np.float64)
    table, _ = _category_table(x, None)
    ratings = table.sum(axis=1)
    _check_equal_ratings(ratings.astype(np.intp), "unit")
    n = float(ratings[0])
    per_unit = (np.einsum("uk,uk->u", table, table) - n) / (n * (n - 1.0))
    units = w.sum(axis=1)
    p_bar = (w @ per_unit) / units
    shares = (w @ table) / (units[:, None] * n)
    p_e = np.sum(shares * shares, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (p_bar - p_e) / (1.0 - p_e)
    out[p_e >= 1.0] = np.nan
    return out


def gwet_ac1_resampled(
    data: npt.ArrayLike,
    weights: npt.ArrayLike,
    categories: Sequence[float] | npt.ArrayLike | None = None,
) -> FloatArray:
    """:func:`gwet_ac1` on resamples of the units, shape (R,); NaN where undefined.

    ``weights[r, u]``: how often unit ``u`` is in resample ``r``. Without ``categories`` the
    number of categories is, as for :func:`gwet_ac1`, those used in each resample.
    """
    x = _as_matrix(data)
    w = np.asarray(weights, dtype=np.float64)
    domain = None if categories is None else _as_domain(categories)
    table, k = _category_table(x, domain)
    r = table.sum(axis=1)
    rated = r > 0
    table, r, w = table[rated], r[rated], w[:, rated]
    pairable = r >= 2
    agree = np.zeros(r.size)
    agree[pairable] = np.einsum("uk,uk->u", table[pairable], table[pairable] - 1.0) / (
        r[pairable] * (r[pairable] - 1.0)
    )
    pairable_units = w[:, pairable].sum(axis=1)
    shares = table / r[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = (w @ agree) / pairable_units
        pi = (w @ shares) / w.sum(axis=1)[:, None]
        if domain is None:
            q = np.count_nonzero((w @ table) > 0, axis=1).astype(np.float64)
        else:
            q = np.full(w.shape[0], float(k))
        p_e = np.sum(pi * (1.0 - pi), axis=1) / (q - 1.0)
        out = (p_a - p_e) / (1.0 - p_e)
    out[(pairable_units == 0) | (q < 2) | (p_e >= 1.0)] = np.nan
    return out
