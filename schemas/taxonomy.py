"""The emotion-shift taxonomy: declared in YAML, validated into frozen records.

A taxonomy names the turn-level dimensions annotators fill in (a category chosen from a
list, or a rating on a scale), the shift events they mark on the timeline, and mappings
from our categories to other corpora's label spaces. Every judgement and export row records
the taxonomy's name and version.

Example
-------
>>> tax = load_taxonomy()
>>> tax.name, tax.dimension("emotion").level
('improv-emotion-shift', 'nominal')
>>> tax.dimension("emotion").values[:3]
('neutral', 'joy', 'sadness')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from schemas.errors import TaxonomyError

LEVELS = ("nominal", "ordinal", "interval", "ratio")
KINDS = ("choice", "rating")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Names the label config uses itself (see schemas/label_config.py).
_RESERVED = {"audio", "video", "dialogue", "turn", "note", "prompt", "title"}
_SHIFT_PARTS = ("from", "to", "trigger", "onset")
# Keys the labeling interface uses itself: a label on one of them would never be chosen.
RESERVED_HOTKEYS = frozenset(
    {
        "u",
        "h",
        "r",
        "space",
        "backspace",
        "delete",
        "escape",
        "enter",
        "ctrl+enter",
        "ctrl+z",
        "ctrl+shift+z",
        "alt+.",
        "alt+,",
        "alt+r",  # links the selected region to the next one clicked (a trigger link)
    }
)
POLARITIES = ("positive", "negative", "neutral", "ambiguous")
AROUSALS = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Label:
    """One category of a choice dimension, with its keyboard shortcut.

    ``polarity`` (positive, negative, neutral, ambiguous) and ``arousal`` (low, medium,
    high) describe the category for derived shift types when no rating is at hand.
    """

    value: str
    hotkey: str | None = None
    polarity: str | None = None
    arousal: str | None = None


@dataclass(frozen=True, slots=True)
class Dimension:
    """A turn-level question: a category (``kind="choice"``) or a rating on a scale.

    ``level`` is the level of measurement the agreement math uses for it.
    """

    name: str
    title: str
    kind: str
    level: str
    labels: tuple[Label, ...] = ()
    min: int | None = None
    max: int | None = None
    hotkeys: tuple[str, ...] = ()
    # a star rating's key: each press adds a star (after the last, none); see label_config
    hotkey: str | None = None

    @property
    def values(self) -> tuple[str, ...]:
        """The category values of a choice dimension, in declared order."""
        return tuple(label.value for label in self.labels)

    @property
    def as_choices(self) -> bool:
        """True when the labeling interface offers this dimension as choices (categories;
        scales that do not start at 1 or that have hotkeys), False for rating stars."""
        return self.kind == "choice" or self.min != 1 or bool(self.hotkeys)

    @property
    def scale(self) -> tuple[int, ...]:
        """The points of a rating scale, ``min..max`` inclusive (empty for choices)."""
        if self.kind != "rating" or self.min is None or self.max is None:
            return ()
        return tuple(range(self.min, self.max + 1))

    def code(self, value: str | float) -> float:
        """The numeric code the agreement math uses for ``value``.

        Categories are coded by their position in the declared list; ratings by their
        number. Raises :class:`TaxonomyError` naming the valid values for anything else.
        """
        if self.kind == "choice":
            try:
                return float(self.values.index(str(value)))
            except ValueError:
                raise TaxonomyError(
                    f"{value!r} is not a label of dimension {self.name!r}; "
                    f"expected one of {list(self.values)}"
                ) from None
        number = float(value)
        if self.min is not None and self.max is not None and not self.min <= number <= self.max:
            raise TaxonomyError(
                f"{value!r} is outside the scale of dimension {self.name!r}; "
                f"expected {self.min}..{self.max}"
            )
        return number


@dataclass(frozen=True, slots=True)
class ShiftSpec:
    """How shift events are marked: a span with from/to emotion, trigger and onset."""

    name: str
    title: str
    trigger: tuple[str, ...]
    onset: tuple[str, ...]
    hotkey: str | None = None
    neutral: str | None = None
    trigger_hotkeys: tuple[str | None, ...] = ()
    onset_hotkeys: tuple[str | None, ...] = ()
    from_prefix: str | None = None
    to_prefix: str | None = None

    def emotion_hotkeys(self, emotion: Dimension, part: str) -> tuple[str | None, ...]:
        """Keys of the from (``part="from"``) or to emotion choices: a prefix + the
        emotion's own key, e.g. ``shift+j`` for "from joy"."""
        prefix = self.from_prefix if part == "from" else self.to_prefix
        return tuple(
            f"{prefix}{label.hotkey}" if prefix and label.hotkey else None
            for label in emotion.labels
        )


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """A validated taxonomy. Build it with :func:`load_taxonomy` or :func:`taxonomy_from_dict`."""

    name: str
    version: str
    dimensions: tuple[Dimension, ...]
    shift: ShiftSpec
    mappings: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    description: str = ""

    def dimension(self, name: str) -> Dimension:
        """The dimension called ``name``; an unknown name lists the known ones."""
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise TaxonomyError(
            f"unknown dimension {name!r}; expected one of {[d.name for d in self.dimensions]}"
        )

    @property
    def emotion(self) -> Dimension:
        """The categorical emotion dimension (the first choice dimension)."""
        for dim in self.dimensions:
            if dim.kind == "choice":
                return dim
        raise TaxonomyError(f"taxonomy {self.name!r} has no choice dimension")

    def mapping(self, space: str) -> dict[str, str]:
        """The mapping from our emotion categories to the label space ``space``."""
        table = dict(self.mappings)
        if space not in table:
            raise TaxonomyError(f"unknown label space {space!r}; expected one of {sorted(table)}")
        return dict(table[space])


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise TaxonomyError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    if key not in mapping or mapping[key] in (None, ""):
        raise TaxonomyError(f"{where}: missing required key {key!r}")
    return mapping[key]


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise TaxonomyError(
            f"{where}: {value!r} is not a valid name; expected lower-case letters, digits, '_'"
        )
    if value in _RESERVED:
        raise TaxonomyError(f"{where}: {value!r} is reserved; expected another name")
    return value


