"""The row schema, in one place: the Arrow schema of the Parquet file and the JSON Schema of
a JSON line are both made from :func:`row_fields`.

A row is what :func:`exporters.rows.iter_rows` yields (and ``turns.jsonl`` holds). Its
nested values have fixed fields, known from the taxonomy and the label space (aggregates
per dimension, soft labels per label, agreement per dimension, prosody per feature), so
Parquet holds them as Arrow structs and lists with native types: ratings as integers,
missing values as null, ``exported_at`` as a UTC timestamp. One field has free keys: a
row's ``labels`` maps each annotator to their values; Parquet holds it as a list of
``{annotator, <dimension>...}`` structs (Hugging Face ``datasets`` has no map type), which
:func:`arrow_row` makes from the row.

Example
-------
>>> from schemas.taxonomy import load_taxonomy
>>> schema = arrow_schema(load_taxonomy())
>>> str(schema.field("labels").type.value_type.field("intensity").type)
'int64'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from exporters.splits import SPLITS
from importers.prosody import FEATURES
from schemas.taxonomy import Dimension, Taxonomy

LABEL_SPACES = ("ours", "meld", "iemocap")
# The columns of a row, in order, without the OPTIONAL ones (row_fields gives their types).
COLUMNS = (
    "taxonomy",
    "taxonomy_version",
    "label_space",
    "project_id",
    "task_id",
    "annotation_ids",
    "session_id",
    "clip_id",
    "turn_id",
    "turn_index",
    "speaker",
    "start",
    "end",
    "text",
    "media",
    "media_start",
    "media_end",
    "prompt",
    "intended_emotion",
    "labels",
    "n_annotators",
    "cancelled_by",
    "aggregates",
    "adjudicated",
    "shift",
    "agreement",
    "prosody",
    "split",
    "exported_at",
    "tool_version",
)
# Columns only some exports have (after "media_end" when present).
OPTIONAL = ("turn_audio",)


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level field of a row: its Arrow type, whether JSON may hold null for it, a
    description, allowed values, and whether every row has it."""

    name: str
    type: pa.DataType
    nullable: bool = True
    description: str | None = None
    enum: tuple[Any, ...] | None = None
    required: bool = False


def label_names(taxonomy: Taxonomy, label_space: str, dim: Dimension) -> tuple[str, ...]:
    """The labels a choice dimension's soft labels are keyed by in ``label_space``."""
    if label_space == "ours" or dim is not taxonomy.emotion:
        return tuple(dim.values)
    mapping = taxonomy.mapping(label_space)
    return tuple(dict.fromkeys(mapping.get(v, v) for v in dim.values))


def _per_label(labels: Sequence[str]) -> pa.DataType:
    return pa.struct([(label, pa.float64()) for label in labels])


def _aggregate(taxonomy: Taxonomy, label_space: str, dim: Dimension) -> pa.DataType:
    if dim.kind != "choice":
        return pa.struct(
            [
                ("n", pa.int64()),
                ("mean", pa.float64()),
                ("std", pa.float64()),
                ("majority", pa.int64()),
                ("tied", pa.list_(pa.int64())),
            ]
        )
    labels = label_names(taxonomy, label_space, dim)
    fields: list[tuple[str, pa.DataType]] = [
        ("n", pa.int64()),
        ("majority", pa.string()),
        ("tied", pa.list_(pa.string())),
        ("soft", _per_label(labels)),
    ]
    if dim is taxonomy.emotion:
        fields += [("dawid_skene", pa.string()), ("dawid_skene_posterior", _per_label(labels))]
    return pa.struct(fields)


