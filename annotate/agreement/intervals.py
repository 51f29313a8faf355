"""The one bootstrap every agreement interval comes from: units resampled, one seed policy.

Every interval the project reports (the dashboard, ``/agreement/summary``, the data card,
``improv-annotate agreement FILE.csv``) is a percentile interval over :data:`N_BOOT`
resamples of the units, drawn from ``numpy.random.default_rng(SEED)``, at
:data:`CONFIDENCE`. Resampling ``N`` units with replacement is drawn as a multinomial of
``N`` over classes of interchangeable units:

- a statistic that depends only on each unit's *profile* (the sorted values it got:
  Krippendorff's alpha, Fleiss' kappa, Gwet's AC1, percent agreement) is resampled over the
  distinct profiles in their sorted order (:func:`profile_interval`,
  :func:`alpha_interval`), so the same data give the same interval whatever order the units
  or raters come in, and wherever the data are held (a rater x unit matrix in the service,
  profile counts in the export's data card);
- a statistic that depends on who rated what (Cohen's kappa per pair, ICC) is resampled
  over the units one by one, in column order (:func:`unit_interval`).

Resamples on which the statistic is undefined (a ``ValueError``, or NaN) are dropped and
counted (:attr:`Interval.dropped`); when more than half are dropped there is no interval.
"""

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.agreement.alpha import alpha_from_coincidences, unit_coincidences
from annotate.agreement.matrix import FloatArray, _as_matrix

N_BOOT = 1000
"""Resamples of every interval unless a caller asks for another number."""
SEED = 0
"""The project's bootstrap seed: the same data give the same interval everywhere."""
CONFIDENCE = 0.95
"""Level of every interval."""

# Resamples drawn at once: bounds the memory of the multinomial draws to _CHUNK x classes.
_CHUNK = 64

Profile = tuple[float, ...]

__all__ = [
    "CONFIDENCE",
    "N_BOOT",
    "SEED",
    "Interval",
    "alpha_interval",
    "bootstrap_ci",
    "profile_interval",
    "profiles_of",
    "unit_interval",
]


