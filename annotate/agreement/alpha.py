"""Krippendorff's alpha at the four levels of measurement, and its coincidence matrix.

Alpha is computed from closed forms that stay linear in the size of the data (no ``V x V``
matrix for continuous values). Its coincidence matrix is a sum over units, so an incremental
updater can keep it per unit with :func:`unit_coincidences` and turn it into alpha with
:func:`alpha_from_coincidences` in ``O(V^2)``; that gives the same number as
:func:`krippendorff_alpha` on the full data.

References
----------
Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
Communication, University of Pennsylvania.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.agreement.matrix import (
    FloatArray,
    _as_domain,
    _as_matrix,
    _codes_and_counts,
    _encode,
    _equal_pairs,
    _factorize,
    _floats,
    _fmt,
    _no_spread,
    _Pairable,
    _pairable,
)

LEVELS = ("nominal", "ordinal", "interval", "ratio")

# Largest number of cells of one block of the ratio metric (values x values), 2 MB.
_BLOCK_CELLS = 1 << 18


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
