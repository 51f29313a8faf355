"""Breakdowns by annotator: every pair of raters, and each rater against the rest."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

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


# ---------------------------------------------------------------------------- pairs with counts

MIN_OVERLAP = 10
"""Pairs of raters sharing fewer units are shown but left out of means over pairs."""

IntArray = npt.NDArray[np.intp]


def pair_units(data: npt.ArrayLike) -> IntArray:
    """Units each pair of raters both rated.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.

    Returns
    -------
    numpy.ndarray of int, shape (M, M)
        Entry ``(i, j)``: units rated by both ``i`` and ``j``; the diagonal holds the
        units each rater rated.

    Examples
    --------
    >>> pair_units([[1, 2, float("nan")], [1, 1, 1]])
    array([[2, 2],
           [2, 3]])
    """
    present = (~np.isnan(_as_matrix(data))).astype(np.intp)
    return present @ present.T


@dataclass(frozen=True, slots=True)
class Pairs:
    """A statistic of every pair of raters with the units each pair compared.

    ``values[i, j]`` is NaN on the diagonal and where the statistic is undefined for the
    pair; ``units[i, j]`` is how many units both rated. A pair counts in :meth:`mean` only
    when it compared at least ``min_overlap`` units and its value is defined; means are
    weighted by the units compared.
    """

    values: FloatArray
    units: IntArray
    min_overlap: int

    def counted(self) -> npt.NDArray[np.bool_]:
        """(M, M) mask of the pairs that count in means (both triangles, no diagonal)."""
        off = ~np.eye(self.values.shape[0], dtype=bool)
        return off & np.isfinite(self.values) & (self.units >= self.min_overlap)

    def mean(self, rater: int | None = None) -> float | None:
        """Mean over the counted pairs (of ``rater`` only, if given), weighted by units."""
        mask = np.triu(self.counted()) if rater is None else self.counted()[rater]
        values = self.values if rater is None else self.values[rater]
        weights = (self.units if rater is None else self.units[rater])[mask]
        if not weights.sum():
            return None
        return float(np.dot(values[mask], weights) / weights.sum())

    def tally(self) -> dict[str, int]:
        """Pairs counted, below the minimum overlap, and undefined (upper triangle)."""
        upper = np.triu(np.ones_like(self.units, dtype=bool), k=1)
        below = upper & (self.units < self.min_overlap)
        undefined = upper & ~below & ~np.isfinite(self.values)
        return {
            "pairs": int(upper.sum()),
            "counted": int((upper & self.counted()).sum()),
            "below_min_overlap": int(below.sum()),
            "undefined": int(undefined.sum()),
        }


def pairwise_statistic(
    data: npt.ArrayLike,
    statistic: Callable[[FloatArray], float],
    *,
    min_overlap: int = MIN_OVERLAP,
) -> Pairs:
    """Any two-rater statistic over every pair of raters, with the units compared.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    statistic : callable
        Maps the two rows of a pair, shape (2, N), to a float, e.g.
        ``lambda d: cohen_kappa(d[0], d[1])``; a ``ValueError`` leaves the pair NaN.
    min_overlap : int
        Pairs that compared fewer units are kept in the matrix but not in means.

    Returns
    -------
    Pairs

    Examples
    --------
    >>> from annotate.agreement import krippendorff_alpha
    >>> p = pairwise_statistic([[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 2, float("nan")]],
    ...                        krippendorff_alpha, min_overlap=3)
    >>> p.units[0].tolist(), round(p.mean(), 4), p.tally()["counted"]
    ([4, 4, 3], 0.6667, 3)
    """
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int) or min_overlap < 1:
        raise ValueError(f"min_overlap must be a positive integer; got {min_overlap!r}")
    x = _as_matrix(data)
    m = x.shape[0]
    units = pair_units(x)
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(i + 1, m):
            if units[i, j] == 0:
                continue
            # Undefined for this pair (no variation, too few units): stays NaN.
            with contextlib.suppress(ValueError):
                out[i, j] = out[j, i] = statistic(x[[i, j]])
    return Pairs(values=out, units=units, min_overlap=min_overlap)


def pairwise_alpha(
    data: npt.ArrayLike, level: str = "nominal", *, min_overlap: int = MIN_OVERLAP
) -> Pairs:
    """Krippendorff's alpha of every pair of raters, with the units each pair compared.

    As :func:`pairwise_alpha_matrix`, plus the counts; ``mean()`` is weighted by units
    compared and leaves out pairs below ``min_overlap``.

    Examples
    --------
    >>> p = pairwise_alpha([[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 2, 1]], min_overlap=4)
    >>> round(p.mean(), 4), round(p.mean(rater=2), 4)
    (0.4167, 0.125)
    """
    _level(level)
    return pairwise_statistic(data, lambda d: krippendorff_alpha(d, level), min_overlap=min_overlap)
