"""Inter-rater agreement coefficients: pure numpy, no I/O.

Every coefficient reads a reliability matrix of shape ``(M raters, N units)``, float, with
NaN where a rater gave no value. Categories must already be coded as numbers; use
:func:`pivot` to go from long format (one row per judgement) to that matrix.

Krippendorff's alpha is computed from closed forms that stay linear in the size of the data
(no ``V x V`` matrix for continuous values). Its coincidence matrix is a sum over units, so
an incremental updater can keep it per unit with :func:`unit_coincidences` and turn it into
alpha with :func:`alpha_from_coincidences` in ``O(V^2)``; that gives the same number as
:func:`krippendorff_alpha` on the full data.

References
----------
Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
Communication, University of Pennsylvania.
Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological
Bulletin, 76(5), 378-382.
Cohen, J. (1968). Weighted kappa. Psychological Bulletin, 70(4), 213-220.
Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence of
high agreement. British Journal of Mathematical and Statistical Psychology, 61, 29-48.
Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed. Advanced Analytics.
Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
reliability. Psychological Bulletin, 86(2), 420-428.
Lin, L. I.-K. (1989). A concordance correlation coefficient to evaluate reproducibility.
Biometrics, 45(1), 255-268.
"""

import contextlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ICC_FORMS",
    "LEVELS",
    "alpha_from_coincidences",
    "annotator_vs_rest",
    "bootstrap_ci",
    "cohen_kappa",
    "coincidence_matrix",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "icc_table",
    "krippendorff_alpha",
    "lin_ccc",
    "mean_pairwise_ccc",
    "pairwise_alpha_matrix",
    "percent_agreement",
    "pivot",
    "unit_coincidences",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")

FloatArray = npt.NDArray[np.float64]

# Largest number of cells of one block of the ratio metric (values x values), 2 MB.
_BLOCK_CELLS = 1 << 18
# Integer-coded values spanning at most this many codes are counted with np.bincount.
_MAX_BINCOUNT_SPAN = 1 << 20


# ---------------------------------------------------------------------------- validation


def _fmt(value: float) -> str:
    return f"{value:g}"


def _fmt_list(values: Sequence[float] | FloatArray, limit: int = 8) -> str:
    shown = ", ".join(_fmt(v) for v in list(values)[:limit])
    more = len(values) - limit
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _floats(obj: npt.ArrayLike, message: str) -> FloatArray:
    """``obj`` as a float array; NaN for None. Strings (even "1") are refused."""
    try:
        if np.asarray(obj).dtype.kind in "USa":
            raise TypeError("strings are not values")
        return np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(message) from err


