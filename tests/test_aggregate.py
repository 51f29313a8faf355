"""Label aggregation: majority, soft labels, scale statistics, Dawid-Skene, pseudonyms."""

from __future__ import annotations

import doctest
import hashlib
import hmac
import json
import re
import statistics
from collections import Counter
from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exporters.aggregate
import exporters.dawid_skene
from exporters.aggregate import (
    AggregateError,
    majority,
    pseudonym,
    scale_stats,
    soft_labels,
)
from exporters.dawid_skene import DawidSkeneResult, dawid_skene, dawid_skene_codes
from schemas.errors import AnnotateError

LABELS = ("neutral", "joy", "sadness", "anger")
SEED = 440


def test_doctests() -> None:
    assert doctest.testmod(exporters.aggregate).failed == 0
    assert doctest.testmod(exporters.dawid_skene).failed == 0


def test_errors_are_annotate_and_value_errors() -> None:
    assert issubclass(AggregateError, AnnotateError)
    assert issubclass(AggregateError, ValueError)


# --- majority -----------------------------------------------------------------------------


def test_majority_clear_winner_and_empty() -> None:
    assert majority(["joy", "anger", "joy"]) == ("joy", [])
    assert majority(["joy"], LABELS) == ("joy", [])
    assert majority([]) == (None, [])
    assert majority([], LABELS, tie_break="order") == (None, [])


def test_majority_tie_gives_none_and_the_sorted_tied_labels() -> None:
    assert majority(["sadness", "joy", "anger", "joy", "anger"]) == (None, ["anger", "joy"])
    assert majority(["sadness", "joy", "anger"], LABELS) == (
        None,
        ["anger", "joy", "sadness"],
    )


def test_majority_tie_break_by_taxonomy_order() -> None:
    # "joy" comes before "anger" in the taxonomy, though not alphabetically
    assert majority(["anger", "joy"], LABELS, tie_break="order") == ("joy", ["anger", "joy"])
    assert majority(["anger", "sadness"], LABELS, tie_break="order") == (
        "sadness",
        ["anger", "sadness"],
    )
    # no tie: tie_break changes nothing
    assert majority(["anger", "anger", "joy"], LABELS, tie_break="order") == ("anger", [])


def test_majority_rejects_bad_arguments() -> None:
    with pytest.raises(AggregateError, match="unknown tie_break 'random'"):
        majority(["joy"], LABELS, tie_break="random")
    with pytest.raises(AggregateError, match="tie_break='order' needs"):
        majority(["joy", "anger"], tie_break="order")
    with pytest.raises(AggregateError, match=r"unknown labels 'happy'; expected one of \["):
        majority(["joy", "happy"], LABELS)
    with pytest.raises(AggregateError, match="duplicate labels"):
        majority(["joy"], ["joy", "joy"])


# --- soft labels -------------------------------------------------------------------------


def test_soft_labels_cover_every_label_and_sum_to_one() -> None:
    soft = soft_labels(["joy", "anger", "joy", "joy"], LABELS)
    assert list(soft) == list(LABELS)
    assert soft == {"neutral": 0.0, "joy": 0.75, "sadness": 0.0, "anger": 0.25}
    assert sum(soft.values()) == pytest.approx(1.0)


def test_soft_labels_of_nothing_are_all_zero() -> None:
    assert soft_labels([], LABELS) == dict.fromkeys(LABELS, 0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(LABELS), min_size=1, max_size=30))
def test_soft_labels_are_a_distribution_agreeing_with_majority(values: list[str]) -> None:
    soft = soft_labels(values, LABELS)
    assert sum(soft.values()) == pytest.approx(1.0)
    label, tied = majority(values, LABELS)
    top = max(soft.values())
    winners = sorted(k for k, p in soft.items() if p == top)
    assert (label, tied) == ((winners[0], []) if len(winners) == 1 else (None, winners))


