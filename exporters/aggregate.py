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
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.errors import AnnotateError

__all__ = [
    "AggregateError",
    "DawidSkeneFit",
    "DawidSkeneResult",
    "check_labels",
    "dawid_skene",
    "dawid_skene_codes",
    "majority",
    "pseudonym",
    "scale_stats",
    "soft_labels",
]

TIE_BREAKS = ("order",)
E_STEP_BLOCK = 16_384  # items per block of the Dawid-Skene E-step


class AggregateError(AnnotateError, ValueError):
    """Judgements or parameters that cannot be aggregated; the message names the bad value."""


def _label_index(labels: Iterable[Hashable], where: str) -> dict[Hashable, int]:
    """Position of each declared label; duplicates or no labels at all are errors."""
    declared = list(labels)
    if not declared:
        raise AggregateError(f"{where}: expected a non-empty list of taxonomy labels")
    counts = Counter(declared)
    dupes = [label for label, n in counts.items() if n > 1]
    if dupes:
        raise AggregateError(f"{where}: duplicate labels {dupes} in the taxonomy labels")
    return {label: i for i, label in enumerate(declared)}


def _check_known(values: Iterable[Hashable], index: dict[Hashable, int], where: str) -> None:
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
    _check_known(values, _label_index(labels, where), where)


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
        index = _label_index(order, "majority")
        _check_known(values, index, "majority")
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
    index = _label_index(labels, "soft_labels")
    values = list(values)
    _check_known(values, index, "soft_labels")
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