def _as_matrix(data: npt.ArrayLike) -> FloatArray:
    """Validate reliability data: 2-D, numeric, finite or NaN."""
    x = _floats(
        data,
        "data must be numeric (raters x units, NaN or None for missing); "
        "code categories as numbers first",
    )
    if x.ndim != 2:
        raise ValueError(f"data must be 2-D with shape (raters, units); got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("data contains infinite values; use NaN for missing values")
    return x


def _as_domain(value_domain: npt.ArrayLike) -> FloatArray:
    """Validate a value domain: 1-D, non-empty, finite, no repeated value."""
    domain = _floats(value_domain, "value_domain must be a sequence of numbers")
    if domain.ndim != 1 or domain.size == 0:
        raise ValueError(f"value_domain must be a non-empty 1-D sequence; got shape {domain.shape}")
    if not np.isfinite(domain).all():
        raise ValueError("value_domain must hold finite numbers (no NaN or infinity)")
    distinct, counts = np.unique(domain, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"value_domain repeats values: {_fmt_list(distinct[counts > 1])}")
    return domain


def _encode(x: FloatArray, domain: FloatArray) -> npt.NDArray[np.intp]:
    """Positions of the values ``x`` (1-D, no NaN) in ``domain``; raise on unknown values."""
    order = np.argsort(domain, kind="stable")
    ordered = domain[order]
    pos = np.searchsorted(ordered, x)
    np.minimum(pos, ordered.size - 1, out=pos)
    unknown = ordered[pos] != x
    if unknown.any():
        raise ValueError(
            f"values not in value_domain: {_fmt_list(np.unique(x[unknown]))} "
            f"(value_domain: {_fmt_list(domain)})"
        )
    return order[pos]


def _factorize(x: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Sorted distinct values of ``x`` (1-D, no NaN) and the code of every element.

    Integer-coded values in a modest range take a bincount path that avoids sorting.
    """
    if x.size == 0:
        return np.empty(0), np.empty(0, dtype=np.intp)
    lo, hi = x.min(), x.max()
    if hi - lo < _MAX_BINCOUNT_SPAN and np.array_equal(x, np.rint(x)):
        offsets = (x - lo).astype(np.intp)
        seen = np.bincount(offsets) > 0
        code_of_offset = np.cumsum(seen) - 1
        return lo + np.flatnonzero(seen).astype(np.float64), code_of_offset[offsets]
    values, codes = np.unique(x, return_inverse=True)
    return values, codes.reshape(-1)


def _codes_and_counts(
    x: FloatArray, domain: FloatArray | None
) -> tuple[FloatArray, npt.NDArray[np.intp], FloatArray]:
    """Values (domain order, else sorted), the code of every element of ``x``, value counts."""
    if domain is None:
        values, codes = _factorize(x)
    else:
        values, codes = domain, _encode(x, domain)
    counts = np.bincount(codes, minlength=values.size).astype(np.float64)
    return values, codes, counts


# ---------------------------------------------------------------------------- pairable units


@dataclass(frozen=True, slots=True)
class _Pairable:
    """The pairable units of a reliability matrix.

    ``values`` has shape (R, P): for each of the P units with two or more values, its values
    in rows, NaN-padded; R is the largest number of values in a unit (rows are compacted
    when that is fewer than the raters). ``m`` has shape (P,): values per unit.
    """

    values: FloatArray
    m: npt.NDArray[np.intp]

    @property
    def n(self) -> int:
        return int(self.m.sum())

    def present(self) -> npt.NDArray[np.bool_]:
        return ~np.isnan(self.values)

    def flat(self) -> FloatArray:
        """All pairable values, shape (n,)."""
        return self.values[self.present()]


def _pairable(x: FloatArray, *, required: bool = True) -> _Pairable:
    present = ~np.isnan(x)
    m = present.sum(axis=0)
    keep = m >= 2
    if required and not keep.any():
        raise ValueError(
            "no unit has two or more values; agreement needs units rated at least twice"
        )
    x, present, m = x[:, keep], present[:, keep], m[keep]
    rows = int(m.max()) if m.size else 0
    if rows < x.shape[0]:
        # Move each unit's values to the top rows so the pair loops run over R, not M, rows.
        target = np.cumsum(present, axis=0) - 1
        cols = np.broadcast_to(np.arange(x.shape[1]), x.shape)
        compact = np.full((rows, x.shape[1]), np.nan)
        compact[target[present], cols[present]] = x[present]
        x = compact
    return _Pairable(values=x, m=m)


def _equal_pairs(p: _Pairable) -> npt.NDArray[np.intp]:
    """Per unit, the number of unordered pairs of equal values, shape (P,)."""
    equal = np.zeros(p.m.size, dtype=np.intp)
    rows = p.values
    for j in range(1, rows.shape[0]):
        for i in range(j):
            equal += rows[i] == rows[j]  # NaN never equals anything
    return equal


def _no_spread(values: FloatArray) -> ValueError:
    return ValueError(
        f"all pairable values are equal ({_fmt_list(values)}); expected disagreement is zero "
        "and alpha is undefined"
    )


# ---------------------------------------------------------------------------- alpha, per level
#
# Each implementation returns alpha = 1 - (n - 1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck,
# with the observed sum taken over ordered pairs within units (weight 1 / (m_u - 1)) and the
# expected sum over ordered pairs of all pairable values.


def _nominal_alpha(p: _Pairable, domain: FloatArray | None) -> float:
    values, _, counts = _codes_and_counts(p.flat(), domain)
    if np.count_nonzero(counts) < 2:
        raise _no_spread(values[counts > 0])
    n = float(p.n)
    # Ordered disagreeing pairs per unit: all m(m-1) ordered pairs minus the equal ones.
    disagreeing = p.m * (p.m - 1) - 2 * _equal_pairs(p)
    observed = float(np.sum(disagreeing / (p.m - 1)))
    expected = n * n - float(np.dot(counts, counts))
    return 1.0 - (n - 1.0) * observed / expected


def _interval_sums(rows: FloatArray, m: npt.NDArray[np.intp]) -> tuple[float, float]:
    """Observed and expected sums of squared differences (interval metric)."""
    present = ~np.isnan(rows)
    # Shift each unit by one of its own values: exact zeros for perfect agreement, and
    # numerically stable (sum over pairs of (x_i - x_j)^2 = 2 (m sum y^2 - (sum y)^2)).
    first = rows[np.argmax(present, axis=0), np.arange(rows.shape[1])]
    y = np.where(present, rows - first, 0.0)
    within = m * np.einsum("ij,ij->j", y, y) - np.square(y.sum(axis=0))
    observed = 2.0 * float(np.sum(within / (m - 1)))
    flat = rows[present]
    centred = flat - flat.mean()
    expected = 2.0 * flat.size * float(np.dot(centred, centred))
    return observed, expected


def _interval_alpha(p: _Pairable, domain: FloatArray | None) -> float:
    if domain is not None:
        _encode(p.flat(), domain)
    observed, expected = _interval_sums(p.values, p.m)
    if expected == 0.0:
        raise _no_spread(np.unique(p.flat()))
    return 1.0 - (p.n - 1.0) * observed / expected


def _ordinal_positions(counts: FloatArray) -> FloatArray:
    """Ordinal metric as positions: d2_ck = (t_k - t_c)^2 with t_c = N_c - n_c / 2.

    Krippendorff (2011): d_ck = sum_{g=c..k} n_g - (n_c + n_k) / 2, with N_c the cumulative
    count of the values up to and including c (in domain order).
    """
    return np.cumsum(counts) - counts / 2.0


def _ordinal_alpha(p: _Pairable, domain: FloatArray | None) -> float:
    present = p.present()
    values, codes, counts = _codes_and_counts(p.values[present], domain)
    if np.count_nonzero(counts) < 2:
        raise _no_spread(values[counts > 0])
    ranked = np.full(p.values.shape, np.nan)
    ranked[present] = _ordinal_positions(counts)[codes]
    observed, expected = _interval_sums(ranked, p.m)
    return 1.0 - (p.n - 1.0) * observed / expected


def _ratio_d2(a: FloatArray, b: FloatArray) -> FloatArray:
    """Ratio metric ((a - b) / (a + b))^2, elementwise; 0 where a + b is 0 or NaN."""
    total = a + b
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a - b, total, out=out, where=total > 0)
    return np.square(out, out=out)


def _check_ratio_values(x: FloatArray) -> None:
    lowest = np.nanmin(x) if np.isfinite(x).any() else 0.0
    if lowest < 0:
        raise ValueError(f"ratio level needs non-negative values; found {_fmt(lowest)}")


def _ratio_alpha(p: _Pairable, domain: FloatArray | None) -> float:
    _check_ratio_values(p.values)
    values, _, counts = _codes_and_counts(p.flat(), domain)
    if np.count_nonzero(counts) < 2:
        raise _no_spread(values[counts > 0])
    within = np.zeros(p.m.size)
    rows = p.values
    for j in range(1, rows.shape[0]):
        for i in range(j):
            within += _ratio_d2(rows[i], rows[j])  # missing values contribute 0
    observed = 2.0 * float(np.sum(within / (p.m - 1)))
    # Expected: over distinct values, in blocks so memory stays bounded for continuous data.
    keep = counts > 0
    values, counts = values[keep], counts[keep]
    block = max(1, _BLOCK_CELLS // values.size)
    expected = 0.0
    for start in range(0, values.size, block):
        stop = start + block
        d2 = _ratio_d2(values[start:stop, None], values[None, :])
        expected += float(counts[start:stop] @ d2 @ counts)
    return 1.0 - (p.n - 1.0) * observed / expected


# ---------------------------------------------------------------------------- metrics (V x V)


def _nominal_d2(values: FloatArray, counts: FloatArray) -> FloatArray:
    return 1.0 - np.eye(values.size)


def _ordinal_d2(values: FloatArray, counts: FloatArray) -> FloatArray:
    t = _ordinal_positions(counts)
    return np.square(t[:, None] - t[None, :])


def _interval_d2(values: FloatArray, counts: FloatArray) -> FloatArray:
    return np.square(values[:, None] - values[None, :])


def _ratio_d2_matrix(values: FloatArray, counts: FloatArray) -> FloatArray:
    _check_ratio_values(values)
    return _ratio_d2(values[:, None], values[None, :])


@dataclass(frozen=True, slots=True)
class _Level:
    """A level of measurement: alpha from data, and its squared metric over a domain."""

    alpha: Callable[[_Pairable, FloatArray | None], float]
    d2: Callable[[FloatArray, FloatArray], FloatArray]


_LEVELS: dict[str, _Level] = {
    "nominal": _Level(alpha=_nominal_alpha, d2=_nominal_d2),
    "ordinal": _Level(alpha=_ordinal_alpha, d2=_ordinal_d2),
    "interval": _Level(alpha=_interval_alpha, d2=_interval_d2),
    "ratio": _Level(alpha=_ratio_alpha, d2=_ratio_d2_matrix),
}


def _level(level: str) -> _Level:
    try:
        return _LEVELS[level]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown level of measurement {level!r}; expected one of {', '.join(LEVELS)}"
        ) from None


# ---------------------------------------------------------------------------- public: alpha


def krippendorff_alpha(
    data: npt.ArrayLike,
    level: str = "nominal",
    value_domain: Sequence[float] | npt.ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha for any number of raters, with missing values.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data: ``data[r, u]`` is rater ``r``'s value for unit ``u``; NaN (or
        None) where missing. Categories must be coded as numbers. Units with fewer than two
        values are not pairable and are ignored.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement, which picks the difference function.
    value_domain : sequence of float, shape (V,), optional
        All values the variable can take, in their order (this order defines "between" for
        the ordinal level). Every value in ``data`` must belong to it. Values of the domain
        that nobody used have zero frequency, so they do not change alpha.

    Returns
    -------
    float
        Alpha: 1 for perfect agreement, 0 for agreement at chance level, below 0 for
        systematic disagreement.

    Raises
    ------
    ValueError
        If ``level`` is unknown, ``data`` is not a 2-D numeric array, no unit has two or more
        values, all pairable values are equal, a value lies outside ``value_domain``, or a
        ratio-level value is negative.

    Notes
    -----
    Time and memory are linear in the data: nominal alpha counts equal pairs per unit;
    interval alpha uses ``sum_{i,j} (x_i - x_j)^2 = 2 (m sum x^2 - (sum x)^2)`` per unit;
    ordinal alpha is interval alpha of the values' cumulative-frequency positions
    ``N_c - n_c / 2``; ratio alpha sums pairs within units and, for the expected
    disagreement, blocks over distinct values (time ``O(V^2)`` there, memory bounded).

    Examples
    --------
    >>> import numpy as np
    >>> data = [[1, 2, 3, 3, np.nan],
    ...         [1, 2, 3, 4, 2],
    ...         [1, 2, 2, 3, 2]]
    >>> round(krippendorff_alpha(data), 3)
    0.612
    >>> round(krippendorff_alpha(data, level="interval"), 3)
    0.821
    """
    implementation = _level(level).alpha
    x = _as_matrix(data)
    domain = None if value_domain is None else _as_domain(value_domain)
    if domain is not None:
        _encode(x[~np.isnan(x)], domain)
    return float(implementation(_pairable(x), domain))


def unit_coincidences(
    unit_values: npt.ArrayLike, values: Sequence[float] | npt.ArrayLike
) -> FloatArray:
    """One unit's contribution to the coincidence matrix.

    The coincidence matrix of a data set is the sum of this over its units, so an updater
    that keeps the matrix can subtract a unit's old contribution and add its new one in
    ``O(V^2)``.

    Parameters
    ----------
    unit_values : array_like, shape (M,)
        The values the raters gave this unit; NaN (or None) where missing.
    values : sequence of float, shape (V,)
        The value domain: rows and columns of the matrix, in this order.

    Returns
    -------
    numpy.ndarray, shape (V, V)
        ``n_c * n_k / (m - 1)`` off the diagonal and ``n_c * (n_c - 1) / (m - 1)`` on it,
        with ``n_c`` how often value ``c`` occurs in the unit and ``m`` its number of
        values; all zeros if the unit has fewer than two values.

    Raises
    ------
    ValueError
        If a value of the unit is not in ``values``.

    Examples
    --------
    >>> unit_coincidences([1, 1, 2, float("nan")], [1, 2, 3])
    array([[1., 1., 0.],
           [1., 0., 0.],
           [0., 0., 0.]])
    """
    domain = _as_domain(values)
    x = _floats(unit_values, "unit_values must be numbers (NaN or None for missing)").reshape(-1)
    x = x[~np.isnan(x)]
    out = np.zeros((domain.size, domain.size))
    if x.size < 2:
        if x.size:
            _encode(x, domain)
        return out
    counts = np.bincount(_encode(x, domain), minlength=domain.size).astype(np.float64)
    np.outer(counts, counts, out=out)
    out[np.diag_indices_from(out)] -= counts
    out /= x.size - 1
    return out


def coincidence_matrix(
    data: npt.ArrayLike, values: Sequence[float] | npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """Krippendorff's coincidence matrix: the sum over units of :func:`unit_coincidences`.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    values : sequence of float, shape (V,), optional
        The value domain in its order. Default: the sorted distinct values of ``data``.

    Returns
    -------
    coincidences : numpy.ndarray, shape (V, V)
        ``o_ck``: pairs of values ``(c, k)`` within units, each unit weighted
        ``1 / (m_u - 1)``. Symmetric; its row sums are the pairable value counts ``n_c``.
        All zeros when no unit has two or more values.
    values : numpy.ndarray, shape (V,)
        The values labelling rows and columns.

    Raises
    ------
    ValueError
        If ``data`` is not 2-D numeric data or holds a value not in ``values``.

    Notes
    -----
    Built with one ``np.bincount`` over the pair indices ``c * V + k`` per pair of rows,
    so time is linear in the data and memory is ``O(N + V^2)``.

    Examples
    --------
    >>> o, values = coincidence_matrix([[1, 1, 2], [1, 2, 2]])
    >>> values
    array([1., 2.])
    >>> o
    array([[2., 1.],
           [1., 2.]])
    """
    x = _as_matrix(data)
    flat = x[~np.isnan(x)]
    if values is None:
        domain, _ = _factorize(flat)
    else:
        domain = _as_domain(values)
        _encode(flat, domain)
    size = domain.size
    p = _pairable(x, required=False)
    present = p.present()
    codes = np.full(p.values.shape, -1, dtype=np.intp)
    if size:
        codes[present] = _encode(p.values[present], domain)
    weight = 1.0 / np.maximum(p.m - 1, 1)
    upper = np.zeros(size * size)
    for j in range(1, codes.shape[0]):
        for i in range(j):
            both = (codes[i] >= 0) & (codes[j] >= 0)
            index = codes[i][both] * size + codes[j][both]
            upper += np.bincount(index, weights=weight[both], minlength=size * size)
    upper = upper.reshape(size, size)
    return upper + upper.T, domain


def alpha_from_coincidences(
    coincidences: npt.ArrayLike,
    values: Sequence[float] | npt.ArrayLike,
    level: str = "nominal",
) -> float:
    """Krippendorff's alpha from a coincidence matrix, in ``O(V^2)``.

    Parameters
    ----------
    coincidences : array_like, shape (V, V)
        A coincidence matrix as made by :func:`coincidence_matrix`, or a sum of
        :func:`unit_coincidences`.
    values : sequence of float, shape (V,)
        The values labelling its rows and columns, in domain order.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.

    Returns
    -------
    float
        The same alpha as :func:`krippendorff_alpha` on the data the matrix was built from.

    Raises
    ------
    ValueError
        If ``level`` is unknown, the shapes do not match, the matrix is empty (no pairable
        unit) or all pairable values are equal.

    Examples
    --------
    >>> data = [[1, 1, 2, 3], [1, 2, 2, 3]]
    >>> o, values = coincidence_matrix(data)
    >>> round(alpha_from_coincidences(o, values, "ordinal"), 4)
    0.79
    >>> round(krippendorff_alpha(data, "ordinal"), 4)
    0.79
    """
    d2_of = _level(level).d2
    domain = _as_domain(values)
    o = np.asarray(coincidences, dtype=np.float64)
    if o.shape != (domain.size, domain.size):
        raise ValueError(
            f"coincidences must have shape ({domain.size}, {domain.size}) to match values; "
            f"got {o.shape}"
        )
    counts = o.sum(axis=1)
    n = float(counts.sum())
    if n <= 0:
        raise ValueError("coincidence matrix is empty: no unit has two or more values")
    if np.count_nonzero(counts > 0) < 2:
        raise _no_spread(domain[counts > 0])
    d2 = d2_of(domain, counts)
    observed = float(np.sum(o * d2))
    expected = float(counts @ d2 @ counts)
    return 1.0 - (n - 1.0) * observed / expected


# ---------------------------------------------------------------------------- kappas


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
            f"Fleiss' kappa needs the same number of ratings for every {what}; most have "
            f"{usual}, but {listed}{more}"
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


# ---------------------------------------------------------------------------- Gwet's AC1 / AC2


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


# ---------------------------------------------------------------------------- ICC


@dataclass(frozen=True, slots=True)
class _MeanSquares:
    """Two-way ANOVA mean squares of a complete (k raters, n targets) matrix."""

    k: int
    n: int
    bms: float  # between targets
    wms: float  # within targets
    jms: float  # between judges (raters)
    ems: float  # residual


def _mean_squares(data: npt.ArrayLike) -> _MeanSquares:
    x = _as_matrix(data)
    k, n = x.shape
    incomplete = np.flatnonzero(np.isnan(x).any(axis=0))
    if incomplete.size:
        raise ValueError(
            f"ICC needs complete data; units with missing values: {_fmt_list(incomplete)}"
        )
    if k < 2 or n < 2:
        raise ValueError(f"ICC needs at least two raters and two units; got shape {x.shape}")
    grand = x.mean()
    ss_total = float(np.sum(np.square(x - grand)))
    ss_targets = k * float(np.sum(np.square(x.mean(axis=0) - grand)))
    ss_raters = n * float(np.sum(np.square(x.mean(axis=1) - grand)))
    ss_within = ss_total - ss_targets
    ss_error = ss_within - ss_raters
    return _MeanSquares(
        k=k,
        n=n,
        bms=ss_targets / (n - 1),
        wms=ss_within / (n * (k - 1)),
        jms=ss_raters / (k - 1),
        ems=ss_error / ((n - 1) * (k - 1)),
    )


def _ratio(numerator: float, denominator: float, form: str) -> float:
    if denominator == 0.0:
        raise ValueError(f"{form} is undefined: its denominator is zero (no variance)")
    return numerator / denominator


def _icc1(s: _MeanSquares) -> float:
    return _ratio(s.bms - s.wms, s.bms + (s.k - 1) * s.wms, "ICC1")


def _icc2(s: _MeanSquares) -> float:
    denominator = s.bms + (s.k - 1) * s.ems + s.k * (s.jms - s.ems) / s.n
    return _ratio(s.bms - s.ems, denominator, "ICC2")


def _icc3(s: _MeanSquares) -> float:
    return _ratio(s.bms - s.ems, s.bms + (s.k - 1) * s.ems, "ICC3")


def _icc1k(s: _MeanSquares) -> float:
    return _ratio(s.bms - s.wms, s.bms, "ICC1k")


def _icc2k(s: _MeanSquares) -> float:
    return _ratio(s.bms - s.ems, s.bms + (s.jms - s.ems) / s.n, "ICC2k")


def _icc3k(s: _MeanSquares) -> float:
    return _ratio(s.bms - s.ems, s.bms, "ICC3k")


# Shrout & Fleiss (1979): form name -> ICC from the mean squares.
_ICC_FORMS: dict[str, Callable[[_MeanSquares], float]] = {
    "ICC1": _icc1,
    "ICC2": _icc2,
    "ICC3": _icc3,
    "ICC1k": _icc1k,
    "ICC2k": _icc2k,
    "ICC3k": _icc3k,
}
ICC_FORMS = tuple(_ICC_FORMS)


def icc(data: npt.ArrayLike, form: str) -> float:
    """Intraclass correlation, one of the six forms of Shrout & Fleiss (1979).

    Parameters
    ----------
    data : array_like, shape (k, n)
        Ratings: ``data[r, u]`` is rater ``r``'s score for unit (target) ``u``. Must be
        complete: ICC's ANOVA needs every rater on every unit.
    form : {"ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"}
        ``ICC1`` = ICC(1,1), one-way random (each unit rated by different raters);
        ``ICC2`` = ICC(2,1), two-way random, absolute agreement (raters a sample);
        ``ICC3`` = ICC(3,1), two-way mixed, consistency (these raters only). The ``k``
        forms are the reliability of the mean of the ``k`` raters.

    Returns
    -------
    float
        The ICC from the mean squares between units (BMS), within units (WMS), between
        raters (JMS) and residual (EMS), e.g. ICC(2,1) =
        ``(BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n)``.

    Raises
    ------
    ValueError
        If ``form`` is unknown (the message lists the known forms), a unit has a missing
        value (the message names the units), there are fewer than two raters or units, or
        the denominator is zero (no variance at all).

    Examples
    --------
    >>> data = [[9, 6, 8, 7, 10, 6], [2, 1, 4, 1, 5, 2], [5, 3, 6, 2, 6, 4], [8, 2, 8, 6, 9, 7]]
    >>> round(icc(data, "ICC2"), 2), round(icc(data, "ICC3k"), 2)
    (0.29, 0.91)
    """
    try:
        implementation = _ICC_FORMS[form]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown ICC form {form!r}; expected one of {', '.join(ICC_FORMS)}"
        ) from None
    return float(implementation(_mean_squares(data)))


def icc_table(data: npt.ArrayLike) -> dict[str, float]:
    """All six Shrout & Fleiss ICCs of a complete (k, n) matrix, by form name.

    Parameters
    ----------
    data : array_like, shape (k, n)
        Complete ratings, as for :func:`icc`.

    Returns
    -------
    dict of str to float
        ``{form: icc(data, form)}`` in the order of :data:`ICC_FORMS`.

    Raises
    ------
    ValueError
        As :func:`icc`.

    Examples
    --------
    >>> table = icc_table([[1, 2, 3, 4], [1, 2, 3, 5]])
    >>> list(table) == list(ICC_FORMS), round(table["ICC3"], 3)
    (True, 0.945)
    """
    squares = _mean_squares(data)
    return {form: float(f(squares)) for form, f in _ICC_FORMS.items()}


# ---------------------------------------------------------------------------- Lin's CCC


def _paired(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Two raters' values as 1-D float arrays, pairs with a NaN dropped."""
    x = _floats(a, "a must be numbers (NaN or None for missing)")
    y = _floats(b, "b must be numbers (NaN or None for missing)")
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1-D of equal length; got shapes {x.shape}, {y.shape}")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError("a and b contain infinite values; use NaN for missing values")
    both = ~(np.isnan(x) | np.isnan(y))
    return x[both], y[both]


def lin_ccc(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Lin's concordance correlation coefficient between two raters.

    Parameters
    ----------
    a, b : array_like, shape (N,)
        The two raters' scores per unit; units where either is NaN (or None) are dropped.

    Returns
    -------
    float
        ``2 s_ab / (s_a^2 + s_b^2 + (mean_a - mean_b)^2)`` with moments divided by ``n``
        (Lin 1989): 1 when ``a == b``, 0 for no concordance, -1 for ``a == -b`` about a
        common mean.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of equal length, fewer than two units have both values,
        or both raters gave one and the same value everywhere (CCC is 0 / 0).

    Examples
    --------
    >>> round(lin_ccc([1, 2, 3], [1, 2, 4]), 6)  # 6 / 7
    0.857143
    """
    x, y = _paired(a, b)
    if x.size < 2:
        raise ValueError(f"Lin's CCC needs at least two units rated by both; got {x.size}")
    dx, dy = x - x.mean(), y - y.mean()
    covariance = float(np.dot(dx, dy)) / x.size
    denominator = float(np.dot(dx, dx) + np.dot(dy, dy)) / x.size + float(x.mean() - y.mean()) ** 2
    if denominator == 0.0:
        raise ValueError(
            f"both raters gave {_fmt(x[0])} to every unit; Lin's CCC is undefined (0 / 0)"
        )
    return 2.0 * covariance / denominator


def mean_pairwise_ccc(data: npt.ArrayLike) -> float:
    """Mean of Lin's CCC over all pairs of raters.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Scores, NaN (or None) where missing. Each pair uses the units both rated.

    Returns
    -------
    float
        The unweighted mean of :func:`lin_ccc` over the pairs of raters that share at least
        two units; pairs sharing fewer have nothing to compare and are left out.

    Raises
    ------
    ValueError
        If fewer than two raters share two units, or a pair's CCC is undefined (both gave
        one constant value; the message names the pair).

    Examples
    --------
    >>> round(mean_pairwise_ccc([[1, 2, 3], [1, 2, 4], [1, 2, 3]]), 4)
    0.9048
    """
    x = _as_matrix(data)
    present = ~np.isnan(x)
    values = []
    for i in range(x.shape[0]):
        for j in range(i + 1, x.shape[0]):
            if np.count_nonzero(present[i] & present[j]) < 2:
                continue
            try:
                values.append(lin_ccc(x[i], x[j]))
            except ValueError as err:
                raise ValueError(f"raters {i} and {j}: {err}") from None
    if not values:
        raise ValueError("no two raters share two or more units; Lin's CCC needs pairs")
    return float(np.mean(values))


# ---------------------------------------------------------------------------- breakdowns


def pairwise_alpha_matrix(data: npt.ArrayLike, level: str = "nominal") -> FloatArray:
    """Krippendorff's alpha of every pair of raters.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.

    Returns
    -------
    numpy.ndarray, shape (M, M)
        Symmetric; entry ``(i, j)`` is :func:`krippendorff_alpha` of rows ``i`` and ``j``
        alone. NaN on the diagonal and where alpha is undefined for that pair (no unit
        rated by both, or no variation in their values).

    Raises
    ------
    ValueError
        If ``level`` is unknown or ``data`` is not 2-D numeric data.

    Examples
    --------
    >>> pairwise_alpha_matrix([[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 2, 1]]).round(3)
    array([[  nan, 1.   , 0.125],
           [1.   ,   nan, 0.125],
           [0.125, 0.125,   nan]])
    """
    _level(level)
    x = _as_matrix(data)
    m = x.shape[0]
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(i + 1, m):
            # Undefined for this pair (nothing shared, no variation): stays NaN.
            with contextlib.suppress(ValueError):
                out[i, j] = out[j, i] = krippendorff_alpha(x[[i, j]], level)
    return out


def annotator_vs_rest(data: npt.ArrayLike, level: str = "nominal") -> list[float]:
    """Krippendorff's alpha of each rater against the pooled other raters.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.

    Returns
    -------
    list of float, length M
        For rater ``a``: alpha (:func:`alpha_from_coincidences`) on the coincidences of the
        pairs of values that involve ``a`` only. In a unit where ``a`` and ``k >= 1`` others
        gave values, each ordered pair ``(a, j)`` and ``(j, a)`` counts ``1 / k`` (the
        ``1 / (m_u - 1)`` of the full matrix), so the unit weighs like a two-rater unit of
        ``a`` against the distribution of the others' values. Summed over raters these
        matrices give twice the full coincidence matrix. With two raters both entries equal
        :func:`krippendorff_alpha`. NaN where alpha is undefined for a rater (no unit shared
        with another rater, or no variation).

    Raises
    ------
    ValueError
        If ``level`` is unknown or ``data`` is not 2-D numeric data.

    Notes
    -----
    Memory is ``O(N V + V^2)`` for ``V`` distinct values, as for
    :func:`coincidence_matrix`.

    Examples
    --------
    >>> [round(a, 3) for a in annotator_vs_rest([[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 2, 1]])]
    [0.562, 0.562, 0.125]
    """
    _level(level)
    x = _as_matrix(data)
    present = ~np.isnan(x)
    values, codes = _factorize(x[present])
    v, (m, n) = values.size, x.shape
    code_matrix = np.full(x.shape, -1, dtype=np.intp)
    code_matrix[present] = codes
    units = np.nonzero(present)[1]
    counts = np.bincount(units * v + codes, minlength=n * v).reshape(n, v).astype(float)
    out = []
    for a in range(m):
        own = np.zeros((n, v))
        rated = np.flatnonzero(present[a])
        own[rated, code_matrix[a, rated]] = 1.0
        others = counts - own
        k = others.sum(axis=1)
        shared = present[a] & (k > 0)
        weighted = others[shared] / k[shared, None]
        half = own[shared].T @ weighted
        try:
            out.append(alpha_from_coincidences(half + half.T, values, level))
        except ValueError:
            out.append(float("nan"))  # undefined for this rater, as documented
    return out


# ---------------------------------------------------------------------------- bootstrap

_BOOTSTRAP_AXES = {"units": 1, "raters": 0}


def bootstrap_ci(
    statistic: Callable[[FloatArray], float],
    data: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    axis: str = "units",
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of an agreement statistic.

    Parameters
    ----------
    statistic : callable
        Maps a reliability matrix, shape (M, N), to a float, e.g.
        :func:`krippendorff_alpha` or ``lambda d: icc(d, "ICC2")``.
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    n_boot : int
        Number of resamples.
    level : float
        Confidence level, in (0, 1).
    seed : int or None
        Seed of the ``numpy.random.Generator``; the same seed gives the same interval.
    axis : {"units", "raters"}
        What to resample with replacement: units (columns, the usual choice) or raters
        (rows).

    Returns
    -------
    estimate, low, high : float
        ``statistic(data)`` and the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
        the statistic over the resamples.

    Raises
    ------
    ValueError
        If ``n_boot``, ``level`` or ``axis`` is invalid, ``statistic`` raises on the full
        data, or it raises ``ValueError`` (or returns NaN) on more than half of the
        resamples; such resamples are skipped otherwise.

    Examples
    --------
    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2], [1, 2, 3, 3, 2, 2, 4, 1, 2]]
    >>> est, low, high = bootstrap_ci(krippendorff_alpha, data, n_boot=200)
    >>> bool(low <= est <= high <= 1.0)
    True
    """
    if axis not in _BOOTSTRAP_AXES:
        raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(_BOOTSTRAP_AXES)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1; got {level!r}")
    x = _as_matrix(data)
    estimate = float(statistic(x))
    along = _BOOTSTRAP_AXES[axis]
    size = x.shape[along]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, size, size=(n_boot, size))
    stats = np.full(n_boot, np.nan)
    for b, index in enumerate(draws):
        # A resample the statistic is undefined on stays NaN and is counted below.
        with contextlib.suppress(ValueError):
            stats[b] = statistic(np.take(x, index, axis=along))
    failed = int(np.count_nonzero(~np.isfinite(stats)))
    if 2 * failed > n_boot:
        raise ValueError(
            f"the statistic is undefined on {failed} of {n_boot} resamples; too few "
            f"{axis} for a bootstrap interval"
        )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats[np.isfinite(stats)], [tail, 1.0 - tail])
    return estimate, float(low), float(high)


# ---------------------------------------------------------------------------- long -> matrix


def _factorize_labels(labels: Sequence[Hashable]) -> tuple[npt.NDArray[np.intp], list]:
    index: dict[Hashable, int] = {}
    codes = np.fromiter(
        (index.setdefault(label, len(index)) for label in labels), dtype=np.intp, count=len(labels)
    )
    return codes, list(index)


def pivot(
    units: Sequence[Hashable],
    annotators: Sequence[Hashable],
    values: Sequence[float] | npt.ArrayLike,
) -> tuple[FloatArray, list, list]:
    """Long format (one row per judgement) to the (annotators, units) reliability matrix.

    Parameters
    ----------
    units, annotators : sequence of hashable, shape (L,)
        The unit and the annotator of each judgement.
    values : sequence of float, shape (L,)
        The judged values, already numeric (code categories as numbers first). A
        judgement repeated with the same value counts once.

    Returns
    -------
    data : numpy.ndarray, shape (M, N)
        ``data[a, u]`` is annotator ``a``'s value for unit ``u``; NaN where missing.
    annotator_labels : list, length M
        Annotators in order of first appearance.
    unit_labels : list, length N
        Units in order of first appearance.

    Raises
    ------
    ValueError
        If the sequences differ in length or are empty, a value is not numeric, or one
        annotator gave one unit two different values (the message names both).

    Examples
    --------
    >>> data, annotators, units = pivot(
    ...     ["t1", "t1", "t2", "t2", "t3"], ["ann", "bo", "bo", "ann", "bo"], [1, 2, 2, 2, 3]
    ... )
    >>> data
    array([[ 1.,  2., nan],
           [ 2.,  2.,  3.]])
    >>> annotators, units
    (['ann', 'bo'], ['t1', 't2', 't3'])
    """
    lengths = {len(units), len(annotators), len(values)}
    if len(lengths) != 1:
        raise ValueError(
            f"units, annotators and values must have equal lengths; got {len(units)}, "
            f"{len(annotators)}, {len(values)}"
        )
    if not len(units):
        raise ValueError("no judgements to pivot: units, annotators and values are empty")
    v = _floats(values, "values must be numeric; code categories as numbers before pivoting")
    v = v.reshape(-1)
    unit_codes, unit_labels = _factorize_labels(units)
    annotator_codes, annotator_labels = _factorize_labels(annotators)
    data = np.full((len(annotator_labels), len(unit_labels)), np.nan)
    data[annotator_codes, unit_codes] = v
    stored = data[annotator_codes, unit_codes]
    clash = ~((stored == v) | (np.isnan(stored) & np.isnan(v)))
    if clash.any():
        row = int(np.argmax(clash))
        raise ValueError(
            f"annotator {annotator_labels[annotator_codes[row]]!r} gave unit "
            f"{unit_labels[unit_codes[row]]!r} two different values: {_fmt(v[row])} and "
            f"{_fmt(stored[row])}"
        )
    return data, annotator_labels, unit_labels
