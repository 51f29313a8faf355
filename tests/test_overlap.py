"""The adaptive overlap policy: expected decisions counted by hand or with plain numpy."""

from __future__ import annotations

import doctest
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annotate import overlap
from annotate.overlap import (
    OverlapError,
    OverlapPolicy,
    Reliability,
    decide,
    decide_clips,
    estimate_reliability,
)

LEAD = OverlapPolicy(min_annotators=2, max_annotators=4, rule="lead", lead=2)


def test_lead_rule_by_hand() -> None:
    votes = [
        ("u1", "a", "joy"),
        ("u1", "b", "joy"),  # 2 votes, 2-0: agreed
        ("u2", "a", "joy"),
        ("u2", "b", "fear"),  # 1-1, 2 < max: unsettled
        ("u3", "a", "joy"),  # 1 vote < min: too few
        ("u4", "a", "joy"),
        ("u4", "b", "fear"),
        ("u4", "c", "joy"),
        ("u4", "d", "fear"),  # 2-2 at max 4: exhausted
        ("u5", "a", "joy"),
        ("u5", "b", "fear"),
        ("u5", "c", "joy"),
        ("u5", "d", "joy"),  # 3-1: agreed
        ("u6", "a", "joy"),
        ("u6", "b", "fear"),
        ("u6", "a", "fear"),  # a's re-vote replaces: fear 2-0, 2 annotators
        ("u7", "a", "joy"),
        ("u7", "b", "joy"),
        ("u7", "b", None),  # b withdraws: 1 vote
    ]
    got = decide(LEAD, votes)
    assert list(got) == ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]
    expected = {
        "u1": ("agreed", True, 2, "joy", 2),
        "u2": ("unsettled", False, 2, "joy", 0),
        "u3": ("too_few", False, 1, "joy", 1),
        "u4": ("exhausted", True, 4, "joy", 0),
        "u5": ("agreed", True, 4, "joy", 2),
        "u6": ("agreed", True, 2, "fear", 2),
        "u7": ("too_few", False, 1, "joy", 1),
    }
    for unit, (reason, settled, n, leader, margin) in expected.items():
        d = got[unit]
        assert (d.reason, d.settled, d.annotators, d.leader, d.margin) == (
            reason,
            settled,
            n,
            leader,
            margin,
        ), unit
        assert d.need_more is (not settled)
        assert d.posterior is None


def test_lead_rule_random_against_counts() -> None:
    rng = np.random.default_rng(16)
    labels = np.array(["joy", "fear", "anger"])
    rows = []
    for u in range(300):
        n = int(rng.integers(1, 7))
        for a in rng.choice(8, size=n, replace=False):
            rows.append((f"u{u}", f"a{a}", str(rng.choice(labels, p=[0.6, 0.3, 0.1]))))
    policy = OverlapPolicy(min_annotators=2, max_annotators=5, lead=2)
    got = decide(policy, pd.DataFrame(rows, columns=["unit", "annotator", "value"]))
    for u in range(300):
        values = [v for unit, _, v in rows if unit == f"u{u}"]
        counts = [*sorted(Counter(values).values(), reverse=True), 0]
        margin = counts[0] - counts[1]
        if len(values) < 2:
            reason = "too_few"
        elif margin >= 2:
            reason = "agreed"
        elif len(values) >= 5:
            reason = "exhausted"
        else:
            reason = "unsettled"
        assert got[f"u{u}"].reason == reason
        assert got[f"u{u}"].margin == margin


def _bayes(acc: dict[str, float], pool: float, labels: list[str], prior: list[float], votes):
    """P(label | votes) by direct enumeration with numpy."""
    labels, prior = list(labels), list(prior)
    for _, v in votes:
        if v not in labels:
            labels.append(v)
            prior.append(min(prior))
    k = len(labels)
    p = np.array(prior, dtype=float) / np.sum(prior)
    for annotator, v in votes:
        a = acc.get(annotator, pool)
        p = p * np.where(np.array(labels) == v, a, (1 - a) / (k - 1))
    return dict(zip(labels, p / p.sum(), strict=True))


REL = Reliability(
    accuracy={"a": 0.9, "b": 0.6, "c": 0.8},
    votes={"a": 10, "b": 10, "c": 10},
    pool_accuracy=0.75,
    labels=("joy", "fear", "anger"),
    prior=(0.5, 0.3, 0.2),
)