def _labels(items: Any, where: str) -> tuple[Label, ...]:
    if not isinstance(items, list) or not items:
        raise TaxonomyError(f"{where}: expected a non-empty list of labels")
    labels = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"value": item}
        value = _require(item, "value", f"{where}[{i}]")
        hotkey = item.get("hotkey")
        polarity, arousal = item.get("polarity"), item.get("arousal")
        if polarity is not None and polarity not in POLARITIES:
            raise TaxonomyError(
                f"{where}[{i}].polarity: {polarity!r}; expected one of {list(POLARITIES)}"
            )
        if arousal is not None and arousal not in AROUSALS:
            raise TaxonomyError(
                f"{where}[{i}].arousal: {arousal!r}; expected one of {list(AROUSALS)}"
            )
        labels.append(Label(str(value), None if hotkey is None else str(hotkey), polarity, arousal))
    return tuple(labels)


def _strings(items: Any, where: str) -> tuple[str, ...]:
    if not isinstance(items, list) or not items:
        raise TaxonomyError(f"{where}: expected a non-empty list")
    values = tuple(str(v) for v in items)
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise TaxonomyError(f"{where}: duplicate values {dupes}")
    return values


def _dimension(raw: Any, where: str, extension: bool) -> Dimension:
    name = _name(_require(raw, "name", where), f"{where}.name")
    kind = _require(raw, "kind", where)
    if kind not in KINDS:
        raise TaxonomyError(f"{where}.kind: unknown kind {kind!r}; expected one of {list(KINDS)}")
    level = _require(raw, "level", where)
    if level not in LEVELS:
        raise TaxonomyError(
            f"{where}.level: unknown level {level!r}; expected one of {list(LEVELS)}"
        )
    title = str(raw.get("title") or name)
    if kind == "choice":
        labels = _labels(raw.get("labels"), f"{where}.labels")
        if extension and raw.get("extension"):
            labels += _labels(raw["extension"], f"{where}.extension")
        values = [label.value for label in labels]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise TaxonomyError(f"{where}.labels: duplicate labels {dupes}")
        return Dimension(name, title, kind, level, labels=labels)
    low, high = _require(raw, "min", where), _require(raw, "max", where)
    if not isinstance(low, int) or not isinstance(high, int) or low >= high:
        raise TaxonomyError(f"{where}: scale min {low!r} must be an integer below max {high!r}")
    if low < 0:
        raise TaxonomyError(f"{where}.min: expected 0 or more, got {low}")
    hotkeys: tuple[str, ...] = ()
    if raw.get("hotkeys") is not None:
        hotkeys = _strings(raw["hotkeys"], f"{where}.hotkeys")
        if len(hotkeys) != high - low + 1:
            raise TaxonomyError(
                f"{where}.hotkeys: {len(hotkeys)} keys for a scale of {high - low + 1} points; "
                "expected one key per point"
            )
    hotkey = None if raw.get("hotkey") is None else str(raw["hotkey"])
    if hotkey is not None and (hotkeys or low != 1):
        raise TaxonomyError(
            f"{where}.hotkey: a key for star ratings (from 1), but this scale is offered as "
            "choices (hotkeys, or a scale not starting at 1); give hotkeys or hotkey"
        )
    return Dimension(name, title, kind, level, min=low, max=high, hotkeys=hotkeys, hotkey=hotkey)