def test_soft_labels_reject_unknown_labels() -> None:
    with pytest.raises(AggregateError, match=r"soft_labels: unknown labels 'happy', None"):
        soft_labels(["joy", "happy", None], LABELS)
    with pytest.raises(AggregateError, match="non-empty list of taxonomy labels"):
        soft_labels(["joy"], [])


# --- scale statistics --------------------------------------------------------------------


def test_scale_stats_mean_and_sample_std() -> None:
    values = [1, 2, 2, 3, 5]
    mean, std = scale_stats(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert std == pytest.approx(statistics.stdev(values))  # ddof=1, the sample std
    assert scale_stats([4.0]) == (4.0, None)
    assert scale_stats([]) == (None, None)
    assert scale_stats([3, 3, 3]) == (3.0, 0.0)


def test_scale_stats_rejects_non_finite() -> None:
    with pytest.raises(AggregateError, match=r"ratings \[nan\] are not finite numbers"):
        scale_stats([1.0, float("nan")])
    with pytest.raises(AggregateError, match=r"ratings \['3'\]"):
        scale_stats([1.0, "3"])  # type: ignore[list-item]


# --- Dawid-Skene ---------------------------------------------------------------------------


def _confusions(k: int) -> dict[str, np.ndarray]:
    """Five annotators: three honest of falling accuracy, one random, one adversarial."""

    def honest(accuracy: float) -> np.ndarray:
        m = np.full((k, k), (1 - accuracy) / (k - 1))
        np.fill_diagonal(m, accuracy)
        return m

    adversarial = np.full((k, k), 0.2 / (k - 1))
    for j in range(k):
        adversarial[j, (j + 1) % k] = 0.8  # mostly the next label: systematically wrong
    return {
        "good": honest(0.9),
        "fair": honest(0.75),
        "weak": honest(0.6),
        "random": np.full((k, k), 1 / k),
        "adversarial": adversarial,
    }


def simulate(
    seed: int, n_items: int = 300, p_rate: float = 0.8
) -> tuple[list[tuple[str, str, str]], dict[str, str], dict[str, np.ndarray]]:
    """Ratings drawn from known confusion matrices; each annotator rates ~``p_rate`` of items.

    Every item gets at least one rating. Returns (triples, true label per item, confusions).
    """
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    truth = rng.choice(k, size=n_items, p=[0.4, 0.3, 0.2, 0.1])
    confusion = _confusions(k)
    names = list(confusion)
    triples = []
    for i in range(n_items):
        raters = [a for a in names if rng.random() < p_rate] or [names[rng.integers(len(names))]]
        for a in raters:
            given_label = rng.choice(k, p=confusion[a][truth[i]])
            triples.append((f"t{i:03d}", a, LABELS[given_label]))
    return triples, {f"t{i:03d}": LABELS[t] for i, t in enumerate(truth)}, confusion


def majority_accuracy(triples: list[tuple[str, str, str]], truth: dict[str, str]) -> float:
    """Accuracy of the majority vote, ties broken by taxonomy order."""
    votes: dict[str, list[str]] = {}
    for item, _, label in triples:
        votes.setdefault(item, []).append(label)
    hits = [majority(v, LABELS, tie_break="order")[0] == truth[i] for i, v in votes.items()]
    return float(np.mean(hits))


def check_distributions(result: DawidSkeneResult) -> None:
    for posterior in result.posteriors.values():
        assert list(posterior) == list(LABELS)
        assert sum(posterior.values()) == pytest.approx(1.0)
        assert all(0.0 <= p <= 1.0 for p in posterior.values())
    for matrix in result.confusion.values():
        assert matrix.shape == (len(LABELS), len(LABELS))
        assert np.allclose(matrix.sum(axis=1), 1.0)
        assert (matrix > 0).all()  # smoothing: no zero probabilities
    assert sum(result.priors.values()) == pytest.approx(1.0)
    for item, label in result.labels.items():
        assert label == max(LABELS, key=lambda lab: result.posteriors[item][lab])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_beats_majority_and_recovers_confusions(seed: int) -> None:
    triples, truth, confusion = simulate(seed)
    result = dawid_skene(triples, LABELS, max_iter=1000)
    assert result.converged
    check_distributions(result)
    ds_accuracy = np.mean([result.labels[i] == t for i, t in truth.items()])
    mv_accuracy = majority_accuracy(triples, truth)
    assert ds_accuracy >= mv_accuracy
    assert ds_accuracy >= 0.85  # 0.86-0.95 over 40 seeds; majority 0.70-0.80
    diagonal = {a: float(np.diag(m).mean()) for a, m in result.confusion.items()}
    assert diagonal["good"] > 0.8
    assert diagonal["random"] < 0.4  # true 0.25
    assert diagonal["adversarial"] < 0.15  # true 0.07
    for annotator, true_matrix in confusion.items():
        assert np.abs(result.confusion[annotator] - true_matrix).mean() < 0.15
    assert result.accuracy("good") > result.accuracy("fair") > result.accuracy("random")
    frequency = Counter(truth.values())
    for label in LABELS:
        assert result.priors[label] == pytest.approx(frequency[label] / len(truth), abs=0.08)


def test_dawid_skene_perfect_agreement_gives_certain_posteriors() -> None:
    rng = np.random.default_rng(SEED)
    truth = {f"t{i}": LABELS[rng.integers(len(LABELS))] for i in range(40)}
    triples = [(item, a, label) for item, label in truth.items() for a in ("ann", "bo", "cy")]
    result = dawid_skene(triples, LABELS)
    assert result.converged
    assert result.labels == truth
    for item, label in truth.items():
        assert result.posteriors[item][label] > 0.99
    for matrix in result.confusion.values():
        assert np.diag(matrix).min() > 0.95


def test_dawid_skene_perfect_agreement_on_one_label() -> None:
    triples = [(f"t{i}", a, "joy") for i in range(5) for a in ("ann", "bo")]
    result = dawid_skene(triples, LABELS)
    check_distributions(result)
    assert set(result.labels.values()) == {"joy"}
    assert min(p["joy"] for p in result.posteriors.values()) > 0.99
    assert result.priors["joy"] > 0.9


def _renamed(triples: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [(f"item-{i[::-1]}", f"rater:{a.upper()}", label) for i, a, label in triples]


def test_dawid_skene_ignores_id_spelling_and_order() -> None:
    triples, _, _ = simulate(7, n_items=80)
    base = dawid_skene(triples, LABELS)
    shuffled = [triples[i] for i in np.random.default_rng(SEED).permutation(len(triples))]
    other = dawid_skene(_renamed(shuffled), LABELS)
    assert other.iterations == base.iterations
    for item, posterior in base.posteriors.items():
        renamed = other.posteriors[f"item-{item[::-1]}"]
        assert np.allclose(list(renamed.values()), list(posterior.values()), atol=1e-9)
        assert other.labels[f"item-{item[::-1]}"] == base.labels[item]
    for annotator, matrix in base.confusion.items():
        assert np.allclose(other.confusion[f"rater:{annotator.upper()}"], matrix, atol=1e-9)
    assert other.log_likelihood == pytest.approx(base.log_likelihood)


ratings = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 3), st.sampled_from(LABELS)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ratings, st.randoms(use_true_random=False))
def test_dawid_skene_invariant_under_permutation(triples: list, random: Random) -> None:
    shuffled = list(triples)
    random.shuffle(shuffled)
    base = dawid_skene(triples, LABELS, max_iter=50)
    other = dawid_skene(shuffled, LABELS, max_iter=50)
    check_distributions(base)
    assert base.posteriors.keys() == other.posteriors.keys()
    for item, posterior in base.posteriors.items():
        assert np.allclose(
            list(other.posteriors[item].values()), list(posterior.values()), atol=1e-7
        )
    for annotator, matrix in base.confusion.items():
        assert np.allclose(other.confusion[annotator], matrix, atol=1e-7)


