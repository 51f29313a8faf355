"""Per-turn fields of a row that are pure functions of the judgements: clip and turn
agreement, the shift fields under both definitions, and labels mapped to another label
space. No I/O."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from annotate.agreement import krippendorff_alpha, pivot
from schemas.shifts import TurnLabel, shift_types
from schemas.taxonomy import Taxonomy

# Judgement columns as the row builder gets them (after the task id).
_ANNOTATION, _TURN, _ANNOTATOR, _DIMENSION, _VALUE = range(5)
# Shift columns (after the task id).
_S_ANNOTATOR, _S_START, _S_END, _S_FROM, _S_TO, _S_TRIGGER, _S_ONSET, _S_CAUSE = range(8)


def _pair_share(values: tuple[str, ...]) -> float | None:
    """The share of agreeing pairs among the values (``None`` for fewer than two)."""
    pairs = list(itertools.combinations(values, 2))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def _mapped(value: Any, mapping: Mapping[str, str] | None) -> Any:
    if value is None or mapping is None:
        return value
    return mapping.get(str(value), value)


def _map_entry(entry: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Emotion aggregates in another label space (soft labels summed per target label)."""
    soft: dict[str, float] = defaultdict(float)
    for label, p in entry["soft"].items():
        soft[mapping.get(label, label)] += p
    posterior: dict[str, float] | None = None
    if entry.get("dawid_skene_posterior"):
        posterior = defaultdict(float)
        for label, p in entry["dawid_skene_posterior"].items():
            posterior[mapping.get(label, label)] += p
        posterior = dict(posterior)
    return {
        **entry,
        "majority": _mapped(entry["majority"], mapping),
        "tied": sorted({mapping.get(t, t) for t in entry["tied"]}),
        "soft": dict(soft),
        "dawid_skene": _mapped(entry.get("dawid_skene"), mapping),
        "dawid_skene_posterior": posterior,
    }


def _clip_alpha(judgements: Sequence[Any], taxonomy: Taxonomy) -> dict[str, float | None]:
    """Alpha of the clip's judgements per dimension (``None`` where undefined)."""
    by_dim: dict[str, list[Any]] = defaultdict(list)
    for j in judgements:
        by_dim[j[_DIMENSION]].append(j)
    out: dict[str, float | None] = {}
    for dim in taxonomy.dimensions:
        rows = by_dim.get(dim.name)
        if not rows:
            out[dim.name] = None
            continue
        codes = {v: float(i) for i, v in enumerate(dim.values)} if dim.kind == "choice" else None
        values = [codes[j[_VALUE]] if codes else float(j[_VALUE]) for j in rows]
        units = [j[_TURN] for j in rows]
        raters = [j[_ANNOTATOR] for j in rows]
        if dim.level == "nominal":
            fast = _nominal_alpha(units, raters, values)
            if fast is not _FALLBACK:
                out[dim.name] = fast
                continue
        matrix = pivot(units, raters, values)[0]
        try:
            out[dim.name] = float(krippendorff_alpha(matrix, level=dim.level))
        except ValueError:
            out[dim.name] = None
    return out


_FALLBACK = object()


def _nominal_alpha(
    units: Sequence[str], raters: Sequence[str], values: Sequence[float]
) -> float | object | None:
    """Nominal alpha of long-format judgements, in the same float operations as
    ``krippendorff_alpha(pivot(units, raters, values)[0])`` (``None`` where that raises).

    Made for the small data of one clip, where the matrix path's numpy overhead dominates.
    Returns ``_FALLBACK`` when a rater judged a unit twice (the matrix path then dedups or
    raises, as before).
    """
    per_unit: dict[str, dict[str, float]] = {}
    for unit, rater, value in zip(units, raters, values, strict=True):
        given = per_unit.setdefault(unit, {})
        if rater in given:
            return _FALLBACK
        given[rater] = value
    m_list: list[int] = []
    disagreeing: list[int] = []
    counts: Counter[float] = Counter()
    for given in per_unit.values():
        m = len(given)
        if m < 2:
            continue
        tally = Counter(given.values())
        counts.update(tally)
        equal = sum(c * (c - 1) // 2 for c in tally.values())
        m_list.append(m)
        disagreeing.append(m * (m - 1) - 2 * equal)
    if not m_list or len(counts) < 2:
        return None  # no pairable unit, or no spread: alpha undefined
    n = float(sum(m_list))
    m_array = np.array(m_list, dtype=np.intp)
    observed = float(np.sum(np.array(disagreeing, dtype=np.intp) / (m_array - 1)))
    expected = n * n - float(sum(c * c for c in counts.values()))
    return 1.0 - (n - 1.0) * observed / expected


def _shift_fields(
    i: int,
    turns: Sequence[TurnLabel],
    prev_speaker: Sequence[int | None],
    prev_any: Sequence[int | None],
    taxonomy: Taxonomy,
    mapping: Mapping[str, str] | None,
    shift_rows: Sequence[Any],
    start: float,
    end: float,
    tolerance: float,
) -> dict[str, Any]:
    turn = turns[i]
    same = turns[prev_speaker[i]] if prev_speaker[i] is not None else None
    adjacent = turns[prev_any[i]] if prev_any[i] is not None else None
    shifted = {
        "speaker": bool(same and same.emotion and turn.emotion and same.emotion != turn.emotion),
        "adjacent": bool(
            adjacent and adjacent.emotion and turn.emotion and adjacent.emotion != turn.emotion
        ),
    }
    types = shift_types(same, turn, taxonomy) if shifted["speaker"] and same else ()
    # marked events whose moment (span midpoint) falls on this turn, within the tolerance
    grouped: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for e in shift_rows:
        moment = (e[_S_START] + e[_S_END]) / 2
        if start - tolerance <= moment <= end + tolerance:
            key = (e[_S_FROM], e[_S_TO], e[_S_TRIGGER], e[_S_ONSET], e[_S_CAUSE])
            grouped[key].add(e[_S_ANNOTATOR])
    # annotators who linked a shift of the clip to this turn as its cause
    triggered = {e[_S_ANNOTATOR] for e in shift_rows if e[_S_CAUSE] == turn.turn_id}
    events = [
        {
            "from": _mapped(k[0], mapping),
            "to": _mapped(k[1], mapping),
            "trigger": k[2],
            "onset": k[3],
            "trigger_turn": k[4],
            "annotators": len(v),
        }
        for k, v in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))
    ]
    return {
        "previous_same_speaker": _mapped(same.emotion if same else None, mapping),
        "previous_any_speaker": _mapped(adjacent.emotion if adjacent else None, mapping),
        "shift_speaker": shifted["speaker"],
        "shift_adjacent": shifted["adjacent"],
        "from": _mapped(same.emotion, mapping) if shifted["speaker"] and same else None,
        "to": _mapped(turn.emotion, mapping) if shifted["speaker"] else None,
        "types": list(types),
        "marked": events,
        "triggered": len(triggered),
    }
