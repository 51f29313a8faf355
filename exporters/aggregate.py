"""Aggregating several annotators' judgements of one turn into one label or score.

Pure functions on plain Python values and numpy, no I/O: :func:`majority` (hard label with
an explicit tie policy), :func:`soft_labels` (the vote distribution over the whole
taxonomy), :func:`scale_stats` (mean and sample standard deviation of a rating scale),
:func:`dawid_skene` (the Dawid & Skene (1979) EM estimator of true labels and annotator
confusion matrices; :func:`dawid_skene_codes` runs it on compact integer codes) and
:func:`pseudonym` (stable salted annotator pseudonyms).

Labels are any hashable values (in practice the taxonomy's label strings); ``labels`` or
``order`` arguments are the taxonomy's declared labels, in declared order.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from schemas.errors import AnnotateError

__all__ = [
    "AggregateError",
    "check_known",
    "check_labels",
    "label_index",
    "majority",
    "pseudonym",
    "scale_stats",
    "soft_labels",
]

TIE_BREAKS = ("order",)


class AggregateError(AnnotateError, ValueError):
    """Judgements or parameters that cannot be aggregated; the message names the bad value."""


def label_index(labels: Iterable[Hashable], where: str) -> dict[Hashable, int]:
    """Position of each declared label; duplicates or no labels at all are errors."""
    declared = list(labels)
    if not declared:
        raise AggregateError(f"{where}: expected a non-empty list of taxonomy labels")
    counts = Counter(declared)
    dupes = [label for label, n in counts.items() if n > 1]
    if dupes:
        raise AggregateError(f"{where}: duplicate labels {dupes} in the taxonomy labels")
    return {label: i for i, label in enumerate(declared)}


def check_known(values: Iterable[Hashable], index: dict[Hashable, int], where: str) -> None:
    """Raise :class:`AggregateError` naming the ``values`` that ``index`` lacks."""
    unknown = sorted({repr(v) for v in values if v not in index})
    if unknown:
        raise AggregateError(
            f"{where}: unknown labels {', '.join(unknown)}; expected one of {list(index)}"
        )


def check_labels(values: Iterable[Hashable], labels: Sequence[Hashable], where: str) -> None:
    """Raise :class:`AggregateError` naming the ``values`` that are not among ``labels``.

    Examples
    --------
    >>> check_labels(["joy"], ["neutral", "joy"], "export")
    >>> check_labels(["glee"], ["neutral", "joy"], "export")
    Traceback (most recent call last):
    ...
    exporters.aggregate.AggregateError: export: unknown labels 'glee'; expected one of \