def taxonomy_from_dict(raw: Any, *, extension: bool = False, source: str = "taxonomy") -> Taxonomy:
    """Validate a parsed taxonomy document into a :class:`Taxonomy`.

    Parameters
    ----------
    raw : dict
        The document, as ``yaml.safe_load`` returns it.
    extension : bool
        Add each choice dimension's ``extension`` labels (the improv extension).
    source : str
        Where the document came from, used as the prefix of error messages.
    """
    name = str(_require(raw, "name", source))
    version = str(_require(raw, "version", source))
    dims_raw = _require(raw, "dimensions", source)
    if not isinstance(dims_raw, list) or not dims_raw:
        raise TaxonomyError(f"{source}.dimensions: expected a non-empty list")
    dims = tuple(
        _dimension(d, f"{source}.dimensions[{i}]", extension) for i, d in enumerate(dims_raw)
    )
    names = [d.name for d in dims]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TaxonomyError(f"{source}.dimensions: duplicate dimension names {dupes}")
    if not any(d.kind == "choice" for d in dims):
        raise TaxonomyError(f"{source}.dimensions: expected at least one choice dimension")
    shift_raw = _require(raw, "shift", source)
    trigger = _labels(shift_raw.get("trigger"), f"{source}.shift.trigger")
    onset = _labels(shift_raw.get("onset"), f"{source}.shift.onset")
    for what, items in (("trigger", trigger), ("onset", onset)):
        values = [lab.value for lab in items]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise TaxonomyError(f"{source}.shift.{what}: duplicate values {dupes}")
    shift_name = _name(_require(shift_raw, "name", f"{source}.shift"), f"{source}.shift.name")
    if shift_name in names:
        raise TaxonomyError(f"{source}.shift.name: {shift_name!r} is already a dimension name")
    taken = sorted(set(names) & {f"{shift_name}_{part}" for part in _SHIFT_PARTS})
    if taken:
        raise TaxonomyError(
            f"{source}.dimensions: names {taken} are used by the shift controls; "
            "expected other names"
        )
    shift = ShiftSpec(
        name=shift_name,
        title=str(shift_raw.get("title") or shift_name),
        trigger=tuple(lab.value for lab in trigger),
        onset=tuple(lab.value for lab in onset),
        trigger_hotkeys=tuple(lab.hotkey for lab in trigger),
        onset_hotkeys=tuple(lab.hotkey for lab in onset),
        from_prefix=shift_raw.get("from_hotkey_prefix"),
        to_prefix=shift_raw.get("to_hotkey_prefix"),
        hotkey=None if shift_raw.get("hotkey") is None else str(shift_raw["hotkey"]),
        neutral=None if shift_raw.get("neutral") is None else str(shift_raw["neutral"]),
    )
    emotion = next(d for d in dims if d.kind == "choice")
    hotkeys = [lab.hotkey for d in dims for lab in d.labels if lab.hotkey]
    hotkeys += [key for d in dims for key in d.hotkeys]
    hotkeys += [d.hotkey for d in dims if d.hotkey]
    hotkeys += [shift.hotkey] if shift.hotkey else []
    hotkeys += [k for k in shift.trigger_hotkeys + shift.onset_hotkeys if k]
    clashes = sorted({h for h in hotkeys if hotkeys.count(h) > 1})
    if clashes:
        raise TaxonomyError(f"{source}: hotkeys used twice {clashes}; expected each once")
    hotkeys += [k for part in ("from", "to") for k in shift.emotion_hotkeys(emotion, part) if k]
    clashes = sorted({h for h in hotkeys if hotkeys.count(h) > 1})
    if clashes:
        raise TaxonomyError(
            f"{source}: hotkeys used twice {clashes} (with the shift from/to prefixes); "
            "expected each once"
        )
    reserved = sorted({h for h in hotkeys if h.lower() in RESERVED_HOTKEYS})
    if reserved:
        raise TaxonomyError(
            f"{source}: hotkeys {reserved} are Label Studio's own keys; expected other keys "
            f"(reserved: {sorted(RESERVED_HOTKEYS)})"
        )
    emotion_values = set(next(d for d in dims if d.kind == "choice").values)
    if shift.neutral is not None and shift.neutral not in emotion_values:
        raise TaxonomyError(
            f"{source}.shift.neutral: {shift.neutral!r} is not an emotion label; expected one "
            f"of {sorted(emotion_values)}"
        )
    mappings = []
    for space, table in (raw.get("mappings") or {}).items():
        where = f"{source}.mappings.{space}"
        if not isinstance(table, dict):
            raise TaxonomyError(f"{where}: expected a mapping from our labels to {space}'s")
        unknown = sorted(set(map(str, table)) - set(_all_choice_values(dims_raw)))
        if unknown:
            raise TaxonomyError(
                f"{where}: maps unknown labels {unknown}; expected labels of the taxonomy"
            )
        missing = sorted(emotion_values - set(map(str, table)))
        if missing:
            raise TaxonomyError(f"{where}: no mapping for labels {missing}")
        pairs = tuple((str(k), str(v)) for k, v in table.items() if str(k) in emotion_values)
        mappings.append((str(space), pairs))
    return Taxonomy(
        name=name,
        version=version,
        dimensions=dims,
        shift=shift,
        mappings=tuple(mappings),
        description=str(raw.get("description") or "").strip(),
    )


