"""Adaptive overlap: does a unit (or a clip) need one more annotator?

Pure functions, no I/O. Public API:

- :class:`OverlapPolicy` (frozen): ``min_annotators`` (2), ``max_annotators`` (5), ``rule``
  ("lead" or "posterior"), ``lead`` (2: the leading label leads the runner-up by at least
  this many votes), ``posterior`` (0.9: the leading label's posterior reaches this),
  ``dimensions`` (("emotion",): the dimensions a clip's decision looks at),
  ``prior_strength`` (2.0: pseudo-votes pulling an annotator's estimated accuracy to the
  pool's mean). :meth:`OverlapPolicy.from_mapping` builds one from a config mapping,
  :meth:`OverlapPolicy.to_dict` gives it back as plain JSON-ready values.
- :func:`decide` ``(policy, votes, reliability=None) -> dict[unit, Decision]``: votes are
  ``(unit, annotator, value)`` records in arrival order (tuples, mappings, or a pandas frame
  with those columns).
- :func:`decide_clips` ``(policy, judgements, reliability=None) -> dict[clip, ClipDecision]``:
  judgements are ``(clip, turn, annotator, dimension, value)`` records in arrival order.
- :func:`estimate_reliability` ``(votes, prior_strength=2.0, label_prior=False)
  -> Reliability``: one-coin Dawid-Skene; :meth:`Reliability.posterior` gives a unit's
  label posterior.

Rules of a unit's decision, in this order:

1. Each annotator counts once per unit: a later vote replaces their earlier one, and a
   vote whose value is ``None`` (or NaN) withdraws theirs.
2. Fewer than ``min_annotators`` votes: ``need_more`` (reason ``"too_few"``).
3. The rule holds: ``settled`` (reason ``"agreed"``). "lead": the leader's votes minus the
   runner-up's (0 if there is none) reach ``lead``. "posterior": the leader's posterior
   under the annotators' estimated reliability reaches ``posterior``.
4. ``max_annotators`` or more votes: ``settled`` (reason ``"exhausted"``): the panel is
   full without agreement; these units are the candidates for adjudication.
5. Otherwise ``need_more`` (reason ``"unsettled"``).

The leader is the label with the most votes; a tie goes to the label whose first (current)
vote arrived first. A clip (one Label Studio task) rolls its turns up: each (turn,
dimension) with at least one vote in the policy's dimensions is a unit decided as above,
and the clip needs one more annotator when it has fewer than ``min_annotators``
annotators or any such unit is not settled, unless it already has ``max_annotators``
annotators (then it is ``"exhausted"``). A clip's annotators are everyone with a row for
the clip, in any dimension, a ``None`` value included (someone who submitted the clip and
left a turn blank has seen it); so pass every judgement of the clip, or at least one row
per annotator who submitted it.

Reliability (the "posterior" rule) is a one-coin Dawid-Skene model fitted by EM over all
votes given: annotator ``j`` gives the true label with probability ``a_j`` and otherwise
one of the other ``K - 1`` labels uniformly; labels have a prior ``pi``. E-step, per unit:
``q(c) ∝ pi_c * prod_j (a_j if v_j == c else (1 - a_j) / (K - 1))``. M-step:
``a_j = (sum_i q_i(v_ij) + s * m) / (n_j + s)`` where ``m`` is the pool's mean accuracy
``sum_ij q_i(v_ij) / N`` and ``s = prior_strength``, so an annotator with few votes stays
near the pool's mean. ``pi`` is uniform unless ``label_prior=True`` asks for
``pi_c = (sum_i q_i(c) + 1) / (units + K)``: estimated, it let EM collapse onto the
majority class on the bench's panel of biased annotators (fitted on all 39 votes, the
posterior's label then matched the panel's majority on 73% of the items, 89% with a uniform
``pi``). Accuracies are kept in
[0.01, 0.99]; EM starts from vote shares and stops when no value moves by 1e-6 (at most
200 rounds). An annotator the estimate has never seen gets the pool's mean, and a label it
has never seen gets the smallest label prior.

>>> policy = OverlapPolicy(min_annotators=2, max_annotators=4, lead=2)
>>> votes = [("c1", "ann", "joy"), ("c1", "bob", "joy"), ("c2", "ann", "joy"),
...          ("c2", "bob", "fear")]
>>> {u: d.reason for u, d in decide(policy, votes).items()}
{'c1': 'agreed', 'c2': 'unsettled'}
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.errors import AnnotateError

__all__ = [
    "RULES",
    "ClipDecision",
    "Decision",
    "OverlapError",
    "OverlapPolicy",
    "Reliability",
    "decide",
    "decide_clips",
    "estimate_reliability",
]

RULES = ("lead", "posterior")
Reason = Literal["too_few", "agreed", "exhausted", "unsettled"]
_CLIP_COLUMNS = ("clip", "turn", "annotator", "dimension", "value")
_UNIT_COLUMNS = ("unit", "annotator", "value")
_ACC_BOUNDS = (0.01, 0.99)


class OverlapError(AnnotateError, ValueError):
    """An overlap policy or its input is invalid; the message names the bad value."""


@dataclass(frozen=True, slots=True)
class OverlapPolicy:
    """When a unit has enough annotators; see the module docstring for the rules."""

    min_annotators: int = 2
    max_annotators: int = 5
    rule: str = "lead"
    lead: int = 2
    posterior: float = 0.9
    dimensions: tuple[str, ...] = ("emotion",)
    prior_strength: float = 2.0
    unsettled_share: float = 0.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise OverlapError(f"unknown overlap rule {self.rule!r}; expected one of {RULES}")
        if not isinstance(self.min_annotators, int) or self.min_annotators < 1:
            raise OverlapError(
                f"min_annotators must be an integer >= 1, not {self.min_annotators!r}"
            )
        if not isinstance(self.max_annotators, int) or self.max_annotators < self.min_annotators:
            raise OverlapError(
                f"max_annotators must be an integer >= min_annotators ({self.min_annotators}), "
                f"not {self.max_annotators!r}"
            )
        if not isinstance(self.lead, int) or self.lead < 1:
            raise OverlapError(f"lead must be an integer >= 1, not {self.lead!r}")
        if not 0.0 < self.posterior <= 1.0:
            raise OverlapError(f"posterior must be in (0, 1], not {self.posterior!r}")
        if not self.dimensions or not all(isinstance(d, str) and d for d in self.dimensions):
            raise OverlapError(f"dimensions must be non-empty names, not {self.dimensions!r}")
        if not self.prior_strength >= 0:
            raise OverlapError(f"prior_strength must be >= 0, not {self.prior_strength!r}")
        if not 0.0 <= self.unsettled_share < 1.0:
            raise OverlapError(f"unsettled_share must be in [0, 1), not {self.unsettled_share!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> OverlapPolicy:
        """A policy from a config mapping; unknown keys are an error, ``enabled`` is ignored.

        >>> OverlapPolicy.from_mapping({"rule": "posterior", "dimensions": ["emotion"]}).rule
        'posterior'
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(mapping) - known - {"enabled"})
        if unknown:
            raise OverlapError(f"unknown overlap keys {unknown}; expected some of {sorted(known)}")
        kwargs = {k: v for k, v in mapping.items() if k in known}
        if "dimensions" in kwargs:
            dims = kwargs["dimensions"]
            kwargs["dimensions"] = (dims,) if isinstance(dims, str) else tuple(dims)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain values (JSON output); the inverse of :meth:`from_mapping`."""
        return {
            "min_annotators": self.min_annotators,
            "max_annotators": self.max_annotators,
            "rule": self.rule,
            "lead": self.lead,
            "posterior": self.posterior,
            "dimensions": list(self.dimensions),
            "prior_strength": self.prior_strength,
            "unsettled_share": self.unsettled_share,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """One unit's decision: settled or not, why, and the figures it rests on.

    ``counts`` are (label, votes) pairs, leader first; ``margin`` is the leader's votes
    minus the runner-up's; ``posterior`` is the leader's posterior (rule "posterior" only).
    """

    unit: Hashable
    settled: bool
    reason: Reason
    annotators: int
    leader: str | None
    margin: int
    posterior: float | None = None
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def need_more(self) -> bool:
        """True when the unit needs one more annotator."""
        return not self.settled

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "unit": self.unit,
            "settled": self.settled,
            "reason": self.reason,
            "annotators": self.annotators,
            "leader": self.leader,
            "margin": self.margin,
            "posterior": self.posterior,
            "counts": dict(self.counts),
        }


@dataclass(frozen=True, slots=True)
class ClipDecision:
    """A clip's decision rolled up from its (turn, dimension) units.

    ``unsettled`` lists the (turn, dimension) units that are not settled.
    """

    clip: Hashable
    settled: bool
    reason: Reason
    annotators: int
    turns: tuple[tuple[tuple[Hashable, str], Decision], ...] = ()
    unsettled: tuple[tuple[Hashable, str], ...] = ()

    @property
    def need_more(self) -> bool:
        """True when the clip needs one more annotator."""
        return not self.settled

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "clip": self.clip,
            "settled": self.settled,
            "reason": self.reason,
            "annotators": self.annotators,
            "unsettled": [list(u) for u in self.unsettled],
        }


@dataclass(frozen=True, slots=True)
class Reliability:
    """One-coin Dawid-Skene estimate: each annotator's accuracy and the label prior."""

    accuracy: Mapping[str, float] = field(default_factory=dict)
    votes: Mapping[str, int] = field(default_factory=dict)
    pool_accuracy: float = 0.7
    labels: tuple[str, ...] = ()
    prior: tuple[float, ...] = ()
    iterations: int = 0

    def accuracy_of(self, annotator: str) -> float:
        """The annotator's accuracy, the pool's mean for one never seen."""
        return self.accuracy.get(annotator, self.pool_accuracy)

    def posterior(self, votes: Iterable[tuple[str, str]]) -> dict[str, float]:
        """P(true label | votes) for one unit's ``(annotator, value)`` votes.

        Labels are this estimate's plus any new one in ``votes`` (whose prior is the
        smallest known one; priors renormalised).
        """
        votes = list(votes)
        labels = list(self.labels)
        prior = list(self.prior) if self.prior else [1.0] * len(labels)
        floor = min(prior) if prior else 1.0
        for _, value in votes:
            if value not in labels:
                labels.append(value)
                prior.append(floor)
        k = len(labels)
        if k == 0:
            return {}
        total = sum(prior)
        logp = [math.log(p / total) for p in prior]
        for annotator, value in votes:
            a = self.accuracy_of(annotator)
            wrong = math.log((1.0 - a) / (k - 1)) if k > 1 else 0.0
            right = math.log(a) if k > 1 else 0.0
            for c, label in enumerate(labels):
                logp[c] += right if label == value else wrong
        top = max(logp)
        w = [math.exp(x - top) for x in logp]
        s = sum(w)
        return {label: wi / s for label, wi in zip(labels, w, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "accuracy": dict(self.accuracy),
            "votes": dict(self.votes),
            "pool_accuracy": self.pool_accuracy,
            "prior": dict(zip(self.labels, self.prior, strict=True)),
            "iterations": self.iterations,
        }


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _records(rows: Any, columns: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    """Rows as tuples in ``columns`` order: a pandas frame, mappings, or sequences."""
    if hasattr(rows, "itertuples") and hasattr(rows, "columns"):
        missing = [c for c in columns if c not in rows.columns]
        if missing:
            raise OverlapError(f"frame lacks columns {missing}; expected {list(columns)}")
        yield from rows[list(columns)].itertuples(index=False, name=None)
        return
    for n, row in enumerate(rows):
        if isinstance(row, Mapping):
            try:
                yield tuple(row[c] for c in columns)
            except KeyError as exc:
                raise OverlapError(f"record {n} lacks {exc.args[0]!r}") from None
        else:
            rec = tuple(row)
            if len(rec) != len(columns):
                raise OverlapError(
                    f"record {n} has {len(rec)} fields; expected {len(columns)} {list(columns)}"
                )
            yield rec


def _current_votes(records: Iterable[tuple[Hashable, Any, Any]]) -> dict[Hashable, dict[str, str]]:
    """unit -> {annotator: value}, the later vote replacing the earlier; order kept.

    A re-vote keeps the annotator's first position (arrival of their first vote)."""
    units: dict[Hashable, dict[str, str]] = {}
    for unit, annotator, value in records:
        votes = units.setdefault(unit, {})
        if _is_missing(value):
            votes.pop(str(annotator), None)
        else:
            votes[str(annotator)] = str(value)
    return units


def _counts(values: Iterable[str]) -> list[tuple[str, int]]:
    """(label, votes), most votes first, ties by first arrival."""
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    order = {v: i for i, v in enumerate(counts)}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def _decide_unit(
    policy: OverlapPolicy, unit: Hashable, votes: Mapping[str, str], rel: Reliability | None
) -> Decision:
    counts = _counts(votes.values())
    n = len(votes)
    leader = counts[0][0] if counts else None
    margin = counts[0][1] - (counts[1][1] if len(counts) > 1 else 0) if counts else 0
    post = None
    if policy.rule == "posterior" and counts and rel is not None:
        dist = rel.posterior(votes.items())
        rank = {lab: i for i, (lab, _) in enumerate(counts)}
        leader = max(dist, key=lambda c: (dist[c], -rank.get(c, len(rank))))
        post = dist[leader]
        if leader != counts[0][0]:
            # the posterior may prefer a label backed by fewer but more reliable annotators
            own = dict(counts).get(leader, 0)
            margin = own - max((c for lab, c in counts if lab != leader), default=0)
    if policy.rule == "lead":
        agreed = margin >= policy.lead
    else:
        agreed = post is not None and post >= policy.posterior
    if n < policy.min_annotators:
        settled, reason = False, "too_few"
    elif agreed:
        settled, reason = True, "agreed"
    elif n >= policy.max_annotators:
        settled, reason = True, "exhausted"
    else:
        settled, reason = False, "unsettled"
    return Decision(unit, settled, reason, n, leader, margin, post, tuple(counts))


def decide(
    policy: OverlapPolicy, votes: Any, reliability: Reliability | None = None
) -> dict[Hashable, Decision]:
    """Each unit's decision from its votes in arrival order.

    Parameters
    ----------
    policy : the overlap policy.
    votes : ``(unit, annotator, value)`` records (tuples, mappings or a pandas frame with
        columns unit, annotator, value), in arrival order.
    reliability : for rule "posterior"; ``None`` estimates it from ``votes`` with
        :func:`estimate_reliability`.

    Returns
    -------
    dict from unit to :class:`Decision`, units in order of first arrival.
    """
    units = _current_votes(_records(votes, _UNIT_COLUMNS))
    if policy.rule == "posterior" and reliability is None:
        reliability = _fit(units, policy.prior_strength)
    return {u: _decide_unit(policy, u, v, reliability) for u, v in units.items()}


def decide_clips(
    policy: OverlapPolicy,
    judgements: Any,
    reliability: Mapping[str, Reliability] | None = None,
) -> dict[Hashable, ClipDecision]:
    """Each clip's decision from its turns' judgements in arrival order.

    Parameters
    ----------
    policy : the overlap policy (its ``dimensions`` pick the judgements that count).
    judgements : ``(clip, turn, annotator, dimension, value)`` records (tuples, mappings
        or a pandas frame with those columns), in arrival order.
    reliability : dimension -> :class:`Reliability` for rule "posterior"; a dimension
        missing there is estimated from its judgements here.

    Returns
    -------
    dict from clip to :class:`ClipDecision`, clips in order of first arrival.
    """
    annotators: dict[Hashable, set[str]] = {}
    per_dim: dict[str, list[tuple[Hashable, Any, Any]]] = {d: [] for d in policy.dimensions}
    for clip, turn, annotator, dimension, value in _records(judgements, _CLIP_COLUMNS):
        annotators.setdefault(clip, set()).add(str(annotator))
        if dimension in per_dim:
            per_dim[dimension].append(((clip, turn, dimension), annotator, value))
    turn_decisions: dict[Hashable, list[tuple[tuple[Hashable, str], Decision]]] = {}
    for dim, recs in per_dim.items():
        units = _current_votes(recs)
        units = {u: v for u, v in units.items() if v}
        rel = (reliability or {}).get(dim)
        if policy.rule == "posterior" and rel is None:
            rel = _fit(units, policy.prior_strength)
        for key, votes in units.items():
            clip, turn, _ = key
            turn_decisions.setdefault(clip, []).append(
                ((turn, dim), _decide_unit(policy, key, votes, rel))
            )
    out: dict[Hashable, ClipDecision] = {}
    for clip, who in annotators.items():
        turns = tuple(turn_decisions.get(clip, ()))
        unsettled = tuple(k for k, d in turns if d.reason != "agreed")
        # more than ``unsettled_share`` of the clip's units unsettled holds it open
        holding = len(unsettled) > policy.unsettled_share * len(turns)
        n = len(who)
        if n >= policy.max_annotators and holding:
            settled, reason = True, "exhausted"
        elif n < policy.min_annotators:
            settled, reason = False, "too_few"
        elif holding:
            settled, reason = False, "unsettled"
        else:
            settled, reason = True, "agreed"
        out[clip] = ClipDecision(clip, settled, reason, n, turns, unsettled)
    return out


def estimate_reliability(
    votes: Any, prior_strength: float = 2.0, label_prior: bool = False
) -> Reliability:
    """One-coin Dawid-Skene accuracies from ``(unit, annotator, value)`` records.

    See the module docstring for the model and the prior; a re-vote replaces the earlier.

    >>> rel = estimate_reliability([("u1", "a", "x"), ("u1", "b", "x"), ("u2", "a", "y"),
    ...                             ("u2", "b", "y"), ("u2", "c", "x")])
    >>> rel.accuracy_of("a") > rel.accuracy_of("c")
    True
    """
    if not prior_strength >= 0:
        raise OverlapError(f"prior_strength must be >= 0, not {prior_strength!r}")
    return _fit(_current_votes(_records(votes, _UNIT_COLUMNS)), prior_strength, label_prior)


def _fit(
    units: Mapping[Hashable, Mapping[str, str]],
    prior_strength: float,
    label_prior: bool = False,
    max_rounds: int = 200,
    tol: float = 1e-6,
) -> Reliability:
    """EM for the one-coin model over unit -> {annotator: value}."""
    units = {u: v for u, v in units.items() if v}
    labels: list[str] = []
    for votes in units.values():
        for value in votes.values():
            if value not in labels:
                labels.append(value)
    k = len(labels)
    if not units:
        return Reliability()
    index = {lab: i for i, lab in enumerate(labels)}
    # start: vote shares per unit
    q: dict[Hashable, list[float]] = {}
    for u, votes in units.items():
        row = [0.0] * k
        for value in votes.values():
            row[index[value]] += 1.0 / len(votes)
        q[u] = row
    acc: dict[str, float] = {}
    n_votes: dict[str, int] = {}
    for votes in units.values():
        for a in votes:
            n_votes[a] = n_votes.get(a, 0) + 1
    pool = 0.7
    prior = [1.0 / k] * k
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        # M-step
        hit: dict[str, float] = dict.fromkeys(n_votes, 0.0)
        for u, votes in units.items():
            for a, value in votes.items():
                hit[a] += q[u][index[value]]
        new_pool = sum(hit.values()) / sum(n_votes.values())
        lo, hi = _ACC_BOUNDS
        new_acc = {
            a: min(
                hi, max(lo, (hit[a] + prior_strength * new_pool) / (n_votes[a] + prior_strength))
            )
            for a in n_votes
        }
        new_prior = (
            [(sum(q[u][c] for u in units) + 1.0) / (len(units) + k) for c in range(k)]
            if label_prior
            else prior
        )
        delta = max(
            [abs(new_pool - pool)]
            + [abs(new_acc[a] - acc.get(a, 2.0)) for a in new_acc]
            + [abs(x - y) for x, y in zip(new_prior, prior, strict=True)]
        )
        acc, pool, prior = new_acc, min(hi, max(lo, new_pool)), new_prior
        rel = Reliability(acc, n_votes, pool, tuple(labels), tuple(prior), rounds)
        # E-step
        for u, votes in units.items():
            post = rel.posterior(votes.items())
            q[u] = [post[lab] for lab in labels]
        if delta < tol:
            break
    return Reliability(acc, n_votes, pool, tuple(labels), tuple(prior), rounds)
