"""Agreement on trigger links: did two annotators name the same turn as a shift's cause?

The input is one pair per matched shift (two annotators' events matched within the time
tolerance, :func:`annotate.events.match_events`): the turn each of them linked, or None.
Pairs where both linked a turn are compared; pairs where only one did are counted apart.

Example
-------
>>> r = link_agreement([("t1", "t1"), ("t2", "t1"), ("t3", None), (None, None)])
>>> r.n, r.same, r.share, r.one_linked, r.none_linked
(2, 1, 0.5, 1, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LinkAgreement:
    """Agreement on links among matched shifts.

    ``n`` pairs with both links set, ``same`` of them naming one turn, ``share`` = same / n
    (None without pairs); ``kappa`` is Cohen's kappa over those pairs with the turns as
    categories (the first annotator of each pair as one rater, the second as the other;
    None when chance agreement is 1 or there are no pairs). ``one_linked`` pairs have one
    link only, ``none_linked`` none.
    """

    n: int
    same: int
    share: float | None
    kappa: float | None
    one_linked: int
    none_linked: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "n": self.n,
            "same_turn": self.same,
            "share": self.share,
            "kappa": self.kappa,
            "one_linked": self.one_linked,
            "none_linked": self.none_linked,
        }


def link_agreement(pairs: Iterable[tuple[Hashable | None, Hashable | None]]) -> LinkAgreement:
    """Share of matched shift pairs linking the same turn, and Cohen's kappa, with n.

    Parameters
    ----------
    pairs : iterable of (turn or None, turn or None)
        For each matched pair of shift events, the turn each annotator linked as its cause.
    """
    both: list[tuple[Hashable, Hashable]] = []
    one = none = 0
    for a, b in pairs:
        if a is not None and b is not None:
            both.append((a, b))
        elif a is None and b is None:
            none += 1
        else:
            one += 1
    n = len(both)
    if not n:
        return LinkAgreement(0, 0, None, None, one, none)
    same = sum(a == b for a, b in both)
    first = Counter(a for a, _ in both)
    second = Counter(b for _, b in both)
    chance = sum(first[t] * second.get(t, 0) for t in first) / (n * n)
    observed = same / n
    kappa = None if chance >= 1 else (observed - chance) / (1 - chance)
    return LinkAgreement(n, same, observed, kappa, one, none)
