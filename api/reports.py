"""QA reports computed from the stored judgements: breakdowns, pairs, drift, adjudication.

These scan the judgements of one project and dimension (batch); the live overall figures
come from the incremental sums in :mod:`api.store`. Every function returns plain dicts
ready for JSON.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select

from annotate.agreement import (
    MIN_OVERLAP,
    N_BOOT,
    SEED,
    Pairs,
    icc,
    krippendorff_alpha,
    pairwise_alpha,
    pivot,
)
from annotate.agreement.links import link_agreement
from annotate.agreement.summary import alpha_summary, categorical_summary, continuous_summary
from annotate.events import Event, match_events, unitizing_alpha
from api.models import Annotation, Judgement, ShiftEventRow, Task
from api.store import check_dimension, codes_of
from schemas.taxonomy import Dimension, Taxonomy

BREAKDOWNS = ("session", "clip", "speaker", "label", "annotator")


def _alpha(matrix: np.ndarray, level: str) -> float | None:
    try:
        return float(krippendorff_alpha(matrix, level=level))
    except ValueError:
        return None


def _stamp(when: datetime | None) -> float:
    return when.timestamp() if when is not None else float("-inf")


class Frame:
    """The judgements of one dimension with the context each breakdown needs."""

    def __init__(self, db: Session, project_id: int, dim: Dimension) -> None:
        self.dim = dim
        codes = codes_of(dim)
        rows = db.exec(
            select(
                Judgement.turn_id,
                Judgement.annotator,
                Judgement.value,
                Judgement.task_id,
                Judgement.annotation_id,
            ).where(Judgement.project_id == project_id, Judgement.dimension == dim.name)
        ).all()
        self.turn = [r[0] for r in rows]
        self.annotator = [r[1] for r in rows]
        self.value = [r[2] for r in rows]
        self.code = [codes[r[2]] for r in rows]
        self.task = [r[3] for r in rows]
        self.annotation = [r[4] for r in rows]
        tasks = {t.id: t for t in db.exec(select(Task).where(Task.project_id == project_id)).all()}
        speaker: dict[str, str] = {}
        for t in tasks.values():
            for line in t.data.get("dialogue") or []:
                speaker[str(line.get("turn_id"))] = str(line.get("performer") or "")
        self.speaker = [speaker.get(t, "") for t in self.turn]
        self.clip = [str(tasks[t].clip_id) if t in tasks else str(t) for t in self.task]
        self.session = [str(tasks[t].session_id) if t in tasks else "" for t in self.task]
        self.clip_task = {str(tasks[t].clip_id): t for t in tasks}
        annotations = db.exec(
            select(Annotation.id, Annotation.updated_at, Annotation.ground_truth).where(
                Annotation.project_id == project_id
            )
        ).all()
        when = {a[0]: a[1] for a in annotations}
        gold = {a[0] for a in annotations if a[2]}
        self.time: list[datetime | None] = [when.get(a) for a in self.annotation]
        self.gold = [a in gold for a in self.annotation]
        self._separate_second_annotations(when)

    def _separate_second_annotations(self, when: dict[int, datetime | None]) -> None:
        """An annotator with more than one annotation of a task (Label Studio allows it):
        the newest keeps the annotator's name, each older one becomes a rater of its own,
        ``"<annotator> (annotation <id>)"``. Alpha then counts every annotation as a coder,
        as the live sums do, and the breakdowns show the extra annotation instead of hiding
        it."""
        by_pair: dict[tuple[str, int], set[int]] = defaultdict(set)
        for annotator, task, annotation in zip(
            self.annotator, self.task, self.annotation, strict=True
        ):
            by_pair[(annotator, task)].add(annotation)
        renamed: dict[int, str] = {}
        for (annotator, _), ids in by_pair.items():
            if len(ids) < 2:
                continue
            newest = max(ids, key=lambda a: (_stamp(when.get(a)), a))
            renamed.update({a: f"{annotator} (annotation {a})" for a in ids - {newest}})
        if renamed:
            pairs = zip(self.annotation, self.annotator, strict=True)
            self.annotator = [renamed.get(a, name) for a, name in pairs]

    def __len__(self) -> int:
        return len(self.turn)

    def matrix(self, rows: Sequence[int] | None = None) -> tuple[np.ndarray, list, list]:
        """(annotators x units) codes of the selected rows (all by default)."""
        idx = range(len(self)) if rows is None else rows
        return pivot(
            [self.turn[i] for i in idx],
            [self.annotator[i] for i in idx],
            [self.code[i] for i in idx],
        )

    def alpha(self, rows: Sequence[int] | None = None) -> float | None:
        """Alpha at the dimension's level over the selected rows."""
        if rows is not None and not rows:
            return None
        return _alpha(self.matrix(rows)[0], self.dim.level)

    def group(self, key: Sequence[str]) -> dict[str, list[int]]:
        """Row indices grouped by ``key``."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, k in enumerate(key):
            groups[k].append(i)
        return dict(groups)


def load(db: Session, project_id: int, dimension: str, taxonomy: Taxonomy) -> Frame:
    """The :class:`Frame` of one project and dimension (404-style errors for unknowns)."""
    check_dimension(db, project_id, dimension, taxonomy)
    return Frame(db, project_id, taxonomy.dimension(dimension))


def summary(
    frame: Frame,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    min_overlap: int = MIN_OVERLAP,
    coefficients: bool = True,
) -> dict[str, Any]:
    """Alpha with its bootstrap interval, and the other coefficients of the dimension's level.

    The interval is :func:`annotate.agreement.intervals.alpha_interval` (units resampled,
    the project's ``n_boot`` and seed by default): the same data give the same interval
    here, on the dashboard and on an export's data card. With ``coefficients``: nominal and
    ordinal dimensions add Fleiss' kappa, Gwet's AC1 and pairwise Cohen's kappa, interval
    and ratio ones the ICC forms their design allows and pairwise Lin's CCC
    (:mod:`annotate.agreement.summary`), each with its interval; pairs that compared fewer
    than ``min_overlap`` units are left out of the means over pairs.
    """
    options = {"n_boot": n_boot, "seed": seed}
    if len(frame) == 0:
        return {
            "alpha": None,
            "ci_low": None,
            "ci_high": None,
            "n_boot": n_boot,
            "dropped": 0,
            "seed": seed,
            "reason": "no judgements",
        }
    matrix, names, units = frame.matrix()
    out: dict[str, Any] = alpha_summary(matrix, frame.dim.level, **options)
    out.update(units=len(units), annotators=len(names))
    if not coefficients:
        return out
    if frame.dim.level in ("interval", "ratio"):
        out.update(_continuous(matrix, min_overlap=min_overlap, **options))
    else:
        codes = sorted(set(codes_of(frame.dim).values()))
        out.update(
            categorical_summary(
                matrix, frame.dim.level, categories=codes, min_overlap=min_overlap, **options
            )
        )
    return out


def _continuous(matrix: np.ndarray, *, min_overlap: int, **options: Any) -> dict[str, Any]:
    """The ICC the design allows and pairwise CCC (with intervals); also ICC(2,1) and
    ICC(2,k) over the units every annotator rated (``None`` when fewer than two)."""
    complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
    out: dict[str, Any] = {"complete_units": int(complete.shape[1])}
    for form in ("ICC2", "ICC2k"):
        try:
            out[form.lower()] = float(icc(complete, form))
        except ValueError:
            out[form.lower()] = None
    figures = continuous_summary(matrix, min_overlap=min_overlap, **options)
    out.update(figures)
    out["lin_ccc_pairwise_mean"] = figures["lin_ccc_pairwise"]["mean"]
    return out


def _label_alpha(frame: Frame) -> list[dict[str, Any]]:
    """Per-category agreement: alpha of 'this label or not' (nominal)."""
    out = []
    values = frame.dim.values if frame.dim.kind == "choice" else tuple(map(str, frame.dim.scale))
    for label in values:
        used = sum(1 for v in frame.value if v == label)
        binary = [1.0 if v == label else 0.0 for v in frame.value]
        matrix = pivot(frame.turn, frame.annotator, binary)[0]
        out.append(
            {"key": label, "alpha": _alpha(matrix, "nominal") if used else None, "judgements": used}
        )
    return out


def breakdown(frame: Frame, by: str) -> list[dict[str, Any]]:
    """Agreement per session, clip, speaker, label or annotator."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {list(BREAKDOWNS)}")
    if by == "label":
        return _label_alpha(frame)
    if by == "annotator":
        return annotators(frame)
    key = {"session": frame.session, "clip": frame.clip, "speaker": frame.speaker}[by]
    out = []
    for name, rows in sorted(frame.group(key).items()):
        out.append(
            {
                "key": name,
                "alpha": frame.alpha(rows),
                "judgements": len(rows),
                "units": len({frame.turn[i] for i in rows}),
            }
        )
    return out


