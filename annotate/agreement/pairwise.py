"""Breakdowns by annotator: every pair of raters, and each rater against the rest."""

import contextlib

import numpy as np
import numpy.typing as npt

from annotate.agreement.alpha import _level, alpha_from_coincidences, krippendorff_alpha
from annotate.agreement.matrix import (
    FloatArray,
    _as_matrix,
    _factorize,
)


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
