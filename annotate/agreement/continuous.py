"""ICC in the form a design allows, with intervals: what a report shows for a rating scale.

A fully crossed design (every unit rated at least twice was rated by every rater) gets the
two-way forms ICC(2,1) and ICC(2,k) (raters a random sample, absolute agreement). With a pool
of raters larger than the overlap, or raters skipping units, no two-way ANOVA fits; the one-way
forms ICC(1) and ICC(1,k) do, over the units rated at least twice, with ``k0`` the adjusted
mean number of ratings per unit (:func:`annotate.agreement.icc.oneway_anova`).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.agreement.icc import icc, icc_oneway, icc_oneway_f_ci, oneway_anova
from annotate.agreement.intervals import (
    CONFIDENCE,
    N_BOOT,
    SEED,
    check_options,
    draws,
    percentile,
    unit_interval,
)
from annotate.agreement.matrix import _as_matrix

__all__ = ["icc_report"]


def _oneway_resampled(x: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ICC(1) and ICC(1,k) on each resample of the units (columns) of ``x``, shape (n_boot,).

    The unbalanced one-way ANOVA is a sum over units of each unit's count ``k``, sum ``S``
    and sum of squares ``Q``, so a resample (multiplicities ``w``) needs only weighted sums:
    the same numbers as :func:`annotate.agreement.icc.icc_oneway` on the resampled matrix.
    """
    present = ~np.isnan(x)
    k = present.sum(axis=0).astype(np.float64)
    values = np.where(present, x, 0.0)
    s = values.sum(axis=0)
    q = np.einsum("ij,ij->j", values, values)
    within = q - s * s / k
    parts = [[], []]
    for w in draws(np.ones(x.shape[1]), n_boot, seed):
        w = w.astype(np.float64)
        n = w.sum(axis=1)
        total = w @ k
        ss_between = w @ (s * s / k) - np.square(w @ s) / total
        msb = ss_between / (n - 1.0)
        msw = (w @ within) / (total - n)
        k0 = (total - (w @ (k * k)) / total) / (n - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts[0].append((msb - msw) / (msb + (k0 - 1.0) * msw))
            parts[1].append((msb - msw) / msb)
    single, average = (np.concatenate(p) for p in parts)
    return np.where(np.isfinite(single), single, np.nan), np.where(
        np.isfinite(average), average, np.nan
    )


def _design(x: np.ndarray) -> tuple[str, str]:
    present = ~np.isnan(x)
    k = present.sum(axis=0)
    pairable = k >= 2
    raters = x.shape[0]
    partial = int(np.count_nonzero(pairable & (k < raters)))
    if not partial and np.count_nonzero(pairable) >= 2:
        return "complete", (
            f"every unit rated at least twice was rated by all {raters} annotators: "
            "two-way random effects, absolute agreement (ICC(2,1), ICC(2,k))"
        )
    return "incomplete", (
        f"{partial} of {int(np.count_nonzero(pairable))} units rated at least twice lack some "
        f"of the {raters} annotators (a pool larger than the overlap, or skipped units): "
        "one-way random effects over those units (ICC(1), ICC(1,k) with k0 ratings per unit)"
    )


def icc_report(
    data: npt.ArrayLike,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The ICC forms that fit the design of ``data``, with bootstrap intervals.

    Parameters
    ----------
    data : array_like, shape (M, N)
        Scores, NaN where missing.
    n_boot, seed, confidence
        The project's bootstrap defaults (:mod:`annotate.agreement.intervals`); units are
        resampled.

    Returns
    -------
    dict
        ``design`` ("complete" or "incomplete"), ``why`` (in words), ``form`` and
        ``form_k`` (the single-rating and mean-of-k forms), ``units`` and
        ``raters_per_unit`` (``min``, ``max``, ``k`` used: the raters for a complete design,
        ``k0`` otherwise), and ``single`` and ``average``: each the ICC with its interval
        (:meth:`annotate.agreement.intervals.Interval.as_dict`, key ``icc``). The one-way
        forms also carry ``f_ci``, the F-based interval of McGraw & Wong (1996). ``reason``
        when no form is defined (fewer than two units rated twice, no variance).

    Examples
    --------
    >>> nan = float("nan")
    >>> r = icc_report([[1, 2, 3, nan, 4], [2, 2, nan, 5, 4], [nan, 3, 4, 5, 5]], n_boot=100)
    >>> r["design"], r["form"], r["units"], r["raters_per_unit"]["max"]
    ('incomplete', 'ICC1', 5, 3)
    """
    check_options(n_boot, confidence, seed)
    x = _as_matrix(data)
    design, why = _design(x)
    out: dict[str, Any] = {"design": design, "why": why}
    try:
        anova = oneway_anova(x)
    except ValueError as err:
        out.update(form=None, form_k=None, units=0, reason=str(err))
        return out
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    if design == "complete":
        complete = x[:, (~np.isnan(x)).all(axis=0)]
        out.update(
            form="ICC2",
            form_k="ICC2k",
            units=int(complete.shape[1]),
            raters_per_unit={"min": x.shape[0], "max": x.shape[0], "k": float(x.shape[0])},
        )
        for key, form in (("single", "ICC2"), ("average", "ICC2k")):
            interval = unit_interval(lambda d, f=form: icc(d, f), complete, **options)
            out[key] = interval.as_dict("icc")
        return out
    out.update(
        form="ICC1",
        form_k="ICC1k",
        units=anova.units,
        raters_per_unit={"min": anova.raters_min, "max": anova.raters_max, "k": anova.k0},
    )
    pairable = x[:, (~np.isnan(x)).sum(axis=0) >= 2]
    resampled = _oneway_resampled(pairable, n_boot, seed)
    for key, form, stats in (("single", "ICC1", resampled[0]), ("average", "ICC1k", resampled[1])):
        try:
            estimate = icc_oneway(pairable, form)
        except ValueError as err:
            out[key] = {"icc": None, "reason": str(err)}
            continue
        out[key] = percentile(estimate, stats, n_boot, confidence, seed, "units").as_dict("icc")
        try:
            low, high = icc_oneway_f_ci(pairable, form, confidence)
            out[key]["f_ci"] = [low, high]
        except ValueError:
            out[key]["f_ci"] = None
    return out