def _all_choice_values(dims_raw: list[Any]) -> list[str]:
    values: list[str] = []
    for d in dims_raw:
        for key in ("labels", "extension"):
            for item in d.get(key) or []:
                values.append(str(item["value"] if isinstance(item, dict) else item))
    return values


def default_taxonomy_path() -> Path:
    """The path of the taxonomy shipped with the project."""
    return Path(str(resources.files("schemas") / "taxonomies" / "default.yaml"))


def load_taxonomy(path: str | Path | None = None, *, extension: bool = False) -> Taxonomy:
    """Load and validate a taxonomy YAML file (the shipped default when ``path`` is None).

    Raises :class:`TaxonomyError` naming the file and key when the file is invalid.
    """
    path = Path(path) if path is not None else default_taxonomy_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy file ({exc.strerror})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML ({exc})") from exc
    return taxonomy_from_dict(raw, extension=extension, source=str(path))


def allowed_values(taxonomy: Taxonomy) -> dict[str, Callable[[str], bool]]:
    """For each control a label config of ``taxonomy`` has, a test of its valid values."""

    def rating(dim: Dimension) -> Callable[[str], bool]:
        def ok(value: str) -> bool:
            try:
                return float(value).is_integer() and dim.min <= float(value) <= dim.max  # type: ignore[operator]
            except ValueError:
                return False

        return ok

    tests: dict[str, Callable[[str], bool]] = {}
    for dim in taxonomy.dimensions:
        tests[dim.name] = dim.values.__contains__ if dim.kind == "choice" else rating(dim)
    emotions = taxonomy.emotion.values
    shift = taxonomy.shift
    for part, values in (
        ("from", emotions),
        ("to", emotions),
        ("trigger", shift.trigger),
        ("onset", shift.onset),
    ):
        tests[f"{shift.name}_{part}"] = values.__contains__
    return tests


def check_change(
    new: Taxonomy,
    usage: Mapping[tuple[str, str], int],
    migration: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Check that annotations made so far still fit taxonomy ``new``.

    Parameters
    ----------
    new : Taxonomy
        The taxonomy about to replace the project's current one.
    usage : mapping
        ``(control, value) -> count`` of the values annotations hold (see
        :func:`schemas.codec.label_usage`).
    migration : mapping, optional
        ``{control: {old value: new value}}`` for values the new taxonomy drops or renames.

    Returns
    -------
    dict
        The part of ``migration`` that must be applied (only used values), empty when the
        change only adds.

    Raises
    ------
    TaxonomyError
        Listing every used value the new taxonomy lacks, with how many results use it,
        unless the migration maps it to a valid value.
    """
    migration = migration or {}
    tests = allowed_values(new)
    for control, table in migration.items():
        if control not in tests:
            raise TaxonomyError(
                f"migration: unknown control {control!r}; expected one of {sorted(tests)}"
            )
        bad = sorted(v for v in table.values() if not tests[control](str(v)))
        if bad:
            raise TaxonomyError(f"migration.{control}: maps to {bad}, which the new taxonomy lacks")
    plan: dict[str, dict[str, str]] = {}
    problems = []
    gone: dict[str, int] = {}
    for (control, _value), count in sorted(usage.items()):
        if count > 0 and control not in tests:
            gone[control] = gone.get(control, 0) + count
    for control, count in gone.items():
        problems.append(f"control {control!r} is used by {count} results but is gone")
    for (control, value), count in sorted(usage.items()):
        if count <= 0 or control in gone:
            continue
        if tests[control](value):
            continue
        target = migration.get(control, {}).get(value)
        if target is None:
            problems.append(f"{control} label {value!r} is used by {count} results")
            continue
        plan.setdefault(control, {})[value] = str(target)
    if problems:
        raise TaxonomyError(
            f"taxonomy change to {new.name} {new.version} refused: "
            + "; ".join(problems)
            + ". Keep those labels, or give a migration mapping "
            "(YAML: {control: {old label: new label}})"
        )
    return plan
