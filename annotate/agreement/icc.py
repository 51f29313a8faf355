"""Intraclass correlations (Shrout & Fleiss forms) and Lin's concordance correlation.

References
----------
Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
reliability. Psychological Bulletin, 86(2), 420-428.
Lin, L. I.-K. (1989). A concordance correlation coefficient to evaluate reproducibility.
Biometrics, 45(1), 255-268.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.agreement.matrix import (
    FloatArray,
    _as_matrix,
    _floats,
    _fmt,
    _fmt_list,
)


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


# ---------------------------------------------------------------------------- one-way, unbalanced


@dataclass(frozen=True, slots=True)
class OneWay:
    """One-way ANOVA of units rated at least twice, any raters, any number per unit.

    ``k0 = (N - sum k_i^2 / N) / (n - 1)`` is the adjusted mean number of ratings per unit
    of an unbalanced design (Snedecor & Cochran; Donner 1986); it equals ``k`` when every
    unit has ``k`` ratings.
    """

    units: int  # n: units with two or more ratings
    ratings: int  # N: their ratings
    k0: float
    raters_min: int
    raters_max: int
    msb: float  # between units, df n - 1
    msw: float  # within units, df N - n

    @property
    def df_between(self) -> int:
        return self.units - 1

    @property
    def df_within(self) -> int:
        return self.ratings - self.units


def oneway_anova(data: npt.ArrayLike) -> OneWay:
    """The unbalanced one-way ANOVA behind :func:`icc_oneway`.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Scores, NaN (or None) where missing. Units with fewer than two scores are left out.

    Returns
    -------
    OneWay
        Units and ratings used, ``k0``, the range of ratings per unit and the mean squares.

    Raises
    ------
    ValueError
        If fewer than two units have two or more scores.

    Examples
    --------
    >>> a = oneway_anova([[1, 2, 3, float("nan")], [2, 2, float("nan"), 5], [1, 3, 4, 5]])
    >>> a.units, a.ratings, round(a.k0, 4), a.raters_min, a.raters_max
    (4, 10, 2.4667, 2, 3)
    """
    x = _as_matrix(data)
    present = ~np.isnan(x)
    k = present.sum(axis=0)
    keep = k >= 2
    if np.count_nonzero(keep) < 2:
        raise ValueError(
            f"the one-way ICC needs two or more units rated at least twice; got "
            f"{int(np.count_nonzero(keep))}"
        )
    x, present, k = x[:, keep], present[:, keep], k[keep]
    n, total = int(k.size), int(k.sum())
    y = np.where(present, x, 0.0)
    means = y.sum(axis=0) / k
    grand = float(y.sum()) / total
    ss_between = float(np.sum(k * np.square(means - grand)))
    ss_within = float(np.sum(np.where(present, np.square(x - means), 0.0)))
    k0 = (total - float(np.sum(np.square(k))) / total) / (n - 1)
    return OneWay(
        units=n,
        ratings=total,
        k0=k0,
        raters_min=int(k.min()),
        raters_max=int(k.max()),
        msb=ss_between / (n - 1),
        msw=ss_within / (total - n) if total > n else 0.0,
    )


ONEWAY_FORMS = ("ICC1", "ICC1k")


def icc_oneway(data: npt.ArrayLike, form: str = "ICC1") -> float:
    """One-way random-effects ICC for incomplete designs (any raters per unit).

    Parameters
    ----------
    data : array_like, shape (M, N)
        Scores, NaN where missing: unit ``u`` may be rated by any two or more of the ``M``
        raters (a pool larger than the overlap); units rated fewer than twice are left out.
    form : {"ICC1", "ICC1k"}
        ``ICC1`` = ICC(1) = ``(MSB - MSW) / (MSB + (k0 - 1) MSW)``, the reliability of one
        rating; ``ICC1k`` = ``(MSB - MSW) / MSB``, the reliability of the mean of ``k0``
        ratings (Shrout & Fleiss 1979, case 1; McGraw & Wong 1996, ICC(1) and ICC(k)), with
        ``k0`` of :func:`oneway_anova`. On complete data they equal :func:`icc` ``ICC1`` and
        ``ICC1k``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``form`` is unknown, fewer than two units are rated twice, or there is no
        variance (MSB is 0).

    Examples
    --------
    >>> round(icc_oneway([[1, 2, 3, float("nan")], [2, 2, float("nan"), 5], [1, 3, 4, 5]]), 4)
    0.8817
    """
    if form not in ONEWAY_FORMS:
        raise ValueError(f"unknown one-way ICC form {form!r}; expected one of ICC1, ICC1k")
    a = oneway_anova(data)
    if form == "ICC1k":
        return _ratio(a.msb - a.msw, a.msb, form)
    return _ratio(a.msb - a.msw, a.msb + (a.k0 - 1.0) * a.msw, form)


def icc_oneway_f_ci(
    data: npt.ArrayLike, form: str = "ICC1", confidence: float = 0.95
) -> tuple[float, float]:
    """F-based confidence interval of :func:`icc_oneway` (McGraw & Wong 1996, case 1).

    With ``F = MSB / MSW`` on ``(n - 1, N - n)`` degrees of freedom,
    ``F_L = F / F_{(1+c)/2}(n - 1, N - n)`` and ``F_U = F * F_{(1+c)/2}(N - n, n - 1)``:
    ICC(1) lies in ``[(F_L - 1) / (F_L + k0 - 1), (F_U - 1) / (F_U + k0 - 1)]`` and
    ICC(1,k) in ``[1 - 1 / F_L, 1 - 1 / F_U]``. Exact for balanced data; with unequal
    ratings per unit, ``k0`` makes it the usual approximation.

    Raises
    ------
    ValueError
        As :func:`icc_oneway`, or if MSW is 0 (F is infinite).

    Examples
    --------
    >>> low, high = icc_oneway_f_ci([[1, 2, 3, 4, 5], [1, 3, 3, 5, 4]])
    >>> round(low, 3), round(high, 3)
    (0.325, 0.985)
    """
    from scipy.stats import f as f_dist  # scipy is a dependency; imported where used

    if form not in ONEWAY_FORMS:
        raise ValueError(f"unknown one-way ICC form {form!r}; expected one of ICC1, ICC1k")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence!r}")
    a = oneway_anova(data)
    if a.msw == 0.0:
        raise ValueError("within-unit variance is zero; the F interval is undefined")
    f_obs = a.msb / a.msw
    q = (1.0 + confidence) / 2.0
    f_low = f_obs / float(f_dist.ppf(q, a.df_between, a.df_within))
    f_high = f_obs * float(f_dist.ppf(q, a.df_within, a.df_between))
    if form == "ICC1k":
        return 1.0 - 1.0 / f_low, 1.0 - 1.0 / f_high
    return (f_low - 1.0) / (f_low + a.k0 - 1.0), (f_high - 1.0) / (f_high + a.k0 - 1.0)
