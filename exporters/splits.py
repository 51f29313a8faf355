"""Train/dev/test splits of turn rows with no session and no performer in two splits.

Turns of one session share a scene, and a performer's voice and style recur across the
sessions they play in; a model tested on a session or a performer it was trained on looks
better than it is. :func:`group_split` therefore assigns whole *groups*: the connected
components of the graph linking each session to its performers. Pure Python and numpy, no
I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.errors import AnnotateError

__all__ = [
    "SPLITS",
    "SessionTally",
    "SplitError",
    "group_split",
    "group_split_sessions",
    "split_warnings",
]

SPLITS = ("train", "dev", "test")


class SplitError(AnnotateError, ValueError):
    """Bad split fractions or rows that cannot be grouped; the message names what."""


class _UnionFind:
    """Disjoint sets over 0..n-1, with path halving and union by size."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        self.size.append(1)
        return len(self.parent) - 1

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = list(fractions)
    if len(values) != len(SPLITS):
        raise SplitError(
            f"fractions {values}: expected {len(SPLITS)} values, for {', '.join(SPLITS)}"
        )
    bad = [f for f in values if not isinstance(f, int | float) or not math.isfinite(f) or f < 0]
    if bad:
        raise SplitError(f"fractions {values}: {bad} not finite numbers >= 0")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-9:
        raise SplitError(f"fractions {values} sum to {total!r}; expected them to sum to 1")
    return np.asarray(values, dtype=float)


