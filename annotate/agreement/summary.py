"""The coefficients a report shows for one variable, each with its bootstrap interval.

One place decides what is reported at each level of measurement, so the service's
``/agreement/summary`` and ``improv-annotate agreement FILE.csv`` show the same figures:

- every level: Krippendorff's alpha (:func:`annotate.agreement.intervals.alpha_interval`);
- nominal and ordinal: Fleiss' kappa (or the reason it is undefined, e.g. units with
  different numbers of ratings), Gwet's AC1, and Cohen's kappa per pair of raters (weighted
  for ordinal data) with its mean over pairs;
- interval and ratio: the ICC forms the design allows (:func:`icc_report`) and Lin's CCC per
  pair with its mean over pairs.

Means over pairs are weighted by the units each pair compared and leave out pairs that
compared fewer than ``min_overlap`` units (:class:`annotate.agreement.pairwise.Pairs`).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.agreement.continuous import icc_report
from annotate.agreement.icc import lin_ccc
from annotate.agreement.intervals import (
    CONFIDENCE,
    N_BOOT,
    SEED,
    Interval,
    alpha_interval,
    check_options,
    draws,
    percentile,
    profile_interval,
)
from annotate.agreement.kappa import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_resampled,
    gwet_ac1,
    gwet_ac1_resampled,
)
from annotate.agreement.matrix import FloatArray, _as_matrix
from annotate.agreement.pairboot import PairSums
from annotate.agreement.pairwise import MIN_OVERLAP, pairwise_statistic

__all__ = ["alpha_summary", "categorical_summary", "continuous_summary", "pairwise_mean"]


def pairwise_mean(
    data: npt.ArrayLike,
    statistic: str,
    *,
    min_overlap: int = MIN_OVERLAP,
    value_domain: npt.ArrayLike | None = None,
    weights: str | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """A two-rater statistic's weighted mean over pairs, its interval and the pair tally.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN where missing.
    statistic : {"cohen_kappa", "lin_ccc"}
        Cohen's kappa (``value_domain``, ``weights`` as for
        :func:`annotate.agreement.cohen_kappa`) or Lin's CCC.
    min_overlap : int
        Pairs that compared fewer units are shown but not averaged.

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``n_boot``, ``dropped``, ... as
        :meth:`annotate.agreement.intervals.Interval.as_dict`; ``min_overlap``; the tally of
        pairs (``pairs``, ``counted``, ``below_min_overlap``, ``undefined``). The interval
        resamples units (the matrix's columns, one by one, as
        :func:`annotate.agreement.intervals.unit_interval`) and recomputes every pair and the
        mean on each resample (:class:`annotate.agreement.pairboot.PairSums`).
    """
    check_options(n_boot, confidence, seed)
    x = _as_matrix(data)
    domain = value_domain
    if statistic == "cohen_kappa" and domain is None:
        domain = np.unique(x[~np.isnan(x)])
    if statistic == "cohen_kappa":

        def pair(d: FloatArray) -> float:
            return cohen_kappa(d[0], d[1], weights, value_domain=domain)
    else:

        def pair(d: FloatArray) -> float:
            return lin_ccc(d[0], d[1])

    pairs = pairwise_statistic(x, pair, min_overlap=min_overlap)
    tally = {"min_overlap": min_overlap, **pairs.tally()}
    estimate = pairs.mean()
    if estimate is None:
        reason = (
            f"no pair of annotators compared {min_overlap} or more units with the statistic defined"
        )
        return {
            **Interval(None, None, None, n_boot, 0, confidence, seed, reason).as_dict("mean"),
            **tally,
        }
    sums = PairSums(x, statistic, value_domain=domain, weights=weights)
    stats = np.concatenate(
        [sums.means(chunk, min_overlap) for chunk in draws(np.ones(x.shape[1]), n_boot, seed)]
    )
    interval = percentile(estimate, stats, n_boot, confidence, seed, "units")
    return {**interval.as_dict("mean"), **tally}


def categorical_summary(
    data: npt.ArrayLike,
    level: str,
    *,
    categories: Sequence[float] | None = None,
    min_overlap: int = MIN_OVERLAP,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Fleiss' kappa, Gwet's AC1 and pairwise Cohen's kappa of nominal or ordinal data.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Coded categories, NaN where missing.
    level : {"nominal", "ordinal"}
        Ordinal data get Cohen's kappa with quadratic weights.
    categories : sequence of float, optional
        The full scale (it enters AC1's chance agreement and the kappa weights); default:
        the values in the data.

    Returns
    -------
    dict
        ``fleiss_kappa``, ``gwet_ac1`` (each ``{"estimate", "ci_low", "ci_high", "n_boot",
        "dropped", ...}``, with ``reason`` where undefined) and ``cohen_kappa_pairwise``
        (see :func:`pairwise_mean`, plus ``weights``).

    Examples
    --------
    >>> nan = float("nan")
    >>> s = categorical_summary([[1, 2, 1, 2], [1, 2, 2, nan], [1, nan, 2, 2]], "nominal",
    ...                         n_boot=50, min_overlap=2)
    >>> "needs the same number per unit" in s["fleiss_kappa"]["reason"]
    True
    """
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    x = _as_matrix(data)
    domain = None if categories is None else np.asarray(categories, dtype=np.float64)
    weights = None if level == "nominal" else "quadratic"

    cohen = pairwise_mean(
        x,
        "cohen_kappa",
        min_overlap=min_overlap,
        value_domain=domain,
        weights=weights,
        **options,
    )
    return {
        "fleiss_kappa": profile_interval(
            fleiss_kappa, x, resampled=fleiss_kappa_resampled, **options
        ).as_dict("estimate"),
        "gwet_ac1": profile_interval(
            lambda d: gwet_ac1(d, categories=domain),
            x,
            resampled=lambda c, w: gwet_ac1_resampled(c, w, domain),
            **options,
        ).as_dict("estimate"),
        "cohen_kappa_pairwise": {**cohen, "weights": weights},
    }


def continuous_summary(
    data: npt.ArrayLike,
    *,
    min_overlap: int = MIN_OVERLAP,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """ICC in the form the design allows and Lin's CCC over pairs, with intervals.

    Returns
    -------
    dict
        ``icc`` (:func:`annotate.agreement.continuous.icc_report`) and ``lin_ccc_pairwise``
        (:func:`pairwise_mean`).
    """
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    x = _as_matrix(data)
    return {
        "icc": icc_report(x, **options),
        "lin_ccc_pairwise": pairwise_mean(x, "lin_ccc", min_overlap=min_overlap, **options),
    }


def alpha_summary(
    data: npt.ArrayLike,
    level: str,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Krippendorff's alpha with its interval: ``{"alpha", "ci_low", "ci_high", ...}``."""
    interval = alpha_interval(data, level, n_boot=n_boot, seed=seed, confidence=confidence)
    return interval.as_dict("alpha")