def annotators(frame: Frame, *, min_overlap: int = MIN_OVERLAP) -> list[dict[str, Any]]:
    """Each annotator: judgements, alpha with them left out, mean pairwise alpha, vs gold.

    ``alpha_pairwise_mean`` is weighted by the units each pair compared and leaves out the
    pairs that compared fewer than ``min_overlap`` units; ``pairs_counted`` and
    ``units_compared`` say what it stands on.
    """
    if len(frame) == 0:
        return []
    matrix, names, _ = frame.matrix()
    pairs = pairwise_alpha(matrix, frame.dim.level, min_overlap=min_overlap)
    counted = pairs.counted()
    gold = against_gold(frame)
    counts = frame.group(frame.annotator)
    out = []
    for i, name in enumerate(names):
        others = [k for k in range(len(names)) if k != i]
        out.append(
            {
                "key": str(name),
                "judgements": len(counts.get(name, [])),
                "alpha_without": _alpha(matrix[others], frame.dim.level)
                if len(others) > 1
                else None,
                "alpha_pairwise_mean": pairs.mean(rater=i),
                "pairs_counted": int(counted[i].sum()),
                "units_compared": int(pairs.units[i][counted[i]].sum()),
                "min_overlap": min_overlap,
                "alpha_vs_gold": gold.get(str(name), (None, 0))[0],
                "units_vs_gold": gold.get(str(name), (None, 0))[1],
            }
        )
    return out