@dataclass(frozen=True, slots=True)
class DawidSkeneResult:
    """What :func:`dawid_skene` estimated.

    Attributes
    ----------
    classes : tuple
        The taxonomy labels, in declared order: the order of the axes of
        :attr:`confusion`.
    labels : dict
        ``item_id -> label`` of highest posterior probability, the MAP label (ties go to
        the label that comes first in :attr:`classes`).
    posteriors : dict
        ``item_id -> {label: probability}`` over all labels, each summing to 1.
    confusion : dict
        ``annotator_id -> array of shape (K, K)``: row ``j`` is the probability of each
        given label (columns) when the true label is ``classes[j]``; rows sum to 1.
    priors : dict
        ``label -> probability`` of a true label, summing to 1.
    iterations : int
        EM iterations run (each one M-step then one E-step).
    converged : bool
        Whether the largest change of any posterior fell below ``tol`` within ``max_iter``.
    log_likelihood : float
        Observed-data log-likelihood of the ratings under the final parameters (natural
        log; without the smoothing pseudo-counts).
    """

    classes: tuple[Hashable, ...]
    labels: dict[Hashable, Hashable]
    posteriors: dict[Hashable, dict[Hashable, float]]
    confusion: dict[Hashable, np.ndarray]
    priors: dict[Hashable, float]
    iterations: int
    converged: bool
    log_likelihood: float

    def accuracy(self, annotator_id: Hashable) -> float:
        """The annotator's estimated probability of giving the true label.

        The diagonal of the confusion matrix weighted by the class priors.
        """
        diagonal = np.diag(self.confusion[annotator_id])
        return float(diagonal @ np.array([self.priors[label] for label in self.classes]))

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and dicts (JSON-ready when the ids and labels are strings)."""
        return {
            "classes": list(self.classes),
            "labels": dict(self.labels),
            "posteriors": {item: dict(p) for item, p in self.posteriors.items()},
            "confusion": {
                annotator: {
                    true: dict(zip(self.classes, row.tolist(), strict=True))
                    for true, row in zip(self.classes, matrix, strict=True)
                }
                for annotator, matrix in self.confusion.items()
            },
            "priors": dict(self.priors),
            "iterations": self.iterations,
            "converged": self.converged,
            "log_likelihood": self.log_likelihood,
        }


@dataclass(frozen=True, slots=True)
class DawidSkeneFit:
    """What :func:`dawid_skene_codes` estimated, as arrays indexed by integer codes.

    Attributes
    ----------
    posterior : numpy.ndarray, shape (N, K)
        Posterior probability of each true label (columns in label-code order) per item.
    confusion : numpy.ndarray, shape (A, K, K)
        Per annotator, row ``j``: the probability of each given label when the truth is
        label ``j``; rows sum to 1.
    priors : numpy.ndarray, shape (K,)
        Class priors, summing to 1.
    iterations : int
        EM iterations run.
    converged : bool
        Whether the largest change of any posterior fell below ``tol``.
    log_likelihood : float
        Observed-data log-likelihood under the final parameters.
    """

    posterior: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    iterations: int
    converged: bool
    log_likelihood: float


def dawid_skene_codes(
    items: np.ndarray,
    annotators: np.ndarray,
    given: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    n_labels: int,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneFit:
    """The Dawid & Skene EM of :func:`dawid_skene` on integer-coded ratings.

    Parameters
    ----------
    items, annotators, given : numpy.ndarray, shape (R,)
        Per rating: the item's code in ``0..n_items-1``, the annotator's in
        ``0..n_annotators-1`` and the given label's in ``0..n_labels-1``. Any integer
        dtype; compact ones (``int32``, ``int8``) keep the memory down.
    n_items, n_annotators, n_labels : int
        Sizes of the three code ranges; every item code must occur.
    max_iter, tol, smoothing
        As for :func:`dawid_skene` (not checked again here).

    Returns
    -------
    DawidSkeneFit

    Notes
    -----
    Memory: the three code arrays, one float64 column of ``R`` values at a time, and a few
    ``(N, K)`` posterior arrays; nothing of shape ``(R, K)``. Each EM step sums the
    ratings in the order given (one ``np.bincount`` per label), so the result depends on
    that order only through floating-point rounding, and the same order always gives the
    same bits.

    Examples
    --------
    >>> fit = dawid_skene_codes(
    ...     np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]),
    ...     n_items=2, n_annotators=2, n_labels=2,
    ... )
    >>> fit.posterior.argmax(axis=1).tolist()
    [1, 1]
    """
    items_ = np.asarray(items)
    annotators_ = np.asarray(annotators)
    given_ = np.asarray(given)
    cells = n_annotators * n_labels
    # (annotator, given label) of each rating, as bincount wants it
    cell = annotators_.astype(np.intp) * n_labels + given_

    def m_step(post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        priors = (post.sum(axis=0) + smoothing) / (n_items + n_labels * smoothing)
        counts = np.empty((cells, n_labels))
        for j in range(n_labels):
            # weight of each rating for true class j
            counts[:, j] = np.bincount(cell, weights=post[items_, j], minlength=cells)
        counts = counts.reshape(n_annotators, n_labels, n_labels)  # (A, K given, K true)
        counts = counts.transpose(0, 2, 1) + smoothing  # (A, K true, K given)
        return priors, counts / counts.sum(axis=2, keepdims=True)

    def e_step(priors: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, float]:
        log_confusion = np.log(confusion)
        sums = np.empty((n_items, n_labels))
        for k in range(n_labels):
            rating = log_confusion[annotators_, k, given_]  # log P(given | true k), (R,)
            sums[:, k] = np.bincount(items_, weights=rating, minlength=n_items)
        log_priors = np.log(priors)
        log_norm = np.empty((n_items, 1))
        # row blocks: every step is per item, so blocks give the same bits, in less memory
        for a in range(0, n_items, E_STEP_BLOCK):
            log_joint = log_priors + sums[a : a + E_STEP_BLOCK]
            top = log_joint.max(axis=1, keepdims=True)
            norm = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
            sums[a : a + E_STEP_BLOCK] = np.exp(log_joint - norm)
            log_norm[a : a + E_STEP_BLOCK] = norm
        return sums, float(log_norm.sum())

    # start from the vote shares (exact integer counts)
    posterior = (
        np.bincount(items_.astype(np.intp) * n_labels + given_, minlength=n_items * n_labels)
        .reshape(n_items, n_labels)
        .astype(np.float64)
    )
    posterior /= posterior.sum(axis=1, keepdims=True)
    iterations, converged = 0, False
    priors = confusion = np.empty(0)
    log_likelihood = float("nan")
    while iterations < max_iter and not converged:
        iterations += 1
        priors, confusion = m_step(posterior)
        updated, log_likelihood = e_step(priors, confusion)
        change = max(
            float(np.abs(updated[a : a + E_STEP_BLOCK] - posterior[a : a + E_STEP_BLOCK]).max())
            for a in range(0, n_items, E_STEP_BLOCK)
        )
        converged = change <= tol
        posterior = updated
    return DawidSkeneFit(posterior, confusion, priors, iterations, converged, log_likelihood)


def dawid_skene(
    items: Iterable[tuple[Hashable, Hashable, Hashable]],
    labels: Sequence[Hashable],
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """True labels and annotator confusion matrices by the Dawid & Skene (1979) EM.

    Each item has one unknown true label drawn from class priors; each annotator gives
    label ``l`` to an item of true label ``j`` with probability ``confusion[a][j, l]``,
    independently of the other ratings. EM alternates the M-step (priors and confusion
    matrices from the current posteriors) and the E-step (posteriors from the
    parameters), starting from the majority-vote soft labels (the share of an item's
    ratings given to each label). Annotators need not rate every item, may rate an item
    several times (each rating counts), and an item with a single rating is fine: its
    posterior then rests on that annotator's estimated confusion matrix and the priors.

    Parameters
    ----------
    items : iterable of (item_id, annotator_id, label)
        One rating per triple, in long format. Ids are any hashable values.
    labels : sequence of hashable
        The taxonomy's labels, in declared order; every rated label must be one of them.
        Labels nobody used still get a prior and a confusion row (from smoothing).
    max_iter : int
        At most this many EM iterations (>= 1).
    tol : float
        Stop when no posterior probability changes by more than ``tol`` (>= 0).
    seed : int
        Accepted for a uniform interface with the other seeded exporters; the estimator
        is deterministic (majority-vote start, ties broken by taxonomy order), so the
        seed does not change the result.
    smoothing : float
        Pseudo-count (> 0) added to every confusion-matrix cell and every class count in
        the M-step, so no probability is exactly 0 (a MAP estimate under a flat
        Dirichlet(1 + smoothing) prior rather than the pure maximum likelihood).

    Returns
    -------
    DawidSkeneResult
        MAP label (``labels``) and posteriors per item, confusion matrix per annotator,
        class priors, iterations, convergence flag and log-likelihood.

    Raises
    ------
    AggregateError
        (a ``ValueError``) for no ratings, a rating that is not a triple, labels outside
        ``labels``, duplicate ``labels``, or out-of-range ``max_iter``, ``tol`` or
        ``smoothing``.

    Notes
    -----
    Memory and time are linear in the number of ratings (R) times the number of labels
    (K), plus ``A * K * K`` for the confusion matrices; no items x annotators array is
    built. Results do not depend on the order of the triples or on the ids' spelling
    (up to floating-point rounding).

    References
    ----------
    A. P. Dawid and A. M. Skene (1979). Maximum likelihood estimation of observer
    error-rates using the EM algorithm. *Journal of the Royal Statistical Society,
    Series C (Applied Statistics)* 28(1), 20-28. https://doi.org/10.2307/2346806

    Examples
    --------
    >>> ratings = [
    ...     ("t1", "ann", "joy"), ("t1", "bo", "joy"), ("t1", "cy", "joy"),
    ...     ("t2", "ann", "anger"), ("t2", "bo", "anger"), ("t2", "cy", "joy"),
    ...     ("t3", "ann", "neutral"), ("t3", "bo", "neutral"),
    ...     ("t4", "ann", "anger"),
    ... ]
    >>> result = dawid_skene(ratings, ["neutral", "joy", "anger"])
    >>> result.labels
    {'t1': 'joy', 't2': 'anger', 't3': 'neutral', 't4': 'anger'}
    >>> round(result.posteriors["t1"]["joy"], 3)
    1.0
    >>> result.converged
    True
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise AggregateError(f"dawid_skene: max_iter is {max_iter!r}; expected an int >= 1")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise AggregateError(f"dawid_skene: tol is {tol!r}; expected a finite number >= 0")
    if not (isinstance(smoothing, int | float) and math.isfinite(smoothing) and smoothing > 0):
        raise AggregateError(
            f"dawid_skene: smoothing is {smoothing!r}; expected a finite number > 0"
        )
    label_index = _label_index(labels, "dawid_skene")
    label_list = tuple(label_index)
    n_labels = len(label_list)

    item_ids: dict[Hashable, int] = {}
    annotator_ids: dict[Hashable, int] = {}
    item_idx: list[int] = []
    annotator_idx: list[int] = []
    rated: list[Hashable] = []
    for n, rating in enumerate(items):
        try:
            item, annotator, label = rating
        except (TypeError, ValueError):
            raise AggregateError(
                f"dawid_skene: rating {n} is {rating!r}; expected (item_id, annotator_id, label)"
            ) from None
        item_idx.append(item_ids.setdefault(item, len(item_ids)))
        annotator_idx.append(annotator_ids.setdefault(annotator, len(annotator_ids)))
        rated.append(label)
    if not rated:
        raise AggregateError(
            "dawid_skene: no ratings; expected (item_id, annotator_id, label) triples"
        )
    _check_known(rated, label_index, "dawid_skene")

    fit = dawid_skene_codes(
        np.asarray(item_idx, dtype=np.intp),
        np.asarray(annotator_idx, dtype=np.intp),
        np.asarray([label_index[label] for label in rated], dtype=np.intp),
        n_items=len(item_ids),
        n_annotators=len(annotator_ids),
        n_labels=n_labels,
        max_iter=max_iter,
        tol=tol,
        smoothing=smoothing,
    )
    posterior, confusion, priors = fit.posterior, fit.confusion, fit.priors
    best = posterior.argmax(axis=1)
    return DawidSkeneResult(
        classes=label_list,
        labels={item: label_list[best[i]] for item, i in item_ids.items()},
        posteriors={
            item: dict(zip(label_list, posterior[i].tolist(), strict=True))
            for item, i in item_ids.items()
        },
        confusion={annotator: confusion[a].copy() for annotator, a in annotator_ids.items()},
        priors=dict(zip(label_list, priors.tolist(), strict=True)),
        iterations=fit.iterations,
        converged=fit.converged,
        log_likelihood=fit.log_likelihood,
    )


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