@dataclass(frozen=True, slots=True)
class Interval:
    """A statistic with its percentile bootstrap interval.

    ``low``/``high`` are None when the statistic is undefined on more than half of the
    resamples (``reason`` says so); ``estimate`` is None when it is undefined on the data
    (``reason`` gives the statistic's own message).
    """

    estimate: float | None
    low: float | None
    high: float | None
    n_boot: int
    dropped: int
    confidence: float = CONFIDENCE
    seed: int = SEED
    reason: str | None = None

    def as_dict(self, name: str = "estimate") -> dict[str, Any]:
        """Plain dict for JSON: ``{name, ci_low, ci_high, n_boot, dropped, ...}``."""
        out: dict[str, Any] = {
            name: self.estimate,
            "ci_low": self.low,
            "ci_high": self.high,
            "n_boot": self.n_boot,
            "dropped": self.dropped,
            "confidence": self.confidence,
            "seed": self.seed,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def check_options(n_boot: int, confidence: float, seed: int = SEED) -> None:
    """Raise ``ValueError`` unless ``n_boot`` is a positive integer, ``confidence`` lies in
    (0, 1) and ``seed`` is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1; got {confidence!r}")


def draws(sizes: FloatArray, n_boot: int, seed: int) -> Iterator[npt.NDArray[np.int64]]:
    """Multiplicities of each class in each resample, in chunks of shape (b, C).

    ``sizes[c]`` units are in class ``c``; a resample draws ``sum(sizes)`` units with
    replacement, i.e. a multinomial with probabilities ``sizes / sum(sizes)``. When every
    class is one unit, the units are drawn by index and counted (the same distribution,
    without a binomial per unit). Chunking does not change the stream: the same seed gives
    the same draws for any chunk size.
    """
    total = int(sizes.sum())
    rng = np.random.default_rng(seed)
    single = bool(np.all(sizes == 1))
    shares = sizes / total
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        if single:
            index = rng.integers(0, total, size=(b, total))
            index += np.arange(b)[:, None] * total
            yield np.bincount(index.reshape(-1), minlength=b * total).reshape(b, total)
        else:
            yield rng.multinomial(total, shares, size=b)


def percentile(
    estimate: float, stats: FloatArray, n_boot: int, confidence: float, seed: int, what: str
) -> Interval:
    """The percentile interval of ``stats`` (one per resample, NaN where undefined)."""
    finite = stats[np.isfinite(stats)]
    dropped = n_boot - int(finite.size)
    if 2 * dropped > n_boot:
        return Interval(
            estimate,
            None,
            None,
            n_boot,
            dropped,
            confidence,
            seed,
            reason=f"undefined on {dropped} of {n_boot} resamples; too few {what} for an interval",
        )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), n_boot, dropped, confidence, seed)


def _undefined(err: ValueError, n_boot: int, confidence: float, seed: int) -> Interval:
    return Interval(None, None, None, n_boot, 0, confidence, seed, reason=str(err))


def profiles_of(data: npt.ArrayLike) -> Counter[Profile]:
    """Count the units of a reliability matrix by profile (the sorted values of a unit).

    Parameters
    ----------
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.

    Returns
    -------
    collections.Counter
        ``sorted values of a unit -> number of units``, over units with at least one value
        (units nobody rated are not units of the data).

    Examples
    --------
    >>> profiles_of([[1, 2, 1], [1, float("nan"), 1]])
    Counter({(1.0, 1.0): 2, (2.0,): 1})
    """
    x = _as_matrix(data)
    out: Counter[Profile] = Counter()
    for column in np.sort(x, axis=0).T:  # NaN sorts last
        values = column[~np.isnan(column)]
        if values.size:
            out[tuple(values.tolist())] += 1
    return out


def _canonical(profiles: Mapping[Profile, int]) -> tuple[list[Profile], FloatArray]:
    merged: Counter[Profile] = Counter()
    for k, n in profiles.items():
        merged[tuple(sorted(float(v) for v in k))] += int(n)
    keys = sorted((k for k, n in merged.items() if n > 0 and k), key=_order)
    return keys, np.array([merged[k] for k in keys], dtype=np.float64)


def _order(key: Profile) -> tuple[int, Profile]:
    return (len(key), key)


def alpha_interval(
    profiles: Mapping[Profile, int] | npt.ArrayLike,
    level: str = "nominal",
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Krippendorff's alpha with its bootstrap interval, from unit profiles.

    Parameters
    ----------
    profiles : mapping or array_like
        ``sorted values of a unit -> number of units`` (units with one value included: they
        count when resampling, not in the coincidences), or a reliability matrix of shape
        (M, N), whose profiles are taken with :func:`profiles_of`.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.
    n_boot, seed, confidence
        The project's defaults: :data:`N_BOOT`, :data:`SEED`, :data:`CONFIDENCE`.

    Returns
    -------
    Interval
        Alpha (as :func:`annotate.agreement.krippendorff_alpha`) from the summed unit
        coincidences, and the percentile interval of alpha over resamples of the units.
        Undefined alpha gives ``estimate=None`` and the reason.

    Examples
    --------
    >>> i = alpha_interval({(0.0, 0.0): 3, (0.0, 1.0): 1, (1.0, 1.0): 2}, n_boot=200)
    >>> round(i.estimate, 3), i.low <= i.estimate <= i.high, i.dropped
    (0.686, True, 4)
    """
    check_options(n_boot, confidence, seed)
    if not isinstance(profiles, Mapping):
        profiles = profiles_of(profiles)
    # A unit with one value adds nothing to the coincidences, whatever the value, but counts
    # when units are resampled: all such units share one empty profile, so the draws are the
    # same whether a caller kept their values (the service) or not (an export's card).
    lone = sum(int(n) for k, n in profiles.items() if len(k) < 2)
    keys, counts = _canonical({k: n for k, n in profiles.items() if len(k) > 1})
    domain = np.unique([v for key in keys for v in key])
    if not domain.size:
        err = ValueError("no unit has two or more values; agreement needs units rated twice")
        return _undefined(err, n_boot, confidence, seed)
    if lone:
        keys, counts = [(), *keys], np.concatenate([[float(lone)], counts])
    size = domain.size * domain.size
    blocks = np.stack(
        [unit_coincidences(list(k), domain).reshape(-1) if k else np.zeros(size) for k in keys]
    )
    shape = (domain.size, domain.size)
    try:
        estimate = alpha_from_coincidences((counts @ blocks).reshape(shape), domain, level)
    except ValueError as err:
        return _undefined(err, n_boot, confidence, seed)
    stats = np.full(n_boot, np.nan)
    b = 0
    for chunk in draws(counts, n_boot, seed):
        for o in chunk.astype(np.float64) @ blocks:
            # undefined on this resample: stays NaN and is counted as dropped
            with contextlib.suppress(ValueError):
                stats[b] = alpha_from_coincidences(o.reshape(shape), domain, level)
            b += 1
    return percentile(float(estimate), stats, n_boot, confidence, seed, "units")


def _profile_matrix(keys: Sequence[Profile]) -> FloatArray:
    """Profiles as columns of a (longest profile, P) matrix, NaN-padded."""
    rows = max(len(k) for k in keys)
    out = np.full((rows, len(keys)), np.nan)
    for j, key in enumerate(keys):
        out[: len(key), j] = key
    return out


def profile_interval(
    statistic: Callable[[FloatArray], float],
    profiles: Mapping[Profile, int] | npt.ArrayLike,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    resampled: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
) -> Interval:
    """Any statistic of unit profiles (Fleiss' kappa, Gwet's AC1, ...) with its interval.

    Parameters
    ----------
    statistic : callable
        Maps a reliability matrix (M, N) to a float and depends only on each unit's
        values, not on who gave them (raters are not identified: the matrix it gets holds
        each unit's values in its first rows).
    profiles : mapping or array_like
        As for :func:`alpha_interval`.
    n_boot, seed, confidence
        The project's defaults.
    resampled : callable, optional
        ``resampled(columns, weights)`` -> ``statistic`` on each resample at once, shape
        (R,), NaN where undefined; ``columns`` holds one column per distinct profile and
        ``weights`` (R, profiles) their multiplicities (e.g.
        :func:`annotate.agreement.kappa.fleiss_kappa_resampled`). Without it, the
        statistic is called on every resampled matrix.

    Returns
    -------
    Interval
        ``statistic`` on the data and over resamples drawn exactly as for
        :func:`alpha_interval` (same seed, same draws for the same profiles).

    Examples
    --------
    >>> from annotate.agreement import gwet_ac1
    >>> i = profile_interval(gwet_ac1, [[1, 1, 2, 1, 2, 2], [1, 1, 2, 2, 2, 2]], n_boot=200)
    >>> round(i.estimate, 4), i.low <= i.estimate <= i.high
    (0.6757, True)
    """
    check_options(n_boot, confidence, seed)
    if not isinstance(profiles, Mapping):
        profiles = profiles_of(profiles)
    keys, counts = _canonical(profiles)
    if not keys:
        return _undefined(ValueError("data holds no ratings"), n_boot, confidence, seed)
    columns = _profile_matrix(keys)
    try:
        estimate = float(statistic(np.repeat(columns, counts.astype(np.intp), axis=1)))
    except ValueError as err:
        return _undefined(err, n_boot, confidence, seed)
    if resampled is None:
        return _resampled(statistic, columns, counts, estimate, n_boot, seed, confidence)
    stats = np.concatenate([resampled(columns, w) for w in draws(counts, n_boot, seed)])
    return percentile(estimate, stats, n_boot, confidence, seed, "units")


def _resampled(
    statistic: Callable[[FloatArray], float],
    columns: FloatArray,
    sizes: FloatArray,
    estimate: float,
    n_boot: int,
    seed: int,
    confidence: float,
    what: str = "units",
    axis: int = 1,
) -> Interval:
    stats = np.full(n_boot, np.nan)
    b = 0
    for chunk in draws(sizes, n_boot, seed):
        for weights in chunk:
            # undefined on this resample: stays NaN and is counted as dropped
            with contextlib.suppress(ValueError):
                stats[b] = statistic(np.repeat(columns, weights, axis=axis))
            b += 1
    return percentile(estimate, stats, n_boot, confidence, seed, what)


_AXES = {"units": 1, "raters": 0}


def unit_interval(
    statistic: Callable[[FloatArray], float],
    data: npt.ArrayLike,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    axis: str = "units",
) -> Interval:
    """A statistic that depends on who rated what (Cohen's kappa, ICC) with its interval.

    Parameters
    ----------
    statistic : callable
        Maps a reliability matrix (M, N) to a float.
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    n_boot, seed, confidence
        The project's defaults.
    axis : {"units", "raters"}
        What is resampled with replacement, one by one in their order: units (columns,
        the usual choice) or raters (rows).

    Returns
    -------
    Interval
        ``statistic(data)`` and its percentile interval; ``estimate`` None with the reason
        when the statistic is undefined on the data.

    Examples
    --------
    >>> from annotate.agreement import icc
    >>> i = unit_interval(lambda d: icc(d, "ICC2"), [[1, 2, 3, 4, 5], [1, 3, 3, 5, 5]])
    >>> round(i.estimate, 3), i.n_boot, i.low <= i.estimate <= i.high
    (0.926, 1000, True)
    """
    if axis not in _AXES:
        raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(_AXES)}")
    check_options(n_boot, confidence, seed)
    x = _as_matrix(data)
    try:
        estimate = float(statistic(x))
    except ValueError as err:
        return _undefined(err, n_boot, confidence, seed)
    along = _AXES[axis]
    sizes = np.ones(x.shape[along])
    return _resampled(statistic, x, sizes, estimate, n_boot, seed, confidence, axis, along)