def against_gold(frame: Frame) -> dict[str, tuple[float | None, int]]:
    """Alpha of each annotator against the gold (ground-truth) annotations, where marked,
    with the number of units compared."""
    gold_rows = [i for i in range(len(frame)) if frame.gold[i]]
    if not gold_rows:
        return {}
    gold = {frame.turn[i]: frame.code[i] for i in gold_rows}
    out: dict[str, tuple[float | None, int]] = {}
    for name, rows in frame.group(frame.annotator).items():
        own = [i for i in rows if not frame.gold[i] and frame.turn[i] in gold]
        if not own:
            continue
        units = [frame.turn[i] for i in own]
        matrix = np.array([[frame.code[i] for i in own], [gold[u] for u in units]])
        out[str(name)] = (_alpha(matrix, frame.dim.level), len(own))
    return out


def pairwise(frame: Frame, *, min_overlap: int = MIN_OVERLAP) -> dict[str, Any]:
    """The annotator x annotator alpha matrix with the units each pair compared.

    ``alpha[i][j]`` is None where two annotators share no unit or alpha is undefined;
    ``units[i][j]`` is how many units both rated (the diagonal: units each rated). Rows and
    columns are in the one order of ``annotators``. ``mean`` is weighted by units compared
    over the pairs that compared at least ``min_overlap`` units; the others are shown, not
    averaged (``below_min_overlap`` counts them).
    """
    if len(frame) == 0:
        return {
            "annotators": [],
            "alpha": [],
            "units": [],
            "min_overlap": min_overlap,
            "mean": None,
        }
    matrix, names, _ = frame.matrix()
    pairs = pairwise_alpha(matrix, frame.dim.level, min_overlap=min_overlap)
    return {"annotators": [str(n) for n in names], **_pairs_json(pairs)}


def _pairs_json(pairs: Pairs) -> dict[str, Any]:
    return {
        "alpha": [[None if not np.isfinite(x) else float(x) for x in row] for row in pairs.values],
        "units": pairs.units.tolist(),
        "min_overlap": pairs.min_overlap,
        "mean": pairs.mean(),
        **pairs.tally(),
    }


