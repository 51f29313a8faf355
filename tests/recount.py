"""An independent recount of agreement figures from Label Studio's own JSON export.

Used by ``tests/test_team.py`` to check what the service, the CLI and the exports report.
Everything here is plain numpy and the ``krippendorff`` package, never the project's own
agreement code: the tables are read from the export's result items, alpha comes from
``krippendorff.alpha``, the one-way ICC from its textbook ANOVA formulas.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

from schemas.taxonomy import load_taxonomy
from tests.conftest import missing

try:
    import krippendorff
except ImportError:  # pragma: no cover - the oracle is a dev dependency
    missing("the krippendorff package is not installed (pip install -e '.[dev]')", module=True)

TAX = load_taxonomy()
DIMENSIONS = {d.name for d in TAX.dimensions}
MIN_OVERLAP = 10  # pairs that compared fewer units are shown but left out of means (item 3)


def turn_items(exported: list[dict[str, Any]]) -> Iterator[tuple[dict, str, str, str, Any]]:
    """Every turn item (a choice or rating of a taxonomy dimension on a dialogue
    paragraph) of every annotation that was not cancelled, as (annotation,
    annotator id, control name, turn id, the chosen value or rating)."""
    for task in exported:
        dialogue = task["data"]["dialogue"]
        for annotation in task["annotations"]:
            if annotation.get("was_cancelled"):
                continue
            who = annotation["completed_by"]
            who = str(who["id"] if isinstance(who, dict) else who)
            for item in annotation["result"]:
                value = item.get("value", {})
                if item.get("from_name") not in DIMENSIONS or "start" not in value:
                    continue
                turn = dialogue[int(value["start"])]["turn_id"]
                given = value["choices"][0] if "choices" in value else value["rating"]
                yield annotation, who, str(item.get("from_name")), turn, given


def recount(exported: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, str]]]:
    """``{dimension: {turn_id: {annotator id: value}}}`` read straight from Label Studio's
    JSON export: every turn item (a choice or rating on a dialogue paragraph) of every
    annotation that was not cancelled."""
    dims = {d.name for d in TAX.dimensions}
    table: dict[str, dict[str, dict[str, str]]] = {d: defaultdict(dict) for d in dims}
    for _, who, name, turn, given in turn_items(exported):
        if name in dims:
            table[name][turn][who] = str(given)
    return {d: dict(t) for d, t in table.items()}


def _code(dim: Any, value: str) -> float:
    return float(dim.values.index(value)) if dim.kind == "choice" else float(value)


def matrix(units: dict[str, dict[str, str]], dim: Any) -> tuple[np.ndarray, list[str]]:
    """(annotators x units) codes, NaN where missing, annotators sorted."""
    names = sorted({a for by in units.values() for a in by})
    turns = sorted(units)
    out = np.full((len(names), len(turns)), np.nan)
    for j, turn in enumerate(turns):
        for a, v in units[turn].items():
            out[names.index(a), j] = _code(dim, v)
    return out, names


def alpha(data: np.ndarray, level: str) -> float | None:
    """Krippendorff's alpha from the ``krippendorff`` package; None where it is undefined
    (fewer than two pairable values, or a single value in the data)."""
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    if pairable.shape[1] == 0 or len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return None
    value = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    return None if not np.isfinite(value) else float(value)


def pairs(data: np.ndarray, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise alpha (NaN where undefined) and the units each pair both rated."""
    k = data.shape[0]
    values = np.full((k, k), np.nan)
    units = np.zeros((k, k), dtype=int)
    seen = ~np.isnan(data)
    for i, j in itertools.product(range(k), repeat=2):
        both = seen[i] & seen[j]
        units[i, j] = int(both.sum())
        if i != j and both.any():
            a = alpha(data[[i, j]][:, both], level)
            values[i, j] = np.nan if a is None else a
    return values, units


def weighted_mean(values: np.ndarray, units: np.ndarray) -> float | None:
    keep = np.isfinite(values) & (units >= MIN_OVERLAP)
    if not keep.any():
        return None
    return float((values[keep] * units[keep]).sum() / units[keep].sum())


def same(got: float | None, want: float | None) -> bool:
    """Equal to 1e-9, or both undefined (None)."""
    if want is None or got is None:
        return got is None and want is None
    return abs(got - want) <= 1e-9


def icc_oneway(data: np.ndarray) -> tuple[float, float, int, float]:
    """ICC(1) and ICC(1,k) of the one-way random-effects ANOVA over the units rated at least
    twice, unbalanced (Shrout & Fleiss 1979; k0 as in Donner 1986): with n units, N ratings,
    ``k0 = (N - sum(k_i^2) / N) / (n - 1)``. Returns (ICC(1), ICC(1,k), n, k0)."""
    columns = [c[~np.isnan(c)] for c in data.T]
    columns = [c for c in columns if c.size >= 2]
    n, total = len(columns), sum(c.size for c in columns)
    grand = np.concatenate(columns).mean()
    msb = sum(c.size * (c.mean() - grand) ** 2 for c in columns) / (n - 1)
    msw = sum(((c - c.mean()) ** 2).sum() for c in columns) / (total - n)
    k0 = (total - sum(c.size**2 for c in columns) / total) / (n - 1)
    return (msb - msw) / (msb + (k0 - 1) * msw), (msb - msw) / msb, n, k0


