"""Agreement kept up to date one unit at a time.

Krippendorff's alpha, Gwet's AC1 and percent agreement are all built from sums over units:
the coincidence matrix (alpha), the per-unit agreement and category shares (AC1) and the
agreeing / all pairs (percent agreement). A unit's contribution depends only on that unit's
values, so when a judgement is added, changed or deleted the store subtracts the unit's old
contribution and adds its new one; the figures then follow from the sums in O(V^2).
A full recompute from the judgements gives the same sums (see the tests).

Keys of the sums (strings, so a database can hold them in one table):
``o|<c>|<k>`` coincidences, ``pairs`` and ``agree`` (ordered pairs of values in a unit and
the agreeing ones), ``pa`` and ``n2`` (sum of per-unit agreement and number of units with
two or more values), ``pi|<c>`` and ``n1`` (sum of per-unit category shares and number of
units with a value).

Example
-------
>>> sums = unit_sums(["joy", "joy", "anger"])
>>> sums["o|joy|joy"], sums["o|anger|joy"], sums["pairs"], sums["agree"]
(1.0, 1.0, 6.0, 2.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from annotate.agreement import alpha_from_coincidences


def unit_sums(values: Sequence[str]) -> dict[str, float]:
    """One unit's contribution to the sums, from its values (one per annotator)."""
    m = len(values)
    if m == 0:
        return {}
    counts = Counter(values)
    sums: dict[str, float] = {"n1": 1.0}
    for c, n_c in counts.items():
        sums[f"pi|{c}"] = n_c / m
    if m < 2:
        return sums
    pairs = m * (m - 1)
    agree = sum(n * (n - 1) for n in counts.values())
    sums.update({"pairs": float(pairs), "agree": float(agree), "pa": agree / pairs, "n2": 1.0})
    for c, n_c in counts.items():
        for k, n_k in counts.items():
            same = n_c * (n_c - 1) if c == k else n_c * n_k
            if same:
                sums[f"o|{c}|{k}"] = same / (m - 1)
    return sums


def delta(before: Sequence[str], after: Sequence[str]) -> dict[str, float]:
    """The change of the sums when a unit's values go from ``before`` to ``after``."""
    out = dict(unit_sums(after))
    for key, value in unit_sums(before).items():
        out[key] = out.get(key, 0.0) - value
    return {k: v for k, v in out.items() if v != 0.0}


def total_sums(units: Iterable[Sequence[str]]) -> dict[str, float]:
    """The sums over many units (the batch path)."""
    total: dict[str, float] = {}
    for values in units:
        for key, value in unit_sums(values).items():
            total[key] = total.get(key, 0.0) + value
    return total


def figures(
    sums: Mapping[str, float], codes: Mapping[str, float], level: str, n_categories: int
) -> dict[str, Any]:
    """Alpha, AC1 and percent agreement from the sums.

    Parameters
    ----------
    sums : mapping
        Sums as built by :func:`unit_sums`.
    codes : mapping
        Value -> number for the metric (category index, or the rating itself).
    level : str
        Level of measurement for alpha.
    n_categories : int
        Number of possible values (for AC1's chance agreement).
    """
    clean = {k: v for k, v in sums.items() if abs(v) > 1e-9}
    values = sorted({k.split("|")[1] for k in clean if k.startswith("o|")}, key=codes.__getitem__)
    out: dict[str, Any] = {
        "alpha": None,
        "percent_agreement": None,
        "ac1": None,
        "pairable_units": round(clean.get("n2", 0.0)),
    }
    if clean.get("pairs"):
        out["percent_agreement"] = clean.get("agree", 0.0) / clean["pairs"]
    if len(values) >= 1 and clean.get("n2"):
        index = {v: i for i, v in enumerate(values)}
        matrix = np.zeros((len(values), len(values)))
        for key, value in clean.items():
            if key.startswith("o|"):
                _, c, k = key.split("|")
                matrix[index[c], index[k]] = value
        try:
            out["alpha"] = float(
                alpha_from_coincidences(matrix, np.array([codes[v] for v in values]), level)
            )
        except ValueError:
            out["alpha"] = None
    if clean.get("n2") and clean.get("n1") and n_categories > 1:
        pa = clean.get("pa", 0.0) / clean["n2"]
        shares = [v / clean["n1"] for k, v in clean.items() if k.startswith("pi|")]
        pe = sum(p * (1 - p) for p in shares) / (n_categories - 1)
        out["ac1"] = (pa - pe) / (1 - pe) if pe != 1 else None
    return out
