"""Breakdowns by annotator: every pair of raters, and each rater against the rest."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.agreement.alpha import _level, alpha_from_coincidences, krippendorff_alpha
from annotate.agreement.matrix import (
    FloatArray,
    _as_domain,
    _as_matrix,
    _encode,
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


# ---------------------------------------------------------------------------- pairs, resampled
#
# A resample of units is a vector of multiplicities w (one per unit). The two-rater
# statistics below are functions of sums over the units a pair shares, weighted by w, so all
# pairs of all resamples of a chunk come out of a few matrix products instead of one call per
# pair and resample. :func:`resampled_pair_means` gives the same numbers as
# :func:`pairwise_statistic` on the resampled matrix (tests check it).


def _shared_sums(weights: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """``out[r, i, j] = sum_n weights[r, n] * a[i, n] * b[j, n]``, shape (R, M, M)."""
    return np.einsum("rn,in,jn->rij", weights, a, b, optimize=True)


def _ccc_pairs(weights: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Lin's CCC of every pair (moments divided by n) and units compared, per resample."""
    present = (~np.isnan(x)).astype(np.float64)
    values = np.where(np.isnan(x), 0.0, x)
    n = _shared_sums(weights, present, present)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_x = _shared_sums(weights, values, present) / n
        mean_y = np.swapaxes(mean_x, 1, 2)
        var_x = _shared_sums(weights, values * values, present) / n - mean_x**2
        var_y = np.swapaxes(var_x, 1, 2)
        cov = _shared_sums(weights, values, values) / n - mean_x * mean_y
        denominator = var_x + var_y + (mean_x - mean_y) ** 2
        out = 2.0 * cov / denominator
    out[(n < 2) | ~(np.abs(denominator) > 1e-12)] = np.nan
    return out, n


def _kappa_pairs(
    weights: FloatArray, codes: IntArray, disagreement: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Cohen's kappa of every pair (codes on a fixed domain, -1 missing) per resample."""
    m, units = codes.shape
    k = disagreement.shape[0]
    present = (codes >= 0).astype(np.float64)
    safe = np.where(codes >= 0, codes, 0)
    onehot = np.zeros((m, k, units))
    rows, cols = np.nonzero(codes >= 0)
    onehot[rows, codes[rows, cols], cols] = 1.0
    n = _shared_sums(weights, present, present)
    # observed disagreement: sum_n w_n d(c_i, c_j) over shared units
    d_units = disagreement[safe[:, None, :], safe[None, :, :]] * (present[:, None] * present)
    observed = np.einsum("rn,ijn->rij", weights, d_units, optimize=True)
    # margins: rater i's category counts over the units shared with j
    margins = np.einsum("rn,ikn,jn->rijk", weights, onehot, present, optimize=True)
    other = np.swapaxes(margins, 1, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.einsum("rijk,kl,rijl->rij", margins, disagreement, other) / n
        out = 1.0 - observed / expected
    out[(n < 1) | ~(expected > 1e-12)] = np.nan
    return out, n


def _pair_mean(values: FloatArray, n: FloatArray, min_overlap: int) -> FloatArray:
    """Per resample, the mean over pairs (i < j) weighted by units, NaN if none counts."""
    upper = np.triu(np.ones(values.shape[1:], dtype=bool), k=1)
    counted = upper & np.isfinite(values) & (n >= min_overlap)
    weights = np.where(counted, n, 0.0)
    total = weights.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(counted, values * weights, 0.0), axis=(1, 2)) / total


def _kappa_disagreement(k: int, weights: str | None) -> FloatArray:
    position = np.arange(k, dtype=np.float64)
    distance = position[:, None] - position[None, :]
    if weights is None:
        return 1.0 - np.eye(k)
    return np.abs(distance) if weights == "linear" else np.square(distance)


def resampled_pair_means(
    data: npt.ArrayLike,
    unit_weights: npt.ArrayLike,
    statistic: str,
    *,
    min_overlap: int = MIN_OVERLAP,
    value_domain: npt.ArrayLike | None = None,
    weights: str | None = None,
) -> FloatArray:
    """Weighted means over pairs of a two-rater statistic, for many resamples at once.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN where missing.
    unit_weights : array_like, shape (R, N)
        Multiplicity of each unit in each of ``R`` resamples.
    statistic : {"cohen_kappa", "lin_ccc"}
        The two-rater statistic.
    min_overlap : int
        Pairs that compared fewer (resampled) units do not count.
    value_domain : array_like, optional
        Cohen's kappa: the categories in order (default: the values in ``data``).
    weights : {None, "linear", "quadratic"}
        Cohen's kappa: disagreement weights on category positions.

    Returns
    -------
    numpy.ndarray, shape (R,)
        For each resample, what ``pairwise_statistic(resampled, f, min_overlap=...).mean()``
        gives on the matrix with every unit repeated ``unit_weights[r]`` times (``f``
        :func:`annotate.agreement.cohen_kappa` with ``value_domain`` or
        :func:`annotate.agreement.lin_ccc`); NaN where no pair counts.

    Examples
    --------
    >>> data = [[1, 2, 3, 4, 5], [1, 3, 3, 5, 4], [2, 2, 3, 4, 5]]
    >>> resampled_pair_means(data, [[1, 1, 1, 1, 1], [2, 0, 1, 1, 1]], "lin_ccc",
    ...                      min_overlap=2).round(4)
    array([0.8423, 0.8759])
    """
    x = _as_matrix(data)
    w = np.asarray(unit_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"unit_weights must have shape (R, {x.shape[1]}); got {w.shape}")
    if statistic == "lin_ccc":
        values, n = _ccc_pairs(w, x)
    elif statistic == "cohen_kappa":
        flat = x[~np.isnan(x)]
        domain = np.unique(flat) if value_domain is None else _as_domain(value_domain)
        codes = np.full(x.shape, -1, dtype=np.intp)
        codes[~np.isnan(x)] = _encode(flat, domain)
        values, n = _kappa_pairs(w, codes, _kappa_disagreement(domain.size, weights))
    else:
        raise ValueError(f"unknown statistic {statistic!r}; expected cohen_kappa or lin_ccc")
    return _pair_mean(values, n, min_overlap)