def test_dawid_skene_items_with_a_single_rating() -> None:
    triples, truth, _ = simulate(3, n_items=200)
    # three extra items, each rated once, by the reliable annotator only
    extra = {"solo-1": "anger", "solo-2": "neutral", "solo-3": "sadness"}
    result = dawid_skene(triples + [(i, "good", label) for i, label in extra.items()], LABELS)
    check_distributions(result)
    for item, label in extra.items():
        assert result.labels[item] == label
        assert result.posteriors[item][label] > 0.5
    per_item = Counter(i for i, _, _ in triples)
    singles = [i for i, n in per_item.items() if n == 1]
    assert singles  # the simulation has some items rated once
    assert np.mean([result.labels[i] == truth[i] for i in singles]) >= majority_accuracy(
        [t for t in triples if t[0] in singles], truth
    )


def test_dawid_skene_when_every_item_has_one_rating() -> None:
    triples = [(f"t{i}", f"a{i % 3}", LABELS[i % 4]) for i in range(12)]
    result = dawid_skene(triples, LABELS)
    check_distributions(result)
    assert not any(np.isnan(m).any() for m in result.confusion.values())
    assert np.isfinite(result.log_likelihood)


def test_dawid_skene_counts_repeated_ratings() -> None:
    # one annotator rating an item several times, as clinician 1 did in Dawid & Skene (1979)
    triples, _, _ = simulate(4, n_items=60)
    repeated = triples + [t for t in triples if t[1] == "good"]
    result = dawid_skene(repeated, LABELS)
    check_distributions(result)
    once = dawid_skene(triples, LABELS)
    # counting the good annotator twice sharpens the posteriors towards its labels
    good = {i: label for i, a, label in triples if a == "good"}
    assert np.mean([result.posteriors[i][lab] for i, lab in good.items()]) > np.mean(
        [once.posteriors[i][lab] for i, lab in good.items()]
    )


