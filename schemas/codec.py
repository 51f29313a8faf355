"""The codec between Label Studio result JSON and our judgements.

Decoding turns one annotation's ``result`` list into :class:`Judgement` records (one per
turn and dimension) and :class:`ShiftEvent` records. Items that reference unknown controls,
unknown labels or turns outside the task are counted by reason in ``skipped``, never dropped
silently. Encoding builds the result items the labeling interface itself produces, used for
pre-annotations (one region per turn) and for simulated annotators.

A shift span's cause is a Label Studio relation between the span and a turn region (drawn
either way round): the shift event keeps that turn's id as ``trigger_turn``. A relation that
does not join one shift span and one turn, or a second cause for one span, is counted in
``skipped`` and leaves the span as it is.

Task data the codec relies on (written by the importer): ``dialogue`` (list of turns with
``turn_id``), ``session_id``, ``audio_offset`` (session seconds at clip-audio time 0).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import CodecError
from schemas.label_config import (
    AUDIO,
    DIALOGUE,
    NOTE,
    TRIGGER_RELATION,
    TURN,
    VIDEO,
    shift_control,
)
from schemas.records import Judgement, ShiftEvent
from schemas.taxonomy import Dimension, Taxonomy

# The model_version of the per-turn pre-annotations.
PREDICTION_VERSION = "improv-annotate-turns"
_VALUE_KEY = {"choices": "choices", "rating": "rating", "number": "number"}


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one annotation holds: judgements, shift events, the clip note, skip counts."""

    judgements: tuple[Judgement, ...]
    shifts: tuple[ShiftEvent, ...]
    note: str | None
    skipped: Mapping[str, int] = field(default_factory=dict)


def annotator_of(annotation: Mapping[str, Any]) -> str:
    """The annotator id of a Label Studio annotation (``completed_by`` as int or object)."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("id")
    if who is None:
        raise CodecError("annotation has no completed_by; expected the annotator's user id")
    return str(who)


def _span_times(value: Mapping[str, Any], task_data: Mapping[str, Any]) -> tuple[Any, Any]:
    """A span's (start, end) in clip seconds: audio regions carry seconds, video timeline
    regions carry frame ranges (frame 1 starts at 0 s) at the task's ``fps``."""
    ranges = value.get("ranges")
    if not ranges:
        return value.get("start"), value.get("end")
    fps = float(task_data.get("fps") or 0)
    if fps <= 0:
        return None, None
    first, last = ranges[0], ranges[-1]
    return (float(first["start"]) - 1) / fps, float(last["end"]) / fps


def _paragraph_index(value: Mapping[str, Any]) -> int | None:
    try:
        return int(value["start"])
    except (KeyError, TypeError, ValueError):
        return None