def group_split(
    rows: Iterable[Mapping[str, Any]],
    *,
    session_key: str,
    performer_key: str,
    label_key: str,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[int, str]:
    """Assign rows (turns) to train/dev/test so no session or performer spans two splits.

    Sessions and performers are the nodes of a graph; each row links its session to its
    performer. Each connected component (found by union-find) goes whole into one split,
    so a performer who plays in several sessions pulls all of those sessions, and every
    other performer in them, into the same split.

    Components are placed greedily, largest first (equal sizes in a seeded random order).
    Each goes to the split where it most reduces the squared deviation of the split's row
    count from ``fraction * total rows`` plus, per label, of the split's count of that
    label from ``fraction * total count of the label`` (stratification: each split's size
    and label distribution approach the targets together). Ties between splits go to the
    first in ``train, dev, test`` order. A split with fraction 0 receives nothing.

    No leakage is the hard rule, the fractions are targets: with few or very unequal
    components, the sizes can be far from the fractions and **some splits can be empty**
    (for example when one performer plays in every session there is a single component,
    all in one split). Check the counts of the result.

    Parameters
    ----------
    rows : iterable of mapping
        One mapping per turn, each with the three keys below (the keys must exist).
    session_key : str
        Key of the session id. A row whose session id is ``None`` is left out of the
        result (no split), since it cannot be grouped safely.
    performer_key : str
        Key of the performer id. ``None`` (speaker unknown) links the row to its session
        only.
    label_key : str
        Key of the label used for stratification (any hashable); ``None`` counts towards
        the split sizes but not the label distribution.
    fractions : sequence of 3 floats
        Target shares of rows for train, dev and test; each >= 0, summing to 1 (within
        1e-9).
    seed : int
        Seed of the order in which equal-size components are placed.

    Returns
    -------
    dict
        ``row index -> split name`` (``"train"``, ``"dev"`` or ``"test"``), where the row
        index counts rows in the order given, from 0. Rows without a session id are absent.

    Raises
    ------
    SplitError
        (a ``ValueError``) for bad ``fractions`` or a row missing one of the keys.

    Examples
    --------
    >>> rows = [
    ...     {"session": "s1", "performer": "maya", "label": "joy"},
    ...     {"session": "s1", "performer": "theo", "label": "anger"},
    ...     {"session": "s2", "performer": "theo", "label": "joy"},
    ...     {"session": "s3", "performer": "ines", "label": None},
    ... ]
    >>> split = group_split(
    ...     rows, session_key="session", performer_key="performer", label_key="label",
    ...     fractions=(0.7, 0.3, 0.0),
    ... )
    >>> split
    {0: 'train', 1: 'train', 2: 'train', 3: 'dev'}
    """
    targets = _check_fractions(fractions)
    forest = _UnionFind()
    node: dict[tuple[str, Hashable], int] = {}
    row_node: list[tuple[int, int]] = []  # (row index, session node) of groupable rows
    row_label: list[Hashable | None] = []
    for i, row in enumerate(rows):
        missing = [k for k in (session_key, performer_key, label_key) if k not in row]
        if missing:
            raise SplitError(
                f"row {i} has no {', '.join(map(repr, missing))}; keys are {sorted(row)}"
            )
        session, performer = row[session_key], row[performer_key]
        if session is None:
            continue
        key = ("session", session)
        if key not in node:
            node[key] = forest.add()
        if performer is not None:
            other = ("performer", performer)
            if other not in node:
                node[other] = forest.add()
            forest.union(node[key], node[other])
        row_node.append((i, node[key]))
        row_label.append(row[label_key])
    if not row_node:
        return {}

    # components in order of their first row; label columns in order of first appearance
    component_of_root: dict[int, int] = {}
    members: list[list[int]] = []
    label_column: dict[Hashable, int] = {}
    cells: list[tuple[int, int]] = []
    for (i, n), label in zip(row_node, row_label, strict=True):
        c = component_of_root.setdefault(forest.find(n), len(component_of_root))
        if c == len(members):
            members.append([])
        members[c].append(i)
        if label is not None:
            cells.append((c, label_column.setdefault(label, len(label_column))))
    sizes = np.array([len(m) for m in members], dtype=float)
    label_counts = np.zeros((len(members), len(label_column)))
    if cells:
        np.add.at(label_counts, tuple(np.array(cells).T), 1.0)
    split_of = _place(sizes, label_counts, targets, seed)
    assigned = {i: SPLITS[split_of[c]] for c, rows_of in enumerate(members) for i in rows_of}
    return dict(sorted(assigned.items()))


def _place(
    sizes: np.ndarray, label_counts: np.ndarray, targets: np.ndarray, seed: int
) -> np.ndarray:
    """Split index of each component (sizes (C,), label counts (C, L)), greedily."""
    n_components = sizes.size
    n_labels = label_counts.shape[1]
    target_size = targets * sizes.sum()  # (S,)
    target_labels = np.outer(targets, label_counts.sum(axis=0))  # (S, L)
    size_now = np.zeros(len(SPLITS))
    labels_now = np.zeros((len(SPLITS), n_labels))
    allowed = targets > 0

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_components)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    split_of = np.empty(n_components, dtype=np.intp)
    for c in order:
        m, counts = sizes[c], label_counts[c]
        # change of the squared deviations if c went to each split
        cost = (m * m + 2 * m * (size_now - target_size)) + (
            (counts * counts).sum() + 2 * ((labels_now - target_labels) @ counts)
        )
        cost[~allowed] = np.inf
        s = int(np.argmin(cost))
        split_of[c] = s
        size_now[s] += m
        labels_now[s] += counts
    return split_of


@dataclass(slots=True)
class SessionTally:
    """What :func:`group_split_sessions` needs of one session's rows (turns).

    ``performers``: the performer ids of its rows (``None`` left out); ``labels``: rows
    per stratification label (``None`` left out); ``rows``: all its rows.
    """

    performers: set[Hashable] = field(default_factory=set)
    labels: dict[Hashable, int] = field(default_factory=dict)
    rows: int = 0

    def add(self, performer: Hashable | None, label: Hashable | None) -> None:
        """Count one row."""
        self.rows += 1
        if performer is not None:
            self.performers.add(performer)
        if label is not None:
            self.labels[label] = self.labels.get(label, 0) + 1