def bootstrap_ci(
    statistic: Callable[[FloatArray], float],
    data: npt.ArrayLike,
    *,
    n_boot: int = N_BOOT,
    level: float = CONFIDENCE,
    seed: int | None = SEED,
    axis: str = "units",
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of an agreement statistic, as a tuple.

    The draws are those of :func:`unit_interval`; this form raises instead of returning an
    :class:`Interval` without bounds.

    Parameters
    ----------
    statistic : callable
        Maps a reliability matrix, shape (M, N), to a float, e.g.
        :func:`annotate.agreement.krippendorff_alpha` or ``lambda d: icc(d, "ICC2")``.
    data : array_like, shape (M, N)
        Reliability data, NaN (or None) where missing.
    n_boot : int
        Number of resamples.
    level : float
        Confidence level, in (0, 1).
    seed : int or None
        Seed of the ``numpy.random.Generator``; None means the project's :data:`SEED`.
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
    >>> from annotate.agreement import krippendorff_alpha
    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2], [1, 2, 3, 3, 2, 2, 4, 1, 2]]
    >>> est, low, high = bootstrap_ci(krippendorff_alpha, data, n_boot=200)
    >>> bool(low <= est <= high <= 1.0)
    True
    """
    if axis not in _AXES:
        raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(_AXES)}")
    check_options(n_boot, level, SEED if seed is None else seed)
    interval = unit_interval(
        statistic,
        data,
        n_boot=n_boot,
        seed=SEED if seed is None else seed,
        confidence=level,
        axis=axis,
    )
    if interval.estimate is None:
        raise ValueError(interval.reason)
    if interval.low is None or interval.high is None:
        raise ValueError(f"the statistic is {interval.reason}")
    return interval.estimate, interval.low, interval.high
