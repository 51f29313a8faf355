"""Means over pairs of raters, recomputed on many resamples of the units at once.

A resample of units is a vector of multiplicities ``w`` (one per unit). Cohen's kappa and
Lin's CCC of a pair are functions of a few sums over the units the pair shares, weighted by
``w``; each unit adds to the sums of the few pairs that rated it. Those contributions form
one sparse (units x pair-sums) matrix, built once, so the sums of every pair for a chunk of
resamples are one sparse-dense product. :func:`resampled_pair_means` gives the numbers that
recomputing :func:`annotate.agreement.pairwise_statistic` on every resampled matrix gives
(the tests check it), at a fraction of the time (bench/agreement_intervals.py).
"""

import numpy as np
import numpy.typing as npt

from annotate.agreement.matrix import FloatArray, _as_domain, _as_matrix, _encode
from annotate.agreement.pairwise import MIN_OVERLAP

__all__ = ["PairSums", "resampled_pair_means"]

STATISTICS = ("cohen_kappa", "lin_ccc")


def _kappa_disagreement(k: int, weights: str | None) -> FloatArray:
    position = np.arange(k, dtype=np.float64)
    distance = position[:, None] - position[None, :]
    if weights is None:
        return 1.0 - np.eye(k)
    if weights == "linear":
        return np.abs(distance)
    if weights == "quadratic":
        return np.square(distance)
    raise ValueError(f"unknown weights {weights!r}; expected None, 'linear', 'quadratic'")


class PairSums:
    """The per-unit contributions to every pair's sums, ready for many resamples.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN where missing.
    statistic : {"cohen_kappa", "lin_ccc"}
        The two-rater statistic.
    value_domain : array_like, optional
        Cohen's kappa: the categories in order (default: the values in ``data``).
    weights : {None, "linear", "quadratic"}
        Cohen's kappa: disagreement weights on category positions.
    """

    def __init__(
        self,
        data: npt.ArrayLike,
        statistic: str,
        *,
        value_domain: npt.ArrayLike | None = None,
        weights: str | None = None,
    ) -> None:
        from scipy.sparse import csr_matrix  # scipy is a dependency; imported where used

        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; expected one of {STATISTICS}")
        x = _as_matrix(data)
        present = ~np.isnan(x)
        self.statistic = statistic
        self.units = x.shape[1]
        if statistic == "cohen_kappa":
            flat = x[present]
            domain = np.unique(flat) if value_domain is None else _as_domain(value_domain)
            codes = np.full(x.shape, -1, dtype=np.intp)
            codes[present] = _encode(flat, domain)
            self.disagreement = _kappa_disagreement(domain.size, weights)
            k = domain.size
            self.width = 2 + 2 * k

            def entries(i: int, j: int, shared: npt.NDArray[np.intp]) -> Entries:
                a, b = codes[i, shared], codes[j, shared]
                ones = np.ones(shared.size)
                return (
                    (np.zeros_like(a), ones),
                    (np.ones_like(a), self.disagreement[a, b]),
                    (2 + a, ones),
                    (2 + k + b, ones),
                )
        else:
            self.width = 6

            def entries(i: int, j: int, shared: npt.NDArray[np.intp]) -> Entries:
                a, b = x[i, shared], x[j, shared]
                column = np.zeros(shared.size, dtype=np.intp)
                return tuple(
                    (column + f, v)
                    for f, v in enumerate((np.ones(shared.size), a, b, a * a, b * b, a * b))
                )

        m = x.shape[0]
        self.pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        rows, cols, values = [], [], []
        for p, (i, j) in enumerate(self.pairs):
            shared = np.flatnonzero(present[i] & present[j])
            for feature, value in entries(i, j, shared):
                rows.append(shared)
                cols.append(p * self.width + feature)
                values.append(value)
        shape = (self.units, len(self.pairs) * self.width)
        self.matrix = csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=shape
        ).T.tocsr()

    def values(self, unit_weights: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """The statistic of every pair and its units compared, each shape (R, pairs)."""
        w = np.asarray(unit_weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.units:
            raise ValueError(f"unit_weights must have shape (R, {self.units}); got {w.shape}")
        sums = np.asarray(self.matrix @ w.T).T.reshape(w.shape[0], len(self.pairs), self.width)
        n = sums[..., 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.statistic == "cohen_kappa":
                k = self.disagreement.shape[0]
                rows, cols = sums[..., 2 : 2 + k], sums[..., 2 + k :]
                expected = np.einsum("rpk,kl,rpl->rp", rows, self.disagreement, cols) / n
                out = 1.0 - sums[..., 1] / expected
                out[(n < 1) | ~(expected > 1e-12)] = np.nan
                return out, n
            mean_a, mean_b = sums[..., 1] / n, sums[..., 2] / n
            var_a = sums[..., 3] / n - mean_a**2
            var_b = sums[..., 4] / n - mean_b**2
            cov = sums[..., 5] / n - mean_a * mean_b
            denominator = var_a + var_b + (mean_a - mean_b) ** 2
            out = 2.0 * cov / denominator
        out[(n < 2) | ~(np.abs(denominator) > 1e-12)] = np.nan
        return out, n

    def means(self, unit_weights: npt.ArrayLike, min_overlap: int = MIN_OVERLAP) -> FloatArray:
        """Per resample, the mean over pairs weighted by units compared, pairs under
        ``min_overlap`` units left out; NaN where no pair counts."""
        values, n = self.values(unit_weights)
        counted = np.isfinite(values) & (n >= min_overlap)
        weights = np.where(counted, n, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(np.where(counted, values, 0.0) * weights, axis=1) / weights.sum(axis=1)


Entries = tuple[tuple[npt.NDArray[np.intp], FloatArray], ...]


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
    value_domain, weights
        Cohen's kappa: as :func:`annotate.agreement.cohen_kappa`.

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
    sums = PairSums(data, statistic, value_domain=value_domain, weights=weights)
    return sums.means(unit_weights, min_overlap)