def group_split_sessions(
    sessions: Mapping[Hashable, SessionTally],
    *,
    label_order: Sequence[Hashable],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[Hashable, str]:
    """:func:`group_split` from per-session tallies instead of rows: session -> split.

    Every row of a session lands in the session's split, so the tallies are all the
    placement needs; memory is per session, not per row. Given the sessions in the order
    of their first row and ``label_order``, the labels in the order of their first
    appearance among the rows (of sessions that are not ``None``), the result is the
    split :func:`group_split` gives each of those rows.

    Examples
    --------
    >>> a, b = SessionTally(), SessionTally()
    >>> a.add("maya", "joy"); a.add("theo", "anger"); b.add("ines", None)
    >>> group_split_sessions(
    ...     {"s1": a, "s3": b}, label_order=["joy", "anger"], fractions=(0.7, 0.3, 0.0)
    ... )
    {'s1': 'train', 's3': 'dev'}
    """
    targets = _check_fractions(fractions)
    forest = _UnionFind()
    node: dict[tuple[str, Hashable], int] = {}
    order: list[tuple[Hashable, int]] = []
    for session, tally in sessions.items():
        if session is None or not tally.rows:
            continue
        node[("session", session)] = forest.add()
        for performer in tally.performers:
            other = ("performer", performer)
            if other not in node:
                node[other] = forest.add()
            forest.union(node[("session", session)], node[other])
        order.append((session, node[("session", session)]))
    if not order:
        return {}
    label_column = {label: k for k, label in enumerate(label_order)}
    component_of_root: dict[int, int] = {}
    component: dict[Hashable, int] = {}
    for session, n in order:
        component[session] = component_of_root.setdefault(forest.find(n), len(component_of_root))
    sizes = np.zeros(len(component_of_root))
    label_counts = np.zeros((len(component_of_root), len(label_column)))
    for session, c in component.items():
        tally = sessions[session]
        sizes[c] += tally.rows
        for label, count in tally.labels.items():
            if label not in label_column:
                raise SplitError(
                    f"session {session!r}: label {label!r} is not in label_order "
                    f"{list(label_order)}"
                )
            label_counts[c, label_column[label]] += count
    split_of = _place(sizes, label_counts, targets, seed)
    return {session: SPLITS[split_of[c]] for session, c in component.items()}


def split_warnings(
    sessions: Mapping[Hashable, SessionTally],
    split_of: Mapping[Hashable, str],
    fractions: Sequence[float],
) -> list[str]:
    """What a split request could not meet, in words (empty when every asked split got rows).

    A split asked for (fraction above 0) stays empty when the sessions form fewer groups
    than splits: one session, fewer performers than splits, or performers shared across
    every session. The message names the cause with the counts.

    Examples
    --------
    >>> one = SessionTally(); one.add("maya", "joy"); one.add("theo", None)
    >>> split_warnings({"s1": one}, {"s1": "train"}, (0.8, 0.1, 0.1))[0][:60]
    'splits dev, test are empty: 1 session (2 performers) cannot '
    """
    asked = [s for s, f in zip(SPLITS, fractions, strict=True) if f > 0]
    got = {split_of[s] for s, t in sessions.items() if s in split_of and t.rows}
    empty = [s for s in asked if s not in got]
    if not empty:
        return []
    named = [s for s, t in sessions.items() if s is not None and t.rows]
    performers = set().union(*(sessions[s].performers for s in named)) if named else set()
    groups = _count_groups(sessions[s] for s in named)
    counts = (
        f"{len(named)} session{'s' if len(named) != 1 else ''} "
        f"({len(performers)} performer{'s' if len(performers) != 1 else ''})"
    )
    if len(named) < len(asked):
        cause = f"{counts} cannot fill {len(asked)} splits"
    elif len(performers) < len(asked):
        cause = f"{counts}: fewer performers than the {len(asked)} splits asked for"
    else:
        cause = (
            f"{counts} form {groups} group{'s' if groups != 1 else ''} of sessions linked "
            f"by shared performers, fewer than the {len(asked)} splits asked for"
        )
    return [
        f"splits {', '.join(empty)} are empty: {cause}; no session or performer is put in "
        f"two splits, so the split asked for ({', '.join(f'{f:g}' for f in fractions)}) "
        "cannot be met"
    ]


def _count_groups(tallies: Iterable[SessionTally]) -> int:
    """Connected components of sessions linked by shared performers."""
    forest = _UnionFind()
    node: dict[Hashable, int] = {}
    roots = []
    for tally in tallies:
        n = forest.add()
        roots.append(n)
        for performer in tally.performers:
            if performer in node:
                forest.union(n, node[performer])
            else:
                node[performer] = n
    return len({forest.find(n) for n in roots})