def test_dawid_skene_seed_does_not_change_the_result() -> None:
    triples, _, _ = simulate(5, n_items=60)
    a, b = dawid_skene(triples, LABELS, seed=0), dawid_skene(triples, LABELS, seed=123)
    assert a.posteriors == b.posteriors
    assert a.labels == b.labels


def test_dawid_skene_reports_non_convergence() -> None:
    triples, _, _ = simulate(0, n_items=100)
    result = dawid_skene(triples, LABELS, max_iter=2)
    assert (result.iterations, result.converged) == (2, False)
    check_distributions(result)


def test_dawid_skene_to_dict_is_json_ready() -> None:
    triples, _, _ = simulate(6, n_items=30)
    result = dawid_skene(triples, LABELS)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["classes"] == list(LABELS)
    assert data["labels"] == result.labels
    assert data["posteriors"] == result.posteriors
    assert set(data["confusion"]) == set(result.confusion)
    assert list(data["confusion"]["good"]) == list(LABELS)
    assert sum(data["confusion"]["good"]["joy"].values()) == pytest.approx(1.0)
    assert data["confusion"]["good"]["joy"]["joy"] == result.confusion["good"][1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"items": []}, "no ratings"),
        ({"items": [("t1", "ann")]}, r"rating 0 is \('t1', 'ann'\); expected \(item_id"),
        ({"items": [("t1", "ann", "happy")]}, r"unknown labels 'happy'; expected one of"),
        ({"labels": ["joy", "joy"]}, "duplicate labels"),
        ({"max_iter": 0}, "max_iter is 0; expected an int >= 1"),
        ({"tol": -1.0}, "tol is -1.0"),
        ({"smoothing": 0.0}, "smoothing is 0.0; expected a finite number > 0"),
    ],
)
def test_dawid_skene_rejects_bad_input(kwargs: dict, message: str) -> None:
    arguments = {"items": [("t1", "ann", "joy")], "labels": LABELS, **kwargs}
    with pytest.raises(AggregateError, match=message):
        dawid_skene(**arguments)