@pytest.mark.parametrize(
    "votes",
    [
        [("a", "joy"), ("b", "fear")],
        [("a", "joy"), ("b", "fear"), ("d", "fear")],  # d unknown: the pool's mean
        [("c", "anger"), ("b", "anger")],
        [("a", "surprise"), ("c", "surprise"), ("b", "joy")],  # a label never seen
    ],
)
def test_posterior_matches_direct_bayes(votes) -> None:
    want = _bayes(dict(REL.accuracy), REL.pool_accuracy, list(REL.labels), list(REL.prior), votes)
    got = REL.posterior(votes)
    assert set(got) == set(want)
    for label, p in want.items():
        assert got[label] == pytest.approx(p, abs=1e-12)


def test_posterior_rule_decisions() -> None:
    policy = OverlapPolicy(min_annotators=2, max_annotators=4, rule="posterior", posterior=0.9)
    units = {
        "u1": [("a", "joy"), ("c", "joy")],
        "u2": [("a", "joy"), ("b", "fear")],
        "u3": [("b", "fear"), ("d", "fear")],
        "u4": [("a", "joy"), ("b", "fear"), ("c", "anger"), ("d", "joy")],
        "u5": [("c", "anger")],
    }
    rows = [(u, a, v) for u, vs in units.items() for a, v in vs]
    got = decide(policy, rows, reliability=REL)
    for u, vs in units.items():
        post = _bayes(dict(REL.accuracy), REL.pool_accuracy, list(REL.labels), list(REL.prior), vs)
        leader = max(post, key=post.get)
        if len(vs) < 2:
            reason = "too_few"
        elif post[leader] >= 0.9:
            reason = "agreed"
        elif len(vs) >= 4:
            reason = "exhausted"
        else:
            reason = "unsettled"
        assert got[u].reason == reason, u
        assert got[u].leader == leader
        assert got[u].posterior == pytest.approx(post[leader], abs=1e-12)
    # by hand: a (0.9) and c (0.8) agreeing settle; a against b does not
    assert got["u1"].settled and not got["u2"].settled