def row_fields(taxonomy: Taxonomy, label_space: str = "ours") -> tuple[Field, ...]:
    """Every field of a row, in column order (optional columns included)."""
    dims = taxonomy.dimensions
    value_of = {d.name: pa.string() if d.kind == "choice" else pa.int64() for d in dims}
    per_dim = pa.struct([(d.name, pa.float64()) for d in dims])
    string, integer, number = pa.string(), pa.int64(), pa.float64()
    return (
        Field("taxonomy", string, False, required=True),
        Field("taxonomy_version", string, False, required=True),
        Field("label_space", string, False, enum=LABEL_SPACES),
        Field("project_id", integer, False),
        Field("task_id", integer, False),
        Field("annotation_ids", pa.list_(integer), False),
        Field("session_id", string, False, required=True),
        Field("clip_id", string),
        Field("turn_id", string, False, required=True),
        Field("turn_index", integer),
        Field("speaker", string, False, "performer id", required=True),
        Field("start", number, False, "seconds from the start of the session", required=True),
        Field("end", number, False, "seconds from the start of the session", required=True),
        Field("text", string),
        Field("media", string, description="clip audio, relative to the media root"),
        Field("media_start", number, False, "seconds from the start of the clip audio"),
        Field("media_end", number, False, "seconds from the start of the clip audio"),
        Field(
            "turn_audio",
            string,
            description="with --turn-audio: the turn's WAV, relative to the export folder "
            "(null when its media was not found)",
        ),
        Field("prompt", string),
        Field("intended_emotion", string),
        Field(
            "labels",
            pa.list_(pa.struct([("annotator", string), *value_of.items()])),
            False,
            "annotator (pseudonymised unless real ids were asked for) -> dimension -> value "
            "(ratings as integers); in Parquet a list of {annotator, <dimension>...}",
            required=True,
        ),
        Field("n_annotators", integer, False),
        Field("cancelled_by", pa.list_(string)),
        Field(
            "aggregates",
            pa.struct([(d.name, _aggregate(taxonomy, label_space, d)) for d in dims]),
            False,
            "per dimension: n, majority (null on a tie), tied; choices: soft label "
            "distribution, Dawid-Skene label and posterior (emotion); ratings: mean and std",
            required=True,
        ),
        Field(
            "adjudicated",
            pa.struct(list(value_of.items())),
            description="per dimension: the adjudicator's value (null: the clip was not "
            "adjudicated, or the adjudicator left the dimension empty)",
        ),
        Field(
            "shift",
            pa.struct(
                [
                    ("previous_same_speaker", string),
                    ("previous_any_speaker", string),
                    ("shift_speaker", pa.bool_()),
                    ("shift_adjacent", pa.bool_()),
                    ("from", string),
                    ("to", string),
                    ("types", pa.list_(string)),
                    (
                        "marked",
                        pa.list_(
                            pa.struct(
                                [
                                    ("from", string),
                                    ("to", string),
                                    ("trigger", string),
                                    ("onset", string),
                                    ("trigger_turn", string),
                                    ("annotators", integer),
                                ]
                            )
                        ),
                    ),
                    ("triggered", integer),
                ]
            ),
            False,
            required=True,
        ),
        Field("agreement", pa.struct([("clip", per_dim), ("turn", per_dim)]), False),
        Field("prosody", pa.struct([(f, number) for f in FEATURES])),
        Field("split", string, enum=(*SPLITS, None), required=True),
        Field("exported_at", pa.timestamp("ms", tz="UTC"), False),
        Field("tool_version", string, False),
    )


def columns(taxonomy: Taxonomy, *, optional: Sequence[str] = ()) -> tuple[str, ...]:
    """Column names of a row, with only the ``optional`` columns asked for."""
    return tuple(
        f.name for f in row_fields(taxonomy) if f.name not in OPTIONAL or f.name in optional
    )


def arrow_schema(
    taxonomy: Taxonomy, label_space: str = "ours", *, optional: Sequence[str] = ()
) -> pa.Schema:
    """The Arrow schema of the Parquet file (with the ``optional`` columns asked for)."""
    return pa.schema(
        [
            (f.name, f.type)
            for f in row_fields(taxonomy, label_space)
            if f.name not in OPTIONAL or f.name in optional
        ]
    )


def _json_type(kind: pa.DataType, nullable: bool) -> dict[str, Any]:
    if pa.types.is_struct(kind):
        out: dict[str, Any] = {
            "type": ["object", "null"] if nullable else "object",
            "properties": {
                kind.field(i).name: _json_type(kind.field(i).type, True)
                for i in range(kind.num_fields)
            },
        }
        return out
    if pa.types.is_list(kind):
        return {
            "type": ["array", "null"] if nullable else "array",
            "items": _json_type(kind.value_type, False),
        }
    if pa.types.is_timestamp(kind):
        base: dict[str, Any] = {"type": "string", "format": "date-time"}
    else:
        name = (
            "integer"
            if pa.types.is_integer(kind)
            else "number"
            if pa.types.is_floating(kind)
            else "boolean"
            if pa.types.is_boolean(kind)
            else "string"
        )
        base = {"type": name}
    if nullable:
        base["type"] = [base["type"], "null"]
    return base


