"""The annotators' scorecard: each annotator against the rest, against gold, over time.

Pure functions over long records (one judgement per row: unit, annotator, code, time),
so that the service (:mod:`api.scorecards`) and tests use the same definitions:

- **With the rest**: the annotator's values beside the *others'* consensus on the same
  units (the others' most frequent value for nominal dimensions, ties left out and
  counted; their median for ordinal, mean for interval and ratio ones), as a two-row
  reliability matrix: Krippendorff's alpha with the project's bootstrap interval over
  units, the share of units where the two are equal, and ``units`` compared.
- **Against gold**: the same against the gold answer of each unit (an expert's
  ground-truth annotation), where there is one: alpha with its interval, the share equal
  (accuracy) and, for ratings, the mean absolute difference.
- **Drift**: the share equal to the others' consensus over the first and the second half
  of the annotator's units in the order they labeled them, and the difference (second
  minus first); ``None`` below :data:`MIN_DRIFT_UNITS` units.
- **Bias**: the annotator's label shares beside the pool's (everyone's judgements), the
  total variation distance between the two, and the most over-used label.
- **Shift timing lag**: each of their shift spans matched to the other annotators' spans
  of the same clip whose start is within ``tolerance`` seconds; the lag is the span's
  start minus the median start of the matched spans (positive: later than the others);
  the median lag and the number of spans matched.

Every figure carries its n; a figure that cannot be computed is ``None`` with a reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from statistics import median
from typing import Any

import numpy as np

from annotate.agreement import N_BOOT, SEED
from annotate.agreement.intervals import alpha_interval

__all__ = [
    "MIN_DRIFT_UNITS",
    "bias",
    "consensus",
    "drift",
    "shift_lag",
    "versus",
]

MIN_DRIFT_UNITS = 10  # units a half must hold for the drift figure


def consensus(values: Sequence[float], level: str) -> float | None:
    """The consensus of ``values``: the most frequent (None on a tie) for nominal, the
    median for ordinal, the mean for interval and ratio."""
    if not values:
        return None
    if level == "nominal":
        (top, n), *rest = Counter(values).most_common()
        return None if rest and rest[0][1] == n else top
    if level == "ordinal":
        return float(np.median(values))
    return float(np.mean(values))


def _by_unit(
    units: Sequence[Hashable], annotators: Sequence[str], codes: Sequence[float]
) -> dict[Hashable, dict[str, float]]:
    table: dict[Hashable, dict[str, float]] = defaultdict(dict)
    for u, a, c in zip(units, annotators, codes, strict=True):
        table[u][a] = float(c)
    return table


def versus(
    own: Mapping[Hashable, float],
    reference: Mapping[Hashable, float | None],
    level: str,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> dict[str, Any]:
    """``own`` values beside ``reference`` values on the units both have (a None
    reference, a tie, is left out and counted under ``ties``)."""
    shared = [u for u in own if u in reference]
    kept = [u for u in shared if reference[u] is not None]
    out: dict[str, Any] = {"units": len(kept), "ties": len(shared) - len(kept)}
    if not kept:
        return {
            **out,
            "alpha": None,
            "ci_low": None,
            "ci_high": None,
            "agreement": None,
            "reason": "no unit to compare",
        }
    mine = np.array([own[u] for u in kept])
    theirs = np.array([float(reference[u]) for u in kept])  # type: ignore[arg-type]
    out["agreement"] = float(np.mean(mine == theirs))
    if level != "nominal":
        out["mean_abs_difference"] = float(np.mean(np.abs(mine - theirs)))
    interval = alpha_interval(np.vstack([mine, theirs]), level, n_boot=n_boot, seed=seed)
    out.update(interval.as_dict("alpha"))
    return out


def others_consensus(
    table: Mapping[Hashable, Mapping[str, float]], annotator: str, level: str
) -> dict[Hashable, float | None]:
    """Per unit ``annotator`` rated with at least one other: the others' consensus."""
    out: dict[Hashable, float | None] = {}
    for unit, by in table.items():
        if annotator in by and len(by) > 1:
            out[unit] = consensus([v for a, v in by.items() if a != annotator], level)
    return out


def drift(
    order: Sequence[Hashable],
    own: Mapping[Hashable, float],
    reference: Mapping[Hashable, float | None],
) -> dict[str, Any]:
    """Share equal to ``reference`` in the first and second half of ``order`` (the
    annotator's units in the order they labeled them; units without a reference skipped)."""
    units = [u for u in order if reference.get(u) is not None and u in own]
    half = len(units) // 2
    if half < MIN_DRIFT_UNITS:
        return {
            "units": len(units),
            "first": None,
            "second": None,
            "change": None,
            "reason": f"fewer than {2 * MIN_DRIFT_UNITS} units with a consensus",
        }
    first = float(np.mean([own[u] == reference[u] for u in units[:half]]))
    second = float(np.mean([own[u] == reference[u] for u in units[half:]]))
    return {"units": len(units), "first": first, "second": second, "change": second - first}


def bias(mine: Sequence[str], pool: Sequence[str]) -> dict[str, Any]:
    """The annotator's label shares against the pool's: total variation distance and the
    most over-used label (with both shares)."""
    if not mine or not pool:
        return {"n": len(mine), "tvd": None, "reason": "no judgements"}
    own, every = Counter(mine), Counter(pool)
    labels = sorted(set(own) | set(every))
    share = {k: own[k] / len(mine) for k in labels}
    base = {k: every[k] / len(pool) for k in labels}
    over = max(labels, key=lambda k: (share[k] - base[k], k))
    return {
        "n": len(mine),
        "tvd": 0.5 * sum(abs(share[k] - base[k]) for k in labels),
        "over_used": over,
        "over_used_share": share[over],
        "pool_share": base[over],
        "shares": share,
    }


def shift_lag(
    spans: Sequence[tuple[str, Hashable, float]], tolerance: float = 2.0
) -> dict[str, dict[str, Any]]:
    """Per annotator: the median lag of their shift spans' starts behind the others'
    (``spans``: (annotator, clip, start seconds)), over spans the others marked within
    ``tolerance`` seconds."""
    by_clip: dict[Hashable, list[tuple[str, float]]] = defaultdict(list)
    for who, clip, start in spans:
        by_clip[clip].append((who, float(start)))
    lags: dict[str, list[float]] = defaultdict(list)
    marked: Counter[str] = Counter()
    for marks in by_clip.values():
        for who, start in marks:
            marked[who] += 1
            near = [s for w, s in marks if w != who and abs(s - start) <= tolerance]
            if near:
                lags[who].append(start - median(near))
    out = {}
    for who in sorted(marked):
        got = lags.get(who, [])
        out[who] = {
            "spans": marked[who],
            "matched": len(got),
            "median_lag_s": median(got) if got else None,
            **({} if got else {"reason": "no span matched another annotator's"}),
        }
    return out