# --- pseudonyms --------------------------------------------------------------------------


def test_pseudonym_is_stable_salted_and_short() -> None:
    p = pseudonym("maya@example.org", "s3cret")
    assert re.fullmatch(r"a_[0-9a-f]{12}", p)
    assert p == pseudonym("maya@example.org", "s3cret")
    assert p != pseudonym("maya@example.org", "other")
    assert p != pseudonym("theo@example.org", "s3cret")
    expected = hmac.new(b"s3cret", b"maya@example.org", hashlib.sha256).hexdigest()[:12]
    assert p == "a_" + expected


def test_pseudonyms_of_many_ids_do_not_collide() -> None:
    names = {pseudonym(str(i), "salt") for i in range(5000)}
    assert len(names) == 5000


def test_pseudonym_rejects_empty_salt_and_non_strings() -> None:
    with pytest.raises(AggregateError, match="salt is ''; expected a non-empty secret"):
        pseudonym("maya", "")
    with pytest.raises(AggregateError, match="annotator_id is 7; expected a string"):
        pseudonym(7, "salt")  # type: ignore[arg-type]


def _reference_em(items, annotators, given, n_items, n_annotators, n_labels, max_iter, tol, s):
    """The EM written with (R, K) arrays of every rating's weights, as in the first version."""
    one_hot = np.eye(n_labels)[given]

    def per_item(weights: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.bincount(items, weights=weights[:, k], minlength=n_items) for k in range(n_labels)],
            axis=1,
        )

    posterior = per_item(one_hot)
    posterior /= posterior.sum(axis=1, keepdims=True)
    for _ in range(max_iter):
        priors = (posterior.sum(axis=0) + s) / (n_items + n_labels * s)
        weights = posterior[items]
        cell = annotators * n_labels + given
        counts = np.stack(
            [
                np.bincount(cell, weights=weights[:, j], minlength=n_annotators * n_labels)
                for j in range(n_labels)
            ],
            axis=1,
        ).reshape(n_annotators, n_labels, n_labels)
        counts = counts.transpose(0, 2, 1) + s
        confusion = counts / counts.sum(axis=2, keepdims=True)
        log_joint = np.log(priors) + per_item(np.log(confusion)[annotators, :, given])
        top = log_joint.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
        updated = np.exp(log_joint - log_norm)
        done = float(np.abs(updated - posterior).max()) <= tol
        posterior = updated
        if done:
            break
    return posterior, confusion, priors


@pytest.mark.parametrize("seed", [0, 1])
def test_dawid_skene_codes_same_bits_as_the_full_arrays_and_compact_dtypes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporters.dawid_skene, "E_STEP_BLOCK", 7)  # many blocks
    triples, _, _ = simulate(seed)
    items_of: dict = {}
    annotators_of: dict = {}
    items = np.array([items_of.setdefault(t[0], len(items_of)) for t in triples])
    annotators = np.array([annotators_of.setdefault(t[1], len(annotators_of)) for t in triples])
    given = np.array([LABELS.index(t[2]) for t in triples])
    sizes = {"n_items": len(items_of), "n_annotators": len(annotators_of), "n_labels": 4}
    wide = dawid_skene_codes(items, annotators, given, **sizes, max_iter=300)
    compact = dawid_skene_codes(
        items.astype(np.int32),
        annotators.astype(np.int32),
        given.astype(np.int8),
        **sizes,
        max_iter=300,
    )
    posterior, confusion, priors = _reference_em(
        items, annotators, given, *sizes.values(), 300, 1e-6, 0.01
    )
    for fit in (wide, compact):
        assert np.array_equal(fit.posterior, posterior)
        assert np.array_equal(fit.confusion, confusion)
        assert np.array_equal(fit.priors, priors)
    result = dawid_skene(triples, LABELS, max_iter=300)
    assert [result.posteriors[i][LABELS[0]] for i in items_of] == posterior[:, 0].tolist()