def confusion(frame: Frame) -> dict[str, Any]:
    """The coincidence matrix of values between annotators (the alpha's raw material)."""
    labels = frame.dim.values if frame.dim.kind == "choice" else tuple(map(str, frame.dim.scale))
    index = {v: i for i, v in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    for rows in frame.group(frame.turn).values():
        values = [frame.value[i] for i in rows]
        m = len(values)
        if m < 2:
            continue
        for a in range(m):
            for b in range(m):
                if a != b:
                    counts[index[values[a]], index[values[b]]] += 1 / (m - 1)
    return {"labels": list(labels), "matrix": counts.round(6).tolist()}


def drift(frame: Frame, every: str = "day", size: int = 500) -> list[dict[str, Any]]:
    """Alpha over time: per day of annotation, or per window of ``size`` judgements.

    A window's alpha is computed over the units (turns) labeled in that window, with every
    value those units have, so each point says how well the work of that window agrees.
    """
    order = sorted(range(len(frame)), key=lambda i: (frame.time[i] or datetime.min, i))
    windows: list[tuple[str, list[int]]] = []
    if every == "day":
        days: dict[str, list[int]] = defaultdict(list)
        for i in order:
            days[frame.time[i].date().isoformat() if frame.time[i] else "unknown"].append(i)
        windows = sorted(days.items())
    elif every == "count":
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            windows.append((f"{start + 1}-{start + len(chunk)}", chunk))
    else:
        raise ValueError(f"unknown drift window {every!r}; expected 'day' or 'count'")
    by_turn = frame.group(frame.turn)
    out = []
    for name, rows in windows:
        units = {frame.turn[i] for i in rows}
        context = [i for u in units for i in by_turn[u]]
        out.append(
            {
                "window": name,
                "alpha": frame.alpha(context),
                "judgements": len(rows),
                "units": len(units),
            }
        )
    return out


def adjudication(
    frame: Frame, threshold: float, link: Callable[[int], str] | None = None
) -> list[dict[str, Any]]:
    """Clips whose alpha is below ``threshold`` (or undefined with disagreement), worst first."""
    out = []
    for clip, rows in frame.group(frame.clip).items():
        annotators_ = {frame.annotator[i] for i in rows}
        if len(annotators_) < 2:
            continue
        alpha = frame.alpha(rows)
        disagree = any(
            len({frame.value[i] for i in group}) > 1 for group in _by_turn(frame, rows).values()
        )
        if (alpha is None and disagree) or (alpha is not None and alpha < threshold):
            task = frame.clip_task.get(clip)
            out.append(
                {
                    "clip": clip,
                    "task": task,
                    "alpha": alpha,
                    "annotators": len(annotators_),
                    "judgements": len(rows),
                    "url": link(task) if link and task is not None else None,
                }
            )
    return sorted(out, key=lambda r: (r["alpha"] is not None, r["alpha"] or 0.0))


def _by_turn(frame: Frame, rows: list[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        groups[frame.turn[i]].append(i)
    return groups


def activity(db: Session, project_id: int) -> list[dict[str, Any]]:
    """Per annotator: annotations, judgements, median time per task, share cancelled."""
    rows = db.exec(
        select(Annotation.annotator, Annotation.lead_time, Annotation.was_cancelled).where(
            Annotation.project_id == project_id, col(Annotation.deleted).is_(False)
        )
    ).all()
    counts = dict(
        db.exec(
            select(Judgement.annotator, func.count())
            .where(Judgement.project_id == project_id)
            .group_by(Judgement.annotator)
        ).all()
    )
    per: dict[str, list[tuple[float | None, bool]]] = defaultdict(list)
    for annotator, lead_time, cancelled in rows:
        per[str(annotator)].append((lead_time, bool(cancelled)))
    out = []
    for name, items in sorted(per.items()):
        times = [t for t, _ in items if t is not None]
        out.append(
            {
                "annotator": name,
                "annotations": len(items),
                "judgements": int(counts.get(name, 0)),
                "median_seconds_per_task": median(times) if times else None,
                "cancelled_share": sum(c for _, c in items) / len(items),
            }
        )
    return out


def _merged(spans: list[tuple[float, float]], duration: float) -> list[tuple[float, float, str]]:
    """An annotator's spans clipped to the clip and merged where they overlap."""
    out: list[list[float]] = []
    for start, end in sorted((max(0.0, s), min(duration, e)) for s, e in spans):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e, "shift") for s, e in out]


def shifts(db: Session, project_id: int, tolerance: float = 1.0) -> dict[str, Any]:
    """Agreement on shift events: matching within ``tolerance`` and unitizing alpha.

    Matching pools every pair of annotators of every clip: F1 = 2 x matched / (events of
    one + events of the other); on matched events, the share with the same from -> to and
    the same trigger. Unitizing alpha is computed per clip over the annotators who labeled
    it (one who marked no shift says the clip has none) and averaged weighted by duration.
    ``trigger_links``: among matched pairs, how often both linked the same turn as the
    shift's cause (:func:`annotate.agreement.links.link_agreement`).
    """
    rows = db.exec(select(ShiftEventRow).where(ShiftEventRow.project_id == project_id)).all()
    annotated = db.exec(
        select(Annotation.task_id, Annotation.annotator).where(
            Annotation.project_id == project_id,
            col(Annotation.deleted).is_(False),
            col(Annotation.was_cancelled).is_(False),
        )
    ).all()
    tasks = {t.id: t for t in db.exec(select(Task).where(Task.project_id == project_id)).all()}
    by_task: dict[int, dict[str, list[Event]]] = defaultdict(lambda: defaultdict(list))
    causes: dict[int, dict[str, list[str | None]]] = defaultdict(lambda: defaultdict(list))
    for task_id, annotator in annotated:
        by_task[task_id][str(annotator)]
    for r in sorted(rows, key=lambda r: r.id or 0):
        by_task[r.task_id][r.annotator].append(
            Event(r.start, r.end, r.from_emotion, r.to_emotion, r.trigger)
        )
        causes[r.task_id][r.annotator].append(r.trigger_turn)
    linked: list[tuple[str | None, str | None]] = []
    matched = events = same_ft = same_trigger = 0
    weighted = weight = 0.0
    clips = []
    for task_id, people in sorted(by_task.items()):
        names = sorted(people)
        for a, b in itertools.combinations(names, 2):
            m = match_events(people[a], people[b], tolerance)
            matched += m.matched
            events += m.n_a + m.n_b
            linked += [(causes[task_id][a][i], causes[task_id][b][j]) for i, j in m.pairs]
            if m.matched:
                same_ft += round(m.from_to_agreement * m.matched)
                same_trigger += round(m.trigger_agreement * m.matched)
        task = tasks.get(task_id)
        data = task.data if task else {}
        offset = float(data.get("audio_offset") or 0.0)
        # the clip's audio: its dialogue (clip seconds) and any span drawn past it
        ends = [float(line.get("end") or 0.0) for line in data.get("dialogue") or []]
        ends += [e.end - offset for n in names for e in people[n]]
        duration = max(ends, default=0.0) + 0.25
        alpha = None
        if len(names) >= 2 and duration > 0 and any(people[n] for n in names):
            spans = {
                n: _merged([(e.start - offset, e.end - offset) for e in people[n]], duration)
                for n in names
            }
            try:
                alpha = float(unitizing_alpha(spans, duration))
            except ValueError:
                alpha = None
        if alpha is not None:
            weighted += alpha * duration
            weight += duration
        clips.append(
            {
                "clip": task.clip_id if task else str(task_id),
                "task": task_id,
                "annotators": len(names),
                "events": sum(len(people[n]) for n in names),
                "unitizing_alpha": alpha,
            }
        )
    return {
        "tolerance": tolerance,
        "events": len(rows),
        "matched_pairs": matched,
        "f1": 2 * matched / events if events else None,
        "from_to_agreement": same_ft / matched if matched else None,
        "trigger_agreement": same_trigger / matched if matched else None,
        "unitizing_alpha": weighted / weight if weight else None,
        "trigger_links": link_agreement(linked).to_dict(),
        "clips": clips,
    }