['neutral', 'joy']
    """
    check_known(values, label_index(labels, where), where)


def majority(
    values: Iterable[Hashable],
    order: Sequence[Hashable] | None = None,
    *,
    tie_break: str | None = None,
) -> tuple[Hashable | None, list[Hashable]]:
    """The most frequent label, with an explicit tie policy.

    Parameters
    ----------
    values : iterable of hashable
        One label per judgement (repeats allowed; missing judgements are simply absent).
    order : sequence of hashable, optional
        The taxonomy's labels in declared order. When given, every value must be one of
        them.
    tie_break : {None, "order"}
        ``None`` (default): a tie gives no label. ``"order"``: a tie gives the tied label
        that comes first in ``order`` (which is then required).

    Returns
    -------
    label : hashable or None
        The majority label; ``None`` for no values, or for a tie without ``tie_break``.
    tied : list
        The tied labels, sorted (the same policy as :func:`exporters.jsonl.majority`);
        ``[]`` when there is a single most frequent label. With ``tie_break="order"`` the
        tied labels are still returned, so a caller can tell a broken tie from a clear
        majority.

    Raises
    ------
    AggregateError
        (a ``ValueError``) for an unknown ``tie_break``, ``tie_break="order"`` without
        ``order``, or values outside ``order``.

    Examples
    --------
    >>> majority(["joy", "joy", "anger"])
    ('joy', [])
    >>> majority(["joy", "anger"])
    (None, ['anger', 'joy'])
    >>> majority(["joy", "anger"], ["neutral", "joy", "anger"], tie_break="order")
    ('joy', ['anger', 'joy'])
    >>> majority([])
    (None, [])
    """
    if tie_break is not None and tie_break not in TIE_BREAKS:
        raise AggregateError(
            f"majority: unknown tie_break {tie_break!r}; expected None or one of {list(TIE_BREAKS)}"
        )
    if tie_break == "order" and order is None:
        raise AggregateError("majority: tie_break='order' needs the taxonomy's label order")
    values = list(values)
    index = None
    if order is not None:
        index = label_index(order, "majority")
        check_known(values, index, "majority")
    counts = Counter(values).most_common()
    if not counts:
        return None, []
    top = [value for value, n in counts if n == counts[0][1]]
    if len(top) == 1:
        return top[0], []
    tied = sorted(top)
    if tie_break == "order" and index is not None:
        return min(top, key=index.__getitem__), tied
    return None, tied


def soft_labels(values: Iterable[Hashable], labels: Sequence[Hashable]) -> dict[Hashable, float]:
    """The share of judgements given to each taxonomy label, zeros included.

    Parameters
    ----------
    values : iterable of hashable
        One label per judgement.
    labels : sequence of hashable
        The taxonomy's labels; the result has exactly these keys, in this order.

    Returns
    -------
    dict
        ``label -> count / n``, summing to 1. With no judgements (``n == 0``) every share
        is 0.0 (the sum is then 0, not 1): there is no distribution to report, and a
        uniform one would invent judgements.

    Raises
    ------
    AggregateError
        (a ``ValueError``) for values outside ``labels`` or duplicate ``labels``.

    Examples
    --------
    >>> soft_labels(["joy", "joy", "anger", "joy"], ["neutral", "joy", "anger"])
    {'neutral': 0.0, 'joy': 0.75, 'anger': 0.25}
    >>> soft_labels([], ["neutral", "joy"])
    {'neutral': 0.0, 'joy': 0.0}
    """
    index = label_index(labels, "soft_labels")
    values = list(values)
    check_known(values, index, "soft_labels")
    counts = Counter(values)
    n = len(values)
    return {label: (counts[label] / n if n else 0.0) for label in index}


def scale_stats(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of ratings on a numeric scale.

    Parameters
    ----------
    values : iterable of float
        One rating per judgement (e.g. arousal on a 1-5 scale), all finite.

    Returns
    -------
    mean : float or None
        The arithmetic mean; ``None`` with no ratings.
    std : float or None
        The *sample* standard deviation (``ddof=1``: an estimate of the spread among
        annotators in general, not just these ones) when there are at least two ratings;
        ``None`` with fewer, where it is undefined.

    Raises
    ------
    AggregateError
        (a ``ValueError``) for a rating that is not a finite number.

    Examples
    --------
    >>> scale_stats([2, 4, 6])
    (4.0, 2.0)
    >>> scale_stats([3.0])
    (3.0, None)
    >>> scale_stats([])
    (None, None)
    """
    ratings = list(values)
    bad = [v for v in ratings if not isinstance(v, int | float) or not math.isfinite(v)]
    if bad:
        raise AggregateError(f"scale_stats: ratings {bad} are not finite numbers")
    if not ratings:
        return None, None
    array = np.asarray(ratings, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return mean, None
    return mean, float(array.std(ddof=1))


def pseudonym(annotator_id: str, salt: str) -> str:
    """A stable, salted pseudonym for an annotator id, for datasets released to others.

    ``"a_"`` followed by the first 12 hex digits of HMAC-SHA256 of the id keyed with the
    salt. The same id and salt always give the same pseudonym, so one annotator's
    judgements stay linked across exports made with the same salt.

    This is *pseudonymisation*, not anonymisation: anyone who has the salt and a list of
    candidate ids can recompute the pseudonyms and re-identify annotators, and the
    judgements themselves may identify someone. Keep the salt secret and out of the
    released data; use a new salt for a release that must not be linkable to an earlier
    one. 12 hex digits (48 bits) make an accidental collision negligible for any
    realistic number of annotators (about 2e-9 for 1,000).

    Parameters
    ----------
    annotator_id : str
        The id to hide (e.g. a Label Studio user e-mail or number as text).
    salt : str
        A non-empty secret, fixed per release.

    Returns
    -------
    str
        ``"a_"`` plus 12 lowercase hex digits.

    Raises
    ------
    AggregateError
        (a ``ValueError``) for a non-string id or salt, or an empty salt.

    Examples
    --------
    >>> p = pseudonym("maya@example.org", "release-2025")
    >>> p == pseudonym("maya@example.org", "release-2025"), len(p), p[:2]
    (True, 14, 'a_')
    >>> p == pseudonym("maya@example.org", "another-salt")
    False
    """
    if not isinstance(annotator_id, str):
        raise AggregateError(
            f"pseudonym: annotator_id is {annotator_id!r}; expected a string (convert ids first)"
        )
    if not isinstance(salt, str) or not salt:
        raise AggregateError(f"pseudonym: salt is {salt!r}; expected a non-empty secret string")
    digest = hmac.new(salt.encode("utf-8"), annotator_id.encode("utf-8"), hashlib.sha256)
    return "a_" + digest.hexdigest()[:12]