def _em_step(acc, pool, labels, prior, units, s, label_prior=False):
    """One E then M step of the one-coin model, in numpy, from the given parameters."""
    names = sorted({a for vs in units.values() for a in vs})
    k = len(labels)
    lab = {v: i for i, v in enumerate(labels)}
    m = np.full((len(units), len(names)), -1)
    for i, vs in enumerate(units.values()):
        for a, v in vs.items():
            m[i, names.index(a)] = lab[v]
    av = np.array([acc[a] for a in names])
    logq = np.tile(np.log(np.array(prior) / np.sum(prior)), (len(units), 1))
    for j in range(len(names)):
        seen = m[:, j] >= 0
        onehot = np.eye(k)[m[seen, j]]
        logq[seen] += np.where(onehot == 1, np.log(av[j]), np.log((1 - av[j]) / (k - 1)))
    q = np.exp(logq - logq.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    hit = np.array([q[m[:, j] >= 0, m[m[:, j] >= 0, j]].sum() for j in range(len(names))])
    n = (m >= 0).sum(axis=0)
    new_pool = hit.sum() / n.sum()
    new_acc = np.clip((hit + s * new_pool) / (n + s), 0.01, 0.99)
    new_prior = (q.sum(axis=0) + 1) / (len(units) + k) if label_prior else np.array(prior)
    return dict(zip(names, new_acc, strict=True)), new_pool, new_prior


def test_reliability_em_fixed_point_and_prior() -> None:
    rng = np.random.default_rng(7)
    labels = ["joy", "fear", "anger", "neutral"]
    true_acc = {"good1": 0.92, "good2": 0.88, "mid": 0.75, "poor": 0.45}
    rows = []
    for u in range(200):
        truth = int(rng.integers(4))
        for a, p in true_acc.items():
            v = truth if rng.random() < p else int(rng.choice([c for c in range(4) if c != truth]))
            rows.append((f"u{u}", a, labels[v]))
    rows += [("u0", "rare", labels[0]), ("u1", "rare", labels[3])]
    rel = estimate_reliability(rows, prior_strength=2.0)
    assert rel.accuracy_of("good1") > rel.accuracy_of("mid") > rel.accuracy_of("poor")
    assert abs(rel.accuracy_of("good1") - 0.92) < 0.06
    assert abs(rel.accuracy_of("poor") - 0.45) < 0.08
    # 2 votes against 2 pseudo-votes at the pool's mean: at most half-way from the mean
    pool = rel.pool_accuracy
    assert abs(rel.accuracy_of("rare") - pool) <= 0.5 * max(pool, 1 - pool) + 1e-9
    assert rel.votes["rare"] == 2 and rel.votes["good1"] == 200
    assert rel.accuracy_of("nobody") == rel.pool_accuracy
    units: dict[str, dict[str, str]] = {}
    for u, a, v in rows:
        units.setdefault(u, {})[a] = v
    assert list(rel.prior) == [0.25] * 4  # uniform unless label_prior=True
    fitted = estimate_reliability(rows, prior_strength=2.0, label_prior=True)
    assert abs(sum(fitted.prior) - 1) < 1e-9 and len(set(fitted.prior)) > 1
    for r, label_prior in ((rel, False), (fitted, True)):
        acc, pool, prior = _em_step(
            dict(r.accuracy),
            r.pool_accuracy,
            list(r.labels),
            list(r.prior),
            units,
            2.0,
            label_prior,
        )
        assert pool == pytest.approx(r.pool_accuracy, abs=1e-4)
        for a, value in acc.items():
            assert r.accuracy[a] == pytest.approx(value, abs=1e-4), a
        assert list(r.prior) == pytest.approx(list(prior), abs=1e-4)


def test_clips_roll_up_turns() -> None:
    policy = OverlapPolicy(min_annotators=2, max_annotators=3, lead=2)
    rows = [
        # c1: both turns agreed by a and b
        ("c1", "t1", "a", "emotion", "joy"),
        ("c1", "t2", "a", "emotion", "fear"),
        ("c1", "t1", "b", "emotion", "joy"),
        ("c1", "t2", "b", "emotion", "fear"),
        # c2: t2 split
        ("c2", "t1", "a", "emotion", "joy"),
        ("c2", "t2", "a", "emotion", "joy"),
        ("c2", "t1", "b", "emotion", "joy"),
        ("c2", "t2", "b", "emotion", "anger"),
        # c3: three annotators (the max), t1 still split 2-1
        ("c3", "t1", "a", "emotion", "joy"),
        ("c3", "t1", "b", "emotion", "fear"),
        ("c3", "t1", "c", "emotion", "joy"),
        # c4: only another dimension disagrees
        ("c4", "t1", "a", "emotion", "joy"),
        ("c4", "t1", "b", "emotion", "joy"),
        ("c4", "t1", "a", "intensity", "1"),
        ("c4", "t1", "b", "intensity", "5"),
        # c5: b submitted, left t1 blank: 2 annotators on the clip, 1 vote on t1
        ("c5", "t1", "a", "emotion", "joy"),
        ("c5", "t1", "b", "emotion", None),
        # c6: one annotator so far
        ("c6", "t1", "a", "emotion", "joy"),
    ]
    got = decide_clips(policy, rows)
    summary = {c: (d.reason, d.settled, d.annotators, d.unsettled) for c, d in got.items()}
    assert summary == {
        "c1": ("agreed", True, 2, ()),
        "c2": ("unsettled", False, 2, (("t2", "emotion"),)),
        "c3": ("exhausted", True, 3, (("t1", "emotion"),)),
        "c4": ("agreed", True, 2, ()),
        "c5": ("unsettled", False, 2, (("t1", "emotion"),)),
        "c6": ("too_few", False, 1, (("t1", "emotion"),)),
    }
    frame = pd.DataFrame(rows, columns=["clip", "turn", "annotator", "dimension", "value"])
    assert {c: d.reason for c, d in decide_clips(policy, frame).items()} == {
        c: s[0] for c, s in summary.items()
    }
    two = OverlapPolicy(dimensions=("emotion", "intensity"), max_annotators=3)
    assert decide_clips(two, rows)["c4"].unsettled == (("t1", "intensity"),)


def test_policy_mapping_round_trip_and_errors() -> None:
    policy = OverlapPolicy.from_mapping(
        {"enabled": True, "rule": "posterior", "posterior": 0.8, "dimensions": ["emotion"]}
    )
    assert policy.rule == "posterior" and policy.dimensions == ("emotion",)
    assert OverlapPolicy.from_mapping(policy.to_dict()) == policy
    assert policy.to_dict() == {
        "min_annotators": 2,
        "max_annotators": 5,
        "rule": "posterior",
        "lead": 2,
        "posterior": 0.8,
        "dimensions": ["emotion"],
        "prior_strength": 2.0,
        "unsettled_share": 0.0,
    }
    with pytest.raises(OverlapError, match="expected one of"):
        OverlapPolicy(rule="vote")
    with pytest.raises(OverlapError, match="max_annotators"):
        OverlapPolicy(min_annotators=3, max_annotators=2)
    with pytest.raises(OverlapError, match="unknown overlap keys"):
        OverlapPolicy.from_mapping({"lead": 2, "typo": 1})
    with pytest.raises(OverlapError, match="has 2 fields; expected 3"):
        decide(LEAD, [("u1", "a")])


def test_doctests() -> None:
    failures, tried = doctest.testmod(overlap)
    assert failures == 0 and tried >= 3


def test_config_section(tmp_path) -> None:
    from annotate.config import ConfigError, load_settings

    root = Path(__file__).resolve().parents[1]
    shipped = load_settings(root / "config.yaml").overlap
    assert shipped.enabled is False
    assert shipped.policy() == OverlapPolicy()
    path = tmp_path / "config.yaml"
    path.write_text("overlap:\n  rule: posterior\n  posterior: 0.8\n  max_annotators: 4\n")
    assert load_settings(path).overlap.policy() == OverlapPolicy(
        rule="posterior", posterior=0.8, max_annotators=4
    )
    path.write_text("overlap:\n  min_annotators: 3\n  max_annotators: 2\n")
    with pytest.raises(ConfigError, match="max_annotators \\(2\\) is below"):
        load_settings(path)
    path.write_text("overlap:\n  rule: majority\n")
    with pytest.raises(ConfigError, match=r"overlap\.rule"):
        load_settings(path)


def test_clips_posterior_rule_uses_the_dimensions_reliability() -> None:
    policy = OverlapPolicy(rule="posterior", posterior=0.9, max_annotators=4)
    rows = [
        ("c1", "t1", "a", "emotion", "joy"),
        ("c1", "t1", "c", "emotion", "joy"),  # a (0.9) and c (0.8) agree
        ("c2", "t1", "a", "emotion", "joy"),
        ("c2", "t1", "b", "emotion", "fear"),  # a against b
    ]
    got = decide_clips(policy, rows, reliability={"emotion": REL})
    for clip, votes in (
        ("c1", [("a", "joy"), ("c", "joy")]),
        ("c2", [("a", "joy"), ("b", "fear")]),
    ):
        post = _bayes(
            dict(REL.accuracy), REL.pool_accuracy, list(REL.labels), list(REL.prior), votes
        )
        assert got[clip].settled == bool(max(post.values()) >= 0.9)
        ((_, turn),) = got[clip].turns
        assert turn.posterior == pytest.approx(max(post.values()), abs=1e-12)
    assert got["c1"].reason == "agreed" and got["c2"].reason == "unsettled"


def test_a_clip_may_leave_a_share_of_its_turns_unsettled() -> None:
    # 8 turns, 2 annotators: 6 turns agreed (2-0), 2 turns split (1-1)
    rows = []
    for turn in range(8):
        rows.append(("c", f"t{turn}", "a", "emotion", "joy"))
        rows.append(("c", f"t{turn}", "b", "emotion", "joy" if turn < 6 else "fear"))
    for share, open_ in ((0.0, True), (0.2, True), (0.25, False), (0.5, False)):
        decision = decide_clips(OverlapPolicy(unsettled_share=share), rows)["c"]
        # by hand: 2 of 8 units unsettled holds the clip open when 2 > share * 8
        assert decision.need_more is open_, share
        assert len(decision.unsettled) == 2
    with pytest.raises(OverlapError, match="unsettled_share"):
        OverlapPolicy(unsettled_share=1.0)