def majority(values: list[str]) -> tuple[str | None, list[str]]:
    counts = Counter(values)
    top = max(counts.values())
    best = sorted(v for v, n in counts.items() if n == top)
    return (best[0], []) if len(best) == 1 else (None, best)


def performers(
    exported: list[dict[str, Any]],
    intended: dict[str, dict[int, str]],
    tolerance: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """The performers' scorecard recounted from Label Studio's export and the sessions'
    intended emotions (``{session: {turn index: emotion}}``), by hand: per performer,
    ``by_intended`` {intended: (hits, judgements, turns, perceived Counter, ratings)} and
    ``shifts`` (intended shifts, annotator views, marked pairs, marked by anyone)."""
    table = recount(exported)
    turns: dict[str, tuple[str, int, str, float, float, int]] = {}
    seen: dict[int, set[str]] = defaultdict(set)
    mids: dict[tuple[str, str], list[float]] = defaultdict(list)  # (annotator, session)
    for task in exported:
        data = task["data"]
        offset = float(data.get("audio_offset") or 0.0)
        for line in data["dialogue"]:
            turns[line["turn_id"]] = (
                data["session_id"],
                int(line["turn_index"]),
                line["performer"],
                float(line["start"]) + offset,
                float(line["end"]) + offset,
                task["id"],
            )
        for annotation in task["annotations"]:
            if annotation.get("was_cancelled"):
                continue
            who = annotation["completed_by"]
            who = str(who["id"] if isinstance(who, dict) else who)
            seen[task["id"]].add(who)
            for item in annotation["result"]:
                value = item.get("value", {})
                if item.get("from_name") == TAX.shift.name and "labels" in value:
                    middle = (float(value["start"]) + float(value["end"])) / 2 + offset
                    mids[(who, data["session_id"])].append(middle)
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"by_intended": {}, "shifts": [0, 0, 0, 0]}
    )
    last: dict[tuple[str, str], str] = {}
    for turn_id in sorted(turns, key=lambda t: turns[t][:2]):
        session, index, performer, start, end, task_id = turns[turn_id]
        aim = intended.get(session, {}).get(index)
        if aim is None:
            continue
        entry = out[performer]["by_intended"].setdefault(aim, [0, 0, 0, Counter(), []])
        given = table["emotion"].get(turn_id, {})
        if given:
            entry[0] += sum(v == aim for v in given.values())
            entry[1] += len(given)
            entry[2] += 1
        entry[3].update(given.values())
        entry[4] += [float(v) for v in table["authenticity"].get(turn_id, {}).values()]
        if (session, performer) in last and last[(session, performer)] != aim:
            shifts = out[performer]["shifts"]
            marked = {
                who
                for who in seen[task_id]
                if any(start - tolerance <= m <= end + tolerance for m in mids[(who, session)])
            }
            shifts[0] += 1
            shifts[1] += len(seen[task_id])
            shifts[2] += len(marked)
            shifts[3] += bool(marked)
        last[(session, performer)] = aim
    return dict(out)


def annotator_scores(exported: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per annotator (Label Studio user id), by hand from the export's emotion items:
    ``with_rest`` and ``vs_gold`` as (alpha by the krippendorff package or None, units,
    share equal, ties left out). The others' consensus is their most frequent label (ties
    left out); gold is the ground-truth annotations' label; gold annotations are nobody's
    work."""
    people: dict[str, dict[str, str]] = defaultdict(dict)
    gold: dict[str, str] = {}
    for annotation, who, name, turn, given in turn_items(exported):
        if name != "emotion":
            continue
        if annotation.get("ground_truth"):
            gold[turn] = given
        else:
            people[turn][who] = given

    def compare(own: dict[str, str], ref: dict[str, str | None]) -> tuple:
        shared = [u for u in own if u in ref]
        kept = [u for u in shared if ref[u] is not None]
        if not kept:
            return None, 0, None, len(shared)
        codes = {label: i for i, label in enumerate(TAX.emotion.values)}
        data = np.array([[codes[own[u]] for u in kept], [codes[ref[u]] for u in kept]], float)
        value = None
        if np.unique(data).size > 1:
            value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
        share = sum(own[u] == ref[u] for u in kept) / len(kept)
        return value, len(kept), share, len(shared) - len(kept)

    out = {}
    everyone = {w for by in people.values() for w in by}
    for who in sorted(everyone):
        own = {u: by[who] for u, by in people.items() if who in by}
        rest: dict[str, str | None] = {}
        for u, by in people.items():
            if who in by and len(by) > 1:
                counts = Counter(v for w, v in by.items() if w != who).most_common()
                rest[u] = None if len(counts) > 1 and counts[0][1] == counts[1][1] else counts[0][0]
        out[who] = {"with_rest": compare(own, rest), "vs_gold": compare(own, dict(gold))}
    return out
