"""Validation and pivot helpers shared by the coefficients.

Reliability data are a float matrix of shape ``(M raters, N units)`` with NaN where a rater
gave no value; :func:`pivot` builds it from long format (one row per judgement). The helpers
here check it, code values against a domain and find the pairable units.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Largest number of cells of one block of the ratio metric (values x values), 2 MB.
_BLOCK_CELLS = 1 << 18
# Integer-coded values spanning at most this many codes are counted with np.bincount.
_MAX_BINCOUNT_SPAN = 1 << 20


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
