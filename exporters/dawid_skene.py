"""Dawid-Skene: each annotator's confusion matrix and each item's posterior over the
labels, estimated together by expectation-maximisation (Dawid and Skene, 1979), for the
exports' ``ds_label`` columns (:mod:`exporters.aggregate` holds the simpler aggregates)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporters.aggregate import AggregateError, check_known, label_index

__all__ = ["DawidSkeneFit", "DawidSkeneResult", "dawid_skene", "dawid_skene_codes"]

E_STEP_BLOCK = 16_384  # items per block of the Dawid-Skene E-step


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
    index = label_index(labels, "dawid_skene")
    label_list = tuple(index)
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
    check_known(rated, index, "dawid_skene")

    fit = dawid_skene_codes(
        np.asarray(item_idx, dtype=np.intp),
        np.asarray(annotator_idx, dtype=np.intp),
        np.asarray([index[label] for label in rated], dtype=np.intp),
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