# A judgement as a plain tuple, in the field order of :class:`Judgement`.
JudgementRow = tuple[int, int, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class DecodedRows:
    """:class:`Decoded` with the judgements as plain tuples (:data:`JudgementRow`): what
    the store inserts, without building a record per judgement."""

    judgements: tuple[JudgementRow, ...]
    shifts: tuple[ShiftEvent, ...]
    note: str | None
    skipped: Mapping[str, int] = field(default_factory=dict)


def decode_annotation(
    annotation: Mapping[str, Any], task_data: Mapping[str, Any], taxonomy: Taxonomy
) -> Decoded:
    """Decode one Label Studio annotation of a clip task.

    Parameters
    ----------
    annotation : mapping
        The annotation as Label Studio sends it (``id``, ``completed_by``, ``result``).
    task_data : mapping
        The task's ``data`` (as imported by improv-annotate).
    taxonomy : Taxonomy
        The taxonomy the project was set up with.
    """
    rows = decode_rows(annotation, task_data, taxonomy)
    judgements = tuple(Judgement(*row) for row in rows.judgements)
    return Decoded(judgements, rows.shifts, rows.note, rows.skipped)


def decode_rows(
    annotation: Mapping[str, Any], task_data: Mapping[str, Any], taxonomy: Taxonomy
) -> DecodedRows:
    """:func:`decode_annotation` with judgements as tuples (:class:`DecodedRows`)."""
    dialogue: Sequence[Mapping[str, Any]] = task_data.get("dialogue") or []
    offset = float(task_data.get("audio_offset") or 0.0)
    annotation_id = int(annotation["id"])
    task_id = int(annotation.get("task") or task_data.get("task_id") or 0)
    annotator = annotator_of(annotation)
    table = _table(taxonomy)
    dims, shift_parts = table.dims, table.shift_parts
    skipped: defaultdict[str, int] = defaultdict(int)
    judgements: dict[tuple[str, str], JudgementRow] = {}
    spans: dict[str, dict[str, Any]] = {}
    turn_regions: dict[str, int | None] = {}
    relations: list[Mapping[str, Any]] = []
    note = None
    for item in annotation.get("result") or []:
        kind = item.get("type")
        if kind == "relation":
            relations.append(item)
            continue
        name = item.get("from_name")
        value = item.get("value") or {}
        if name == TURN:
            turn_regions[str(item.get("id"))] = _paragraph_index(value)
            continue
        if name == taxonomy.shift.name and kind in ("labels", "timelinelabels"):
            span = spans.setdefault(str(item.get("id")), {})
            span["start"], span["end"] = _span_times(value, task_data)
            continue
        if name == NOTE:
            texts = value.get("text") or []
            note = "\n".join(map(str, texts)) or None
            continue
        if name in shift_parts:
            if item.get("to_name") == DIALOGUE:
                # The UI's hotkeys reach every per-region control: a shift choice's key
                # pressed while a turn is selected attaches it to the turn's region.
                skipped["shift control on a turn"] += 1
                continue
            span = spans.setdefault(str(item.get("id")), {})
            chosen = value.get("choices") or []
            span[shift_parts[name]] = chosen[0] if chosen else None
            start, end = _span_times(value, task_data)
            span.setdefault("start", start)
            span.setdefault("end", end)
            continue
        dim = dims.get(name)
        if dim is None:
            skipped["unknown control"] += 1
            continue
        if item.get("to_name", DIALOGUE) != DIALOGUE:
            # ... and a turn dimension's key pressed while a shift span is selected
            # attaches it to the span (its value.start is then in seconds, not a turn).
            skipped["turn control on a shift span"] += 1
            continue
        index = _paragraph_index(value)
        if index is None or not 0 <= index < len(dialogue):
            skipped["turn outside the task"] += 1
            continue
        raw = value.get(_VALUE_KEY.get(kind or "", ""))
        if isinstance(raw, list):
            raw = raw[0] if len(raw) == 1 else None
        if raw is None:
            skipped["empty value"] += 1
            continue
        text = _value_text(dim, table.choices.get(name), raw)
        if text is None:
            skipped["unknown label"] += 1
            continue
        turn_id = str(dialogue[index]["turn_id"])
        if (turn_id, dim.name) in judgements:
            skipped["second value for a turn"] += 1
            continue
        judgements[(turn_id, dim.name)] = (
            annotation_id,
            task_id,
            annotator,
            turn_id,
            dim.name,
            text,
            taxonomy.name,
            taxonomy.version,
        )
    causes = _trigger_links(relations, spans, turn_regions, len(dialogue), skipped)
    shifts = []
    allowed = table.shift_values
    for span_id, span in spans.items():
        if span.get("start") is None or span.get("end") is None:
            skipped["shift without times"] += 1
            continue
        parts = [span.get(p) for p in ("from", "to", "trigger", "onset")]
        if any(v is not None and v not in ok for v, ok in zip(parts, allowed, strict=True)):
            skipped["unknown label"] += 1
            continue
        shifts.append(
            ShiftEvent(
                annotation_id,
                task_id,
                annotator,
                str(task_data.get("session_id", "")),
                round(float(span["start"]) + offset, 3),
                round(float(span["end"]) + offset, 3),
                span.get("from"),
                span.get("to"),
                span.get("trigger"),
                span.get("onset"),
                _turn_id(dialogue, causes.get(span_id)),
            )
        )
    return DecodedRows(tuple(judgements.values()), tuple(shifts), note, dict(skipped))


def _turn_id(dialogue: Sequence[Mapping[str, Any]], index: int | None) -> str | None:
    return None if index is None else str(dialogue[index]["turn_id"])


def _trigger_links(
    relations: Sequence[Mapping[str, Any]],
    spans: Mapping[str, Any],
    turn_regions: Mapping[str, int | None],
    n_turns: int,
    skipped: defaultdict[str, int],
) -> dict[str, int]:
    """Shift span id -> the dialogue index of the turn its relation names as the cause.

    A relation joins a shift span and a turn region in either direction; anything else (two
    spans, two turns, a region the annotation does not hold, a turn outside the task, a
    label other than the trigger relation's) is counted in ``skipped``, as is a second
    cause for a span that has one.
    """
    causes: dict[str, int] = {}
    for item in relations:
        labels = item.get("labels") or []
        if not isinstance(labels, list) or any(label != TRIGGER_RELATION for label in labels):
            skipped["unknown relation label"] += 1
            continue
        ends = {str(item.get("from_id")), str(item.get("to_id"))}
        span_ids = [e for e in ends if e in spans]
        turn_ids = [e for e in ends if e in turn_regions]
        if len(ends) != 2 or len(span_ids) != 1 or len(turn_ids) != 1:
            skipped["trigger link not between a shift and a turn"] += 1
            continue
        index = turn_regions[turn_ids[0]]
        if index is None or not 0 <= index < n_turns:
            skipped["turn outside the task"] += 1
            continue
        if span_ids[0] in causes:
            if causes[span_ids[0]] != index:
                skipped["second trigger link for a shift"] += 1
            continue
        causes[span_ids[0]] = index
    return causes


@dataclass(frozen=True, slots=True)
class _Table:
    """What decoding needs of a taxonomy, worked out once per taxonomy."""

    dims: Mapping[str, Dimension]
    choices: Mapping[str, frozenset[str]]  # the values of each choice dimension
    shift_parts: Mapping[str, str]  # control name -> from / to / trigger / onset
    shift_values: tuple[frozenset[str], ...]  # allowed from, to, trigger, onset values


_TABLES: dict[int, tuple[Taxonomy, _Table]] = {}


def _table(taxonomy: Taxonomy) -> _Table:
    known = _TABLES.get(id(taxonomy))
    if known is not None and known[0] is taxonomy:
        return known[1]
    emotions = frozenset(taxonomy.emotion.values)
    table = _Table(
        dims={d.name: d for d in taxonomy.dimensions},
        choices={d.name: frozenset(d.values) for d in taxonomy.dimensions if d.kind == "choice"},
        shift_parts={shift_control(taxonomy, p): p for p in ("from", "to", "trigger", "onset")},
        shift_values=(
            emotions,
            emotions,
            frozenset(taxonomy.shift.trigger),
            frozenset(taxonomy.shift.onset),
        ),
    )
    if len(_TABLES) >= 32:  # a few taxonomies per process at most; never grow without bound
        _TABLES.clear()
    _TABLES[id(taxonomy)] = (taxonomy, table)
    return table


def _value_text(dim: Dimension, choices: frozenset[str] | None, raw: Any) -> str | None:
    """The stored text of a value of ``dim`` (None: not a value of it); as ``dim.code``
    accepts values, with ratings as whole numbers."""
    if choices is not None:
        text = str(raw)
        return text if text in choices else None
    try:
        number = dim.code(raw)
    except (ValueError, TypeError):
        return None
    if dim.kind == "rating":
        return str(int(number)) if number.is_integer() else None
    return str(raw)


def _paragraph_value(index: int, text: str) -> dict[str, Any]:
    return {"start": str(index), "end": str(index), "startOffset": 0, "endOffset": len(text)}


def turn_regions(dialogue: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One ``turn`` region per dialogue line: the pre-annotation annotators start from."""
    return [
        {
            "id": f"turn{i}",
            "from_name": TURN,
            "to_name": DIALOGUE,
            "type": "paragraphlabels",
            "value": {**_paragraph_value(i, str(line["text"])), "paragraphlabels": ["turn"]},
        }
        for i, line in enumerate(dialogue)
    ]


def encode_annotation(
    dialogue: Sequence[Mapping[str, Any]],
    values: Mapping[int, Mapping[str, str | int]],
    taxonomy: Taxonomy,
    shifts: Sequence[Mapping[str, Any]] = (),
    note: str | None = None,
    fps: float | None = None,
) -> list[dict[str, Any]]:
    """Result items for an annotation: turn regions with their values, shift spans, a note.

    ``values`` maps a dialogue index to ``{dimension: value}``; ``shifts`` holds dicts with
    ``start``/``end`` in clip-audio seconds and optional ``from``, ``to``, ``trigger``,
    ``onset`` and ``cause`` (the dialogue index of the turn that set it off, as a relation
    from the span to that turn's region). With ``fps`` the spans are video timeline
    regions (frame ranges).
    """
    result = turn_regions(dialogue)
    for index, dims in values.items():
        text = str(dialogue[index]["text"])
        for name, value in dims.items():
            dim = taxonomy.dimension(name)
            dim.code(value)
            if dim.as_choices:
                kind, payload = "choices", {"choices": [str(value)]}
            else:
                kind, payload = "rating", {"rating": int(value)}
            result.append(
                {
                    "id": f"turn{index}",
                    "from_name": name,
                    "to_name": DIALOGUE,
                    "type": kind,
                    "value": {**_paragraph_value(index, text), **payload},
                }
            )
    target = VIDEO if fps else AUDIO
    for k, span in enumerate(shifts):
        if fps:
            first = round(float(span["start"]) * fps) + 1
            last = max(first, round(float(span["end"]) * fps))
            times: dict[str, Any] = {"ranges": [{"start": first, "end": last}]}
            region = {**times, "timelinelabels": [taxonomy.shift.title]}
        else:
            times = {"start": float(span["start"]), "end": float(span["end"]), "channel": 0}
            region = {**times, "labels": [taxonomy.shift.title]}
        region_id = f"shift{k}"
        result.append(
            {
                "id": region_id,
                "from_name": taxonomy.shift.name,
                "to_name": target,
                "type": "timelinelabels" if fps else "labels",
                "value": region,
            }
        )
        for part in ("from", "to", "trigger", "onset"):
            if span.get(part) is None:
                continue
            result.append(
                {
                    "id": region_id,
                    "from_name": shift_control(taxonomy, part),
                    "to_name": target,
                    "type": "choices",
                    "value": {**times, "choices": [str(span[part])]},
                }
            )
        if span.get("cause") is not None:
            cause = int(span["cause"])
            if not 0 <= cause < len(dialogue):
                raise CodecError(f"shift {k}: cause {cause} is not a turn of the clip")
            result.append(
                {
                    "from_id": region_id,
                    "to_id": f"turn{cause}",
                    "type": "relation",
                    "direction": "right",
                    "labels": [TRIGGER_RELATION],
                }
            )
    if note:
        result.append(
            {
                "id": "note",
                "from_name": NOTE,
                "to_name": DIALOGUE,
                "type": "textarea",
                "value": {"text": [note]},
            }
        )
    return result


def _item_values(item: Mapping[str, Any]) -> list[str]:
    value = item.get("value") or {}
    kind = item.get("type")
    if kind == "choices":
        return [str(v) for v in value.get("choices") or []]
    if kind in ("rating", "number") and value.get(kind) is not None:
        number = float(value[kind])
        return [str(int(number)) if number.is_integer() else str(number)]
    return []


def label_usage(results: Iterable[Sequence[Mapping[str, Any]]]) -> Counter[tuple[str, str]]:
    """How many result items hold each ``(control, value)``, over annotations' results.

    Only values a taxonomy governs are counted (choices, ratings, numbers).
    """
    usage: Counter[tuple[str, str]] = Counter()
    for result in results:
        for item in result:
            for value in _item_values(item):
                usage[(str(item.get("from_name")), value)] += 1
    return usage


def migrate_result(
    result: Sequence[Mapping[str, Any]], plan: Mapping[str, Mapping[str, str]]
) -> tuple[list[dict[str, Any]], int]:
    """A copy of ``result`` with values renamed by ``plan`` ({control: {old: new}}); changes."""
    changed = 0
    out = []
    for item in result:
        table = plan.get(str(item.get("from_name")), {})
        values = _item_values(item)
        if not table or not any(v in table for v in values):
            out.append(dict(item))
            continue
        value = dict(item["value"])
        kind = str(item.get("type"))
        if kind == "choices":
            value["choices"] = [table.get(str(v), str(v)) for v in value["choices"]]
        else:
            value[kind] = int(table[values[0]])
        changed += 1
        out.append({**item, "value": value})
    return out, changed