def row_schema(taxonomy: Taxonomy, label_space: str = "ours") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one exported row (one line of ``turns.jsonl``)."""
    properties: dict[str, Any] = {}
    for f in row_fields(taxonomy, label_space):
        if f.name == "labels":
            values = f.type.value_type
            spec: dict[str, Any] = {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        values.field(i).name: _json_type(values.field(i).type, False)
                        for i in range(1, values.num_fields)
                    },
                },
            }
        else:
            spec = _json_type(f.type, f.nullable)
        if f.enum is not None:
            spec = {"enum": list(f.enum)}
        if f.description:
            spec["description"] = f.description
        properties[f.name] = spec
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{taxonomy.name} {taxonomy.version} turn",
        "type": "object",
        "required": [f.name for f in row_fields(taxonomy, label_space) if f.required],
        "properties": properties,
    }


def arrow_row(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A row as the Parquet file holds it: ``labels`` as a list of structs, ``exported_at``
    as a datetime; the columns ``names``, in order."""
    out = {}
    for name in names:
        value = row.get(name)
        if name == "labels" and value is not None:
            value = [{"annotator": a, **dims} for a, dims in value.items()]
        elif name == "exported_at" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        out[name] = value
    return out


# Columns whose keys come from outside the exporter's code: the dimensions of stored
# judgements (a taxonomy may have lost one since) and the prosody features of task data.
CHECKED = ("labels", "prosody")


def check_keys(
    row: Mapping[str, Any], schema: pa.Schema, where: str, columns: Sequence[str] = CHECKED
) -> None:
    """Raise if a struct value in ``columns`` of an Arrow-ready row (:func:`arrow_row`) has
    a key its Arrow struct lacks (Arrow would drop it silently); names the row, the field
    and the key. The other columns are made by the exporter with the schema's keys."""
    known = _SPECS.get(id(schema))  # by identity: hashing a schema costs more than a row
    if known is None or known[0] is not schema:
        known = _SPECS[id(schema)] = (
            schema,
            {schema.field(i).name: _spec(schema.field(i).type) for i in range(len(schema))},
        )
    spec = known[1]
    for column in columns:
        sub = spec.get(column)
        if sub is not None:
            value = row.get(column)
            if value is not None and not _fits(value, sub):
                _explain(value, sub, f"{where}: {column}")


# Per struct: (its keys, the spec of each member); per list: ("list", the item's spec);
# None for a leaf. Made once per schema.
_SPECS: dict[int, tuple[pa.Schema, dict[str, Any]]] = {}


def _spec(kind: pa.DataType) -> Any:
    if pa.types.is_struct(kind):
        members = {kind.field(i).name: _spec(kind.field(i).type) for i in range(kind.num_fields)}
        nested = {k: v for k, v in members.items() if v is not None}
        return (frozenset(members), nested)
    if pa.types.is_list(kind):
        item = _spec(kind.value_type)
        return None if item is None else ("list", item)
    return None


def _fits(value: Any, spec: Any) -> bool:
    if spec[0] == "list":
        return not isinstance(value, list) or all(v is None or _fits(v, spec[1]) for v in value)
    if not isinstance(value, Mapping):
        return True
    keys, nested = spec
    if not keys.issuperset(value):
        return False
    for key, sub in nested.items():
        item = value.get(key)
        if item is not None and not _fits(item, sub):
            return False
    return True


def _explain(value: Any, spec: Any, path: str) -> None:
    """Raise the error for the first key of ``value`` that ``spec`` lacks."""
    if spec[0] == "list":
        for k, item in enumerate(value):
            if item is not None and not _fits(item, spec[1]):
                _explain(item, spec[1], f"{path}[{k}]")
        return
    keys, nested = spec
    extra = sorted(set(value) - keys)
    if extra:
        raise ValueError(
            f"{path}: keys {extra} are not in the row schema; expected some of {sorted(keys)}"
        )
    for key, sub in nested.items():
        item = value.get(key)
        if item is not None and not _fits(item, sub):
            _explain(item, sub, f"{path}.{key}")


def hf_features(taxonomy: Taxonomy, label_space: str = "ours", *, jsonl: bool = False) -> Any:
    """The Hugging Face ``datasets.Features`` of the export (needs ``datasets``).

    For the Parquet file they are what ``datasets`` reads from its schema. For
    ``turns.jsonl`` (``jsonl=True``) pass them to ``load_dataset("json", ...,
    features=...)`` so columns that are null on every row still get their type; there
    ``labels`` (keyed by annotator, free keys) is a ``Json`` feature, as ``datasets`` has
    no map type.

    Example
    -------
    >>> from schemas.taxonomy import load_taxonomy
    >>> hf_features(load_taxonomy(), jsonl=True)["labels"]  # doctest: +SKIP
    Json()
    """
    import datasets

    features = datasets.Features.from_arrow_schema(arrow_schema(taxonomy, label_space))
    if jsonl:
        features["labels"] = datasets.Json()
    return features
