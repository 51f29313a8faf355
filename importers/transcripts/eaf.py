"""ELAN annotation documents (``.eaf``, EAF 2.x and 3.0).

Speakers are the tiers that carry speech: top-level (no ``PARENT_REF``), of a linguistic
type that is time-alignable and has no constraint, and whose id and type id do not name a
gesture, note, comment, marker, event, action, translation or gloss tier (a word of the
name such as ``gest``, ``gestures``, ``notes``, ``comment``, ``marker``; see
:data:`_NOT_SPEECH`). One turn per
``ALIGNABLE_ANNOTATION`` with text (empty ones are counted in a warning); the speaker is the
tier's ``PARTICIPANT`` or, without one, its ``TIER_ID``, so two speech tiers of one
participant are one speaker. Every other tier (dependent tiers: words, glosses,
translations, chunks; gesture and marker tiers) is listed with its reason in one warning
(``tiers not used as speakers``). ``tiers=(...)`` (``tiers:`` in ``session.yaml``) names
the speech tiers instead, for documents whose analysis tiers look like speech; a name that
is not a tier id is an error listing the document's tiers. A time slot without a
``TIME_VALUE`` (an unaligned boundary) takes a time interpolated between the aligned slots
around it in ``TIME_ORDER``, with a warning when a turn uses one.

Parsed with the standard library's ``xml.etree.ElementTree``; a document type declaration
(``<!DOCTYPE``, where entities would be declared) is refused, so no entity is expanded.

Why not pympi-ling: ``pympi.Eaf`` (1.71) stops with ``KeyError: 'a26'`` while loading a
real ELAN 3.0 file (neocl/speach's ``test.eaf``, with a time-alignable dependent tier and
symbolic tiers below it) that this reader reads, parses the file itself with ``etree.parse`` (which
expands entities a DOCTYPE declares, and bypasses :mod:`importers.textio`'s decoding) and
gives no line or annotation for errors. The choice of speech tiers above is ours either
way.

Example
-------
>>> doc = '''<ANNOTATION_DOCUMENT><HEADER TIME_UNITS="milliseconds"/>
... <TIME_ORDER><TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="500"/>
... <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="2000"/></TIME_ORDER>
... <TIER TIER_ID="Maya" PARTICIPANT="Maya" LINGUISTIC_TYPE_REF="utt"><ANNOTATION>
... <ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
... <ANNOTATION_VALUE>Hi there.</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION></TIER>
... <LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="utt" TIME_ALIGNABLE="true"/>
... </ANNOTATION_DOCUMENT>'''
>>> parse_eaf(doc, "s.eaf")[0]
[Segment(speaker='Maya', start=0.5, end=2.0, text='Hi there.', where="tier 'Maya' annotation a1")]
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_eaf", "read_eaf"]

# The encoding pseudo-attribute is dropped: the text is already decoded (see textio).
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")

_NOT_SPEECH = re.compile(
    r"^(?:gest|gestures?\w*|notes?|comments?\w*|markers?|translat\w*|gloss(?:es)?|events?"
    r"|actions?)$"
)
"""A word of a tier id or linguistic type id that marks a tier without speech (a word, not a
beginning: a performer called Gestur or Noteboom keeps their tier)."""

_KINDS = {
    "gest": "gesture",
    "note": "note",
    "comment": "comment",
    "marker": "marker",
    "translat": "translation",
    "gloss": "gloss",
    "event": "event",
    "action": "action",
}


def _slot_times(root: ET.Element, source: str) -> tuple[dict[str, float], set[str]]:
    """Seconds of every time slot, and the ids of the interpolated (unaligned) ones."""
    order = root.find("TIME_ORDER")
    slots = [] if order is None else order.findall("TIME_SLOT")
    known: list[float | None] = []
    for slot in slots:
        slot_id = slot.get("TIME_SLOT_ID")
        if not slot_id:
            raise TranscriptError(f"{source}:TIME_ORDER: a TIME_SLOT without TIME_SLOT_ID")
        value = slot.get("TIME_VALUE")
        if value is None or value.strip() == "":
            known.append(None)
            continue
        try:
            ms = int(value)
        except ValueError:
            raise TranscriptError(
                f"{source}:time slot {slot_id}: TIME_VALUE {value!r}; expected whole milliseconds"
            ) from None
        known.append(ms / 1000)
    times: dict[str, float] = {}
    unaligned: set[str] = set()
    for k, slot in enumerate(slots):
        slot_id = slot.get("TIME_SLOT_ID", "")
        value = known[k]
        if value is None:
            unaligned.add(slot_id)
            before = next(
                ((j, known[j]) for j in range(k - 1, -1, -1) if known[j] is not None), None
            )
            after = next(
                ((j, known[j]) for j in range(k + 1, len(known)) if known[j] is not None), None
            )
            if before is None and after is None:
                raise TranscriptError(
                    f"{source}:time slot {slot_id}: no TIME_VALUE and no aligned slot to "
                    "interpolate from; expected at least one aligned time slot"
                )
            if before is None or after is None:
                value = (before or after)[1]  # type: ignore[index]
            else:
                (j0, t0), (j1, t1) = before, after
                value = round(t0 + (t1 - t0) * (k - j0) / (j1 - j0), 3)  # type: ignore[operator]
        times[slot_id] = value  # type: ignore[assignment]
    return times, unaligned


def _not_speech(tier: ET.Element, types: dict[str, ET.Element]) -> str | None:
    """Why ``tier`` is not a speech tier, or None when it is one."""
    parent = tier.get("PARENT_REF")
    if parent:
        return f"dependent on {parent!r}"
    type_id = tier.get("LINGUISTIC_TYPE_REF", "")
    kind = types.get(type_id)
    if kind is not None and kind.get("TIME_ALIGNABLE", "true") != "true":
        return f"type {type_id!r} is not time-alignable"
    if kind is not None and kind.get("CONSTRAINTS"):
        return f"type {type_id!r} is {kind.get('CONSTRAINTS')}"
    for name in (tier.get("TIER_ID", ""), type_id):
        words = re.split(r"[^a-z]+", name.lower())
        hint = next((w for w in words if _NOT_SPEECH.match(w)), None)
        if hint is not None:
            kind = next(k for k in _KINDS if hint.startswith(k))
            return f"a {_KINDS[kind]} tier"
    return None


def parse_eaf(
    text: str, source: str, *, tiers: Sequence[str] | None = None
) -> tuple[list[Segment], list[str]]:
    """The turns of an EAF document (pure form of :func:`read_eaf`).

    ``tiers`` names the speech tiers by id; by default they are the top-level,
    time-alignable tiers whose id and linguistic type do not name a gesture, note,
    comment, marker, translation or gloss tier.

    Raises
    ------
    TranscriptError
        Naming the XML line of a syntax error, or the tier and annotation of a reference to
        a time slot that does not exist; time units other than milliseconds.
    """
    body = _DECLARATION.sub("", text.lstrip("\ufeff"), count=1)
    if "<!DOCTYPE" in body or "<!ENTITY" in body:
        raise TranscriptError(
            f"{source}: has a document type declaration; expected an ELAN document without one"
        )
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        line, column = exc.position
        raise TranscriptError(
            f"{source}:{line}:{column + 1}: not well-formed XML ({str(exc).split(':')[0]})"
        ) from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise TranscriptError(
            f"{source}: root element <{root.tag}>; expected <ANNOTATION_DOCUMENT> (ELAN .eaf)"
        )
    header = root.find("HEADER")
    units = "milliseconds" if header is None else header.get("TIME_UNITS", "milliseconds")
    if units != "milliseconds":
        raise TranscriptError(f"{source}:HEADER: TIME_UNITS {units!r}; expected 'milliseconds'")
    times, unaligned = _slot_times(root, source)
    types = {lt.get("LINGUISTIC_TYPE_ID", ""): lt for lt in root.findall("LINGUISTIC_TYPE")}
    all_tiers = root.findall("TIER")
    if tiers is not None:
        by_id = {t.get("TIER_ID", ""): t for t in all_tiers}
        missing = [name for name in tiers if name not in by_id]
        if missing:
            raise TranscriptError(
                f"{source}: no tier {', '.join(repr(m) for m in missing)}; the document's "
                f"tiers are {list(by_id)}"
            )
        chosen = {id(by_id[name]) for name in tiers}
    else:
        chosen = {id(t) for t in all_tiers if _not_speech(t, types) is None}
    segments: list[Segment] = []
    unused: list[str] = []
    empty: dict[str, int] = {}
    interpolated: list[str] = []
    for tier in all_tiers:
        tier_id = tier.get("TIER_ID", "")
        n = len(tier.findall("ANNOTATION"))
        if id(tier) not in chosen:
            why = "not named in tiers" if tiers is not None else _not_speech(tier, types)
            unused.append(f"{tier_id!r} ({why}, {n} annotation{'s' * (n != 1)})")
            continue
        refs = len(tier.findall("ANNOTATION/REF_ANNOTATION"))
        if refs and not tier.get("PARENT_REF"):
            raise TranscriptError(
                f"{source}:tier {tier_id!r}: {refs} REF_ANNOTATION(s) on a tier without "
                "PARENT_REF; expected them only on dependent tiers"
            )
        if refs:
            raise TranscriptError(
                f"{source}:tier {tier_id!r}: {refs} REF_ANNOTATION(s), symbolic annotations "
                "without times of their own; expected a time-aligned tier in tiers"
            )
        speaker = tier.get("PARTICIPANT", "").strip() or tier_id
        for annotation in tier.iter("ALIGNABLE_ANNOTATION"):
            annotation_id = annotation.get("ANNOTATION_ID", "?")
            where = f"tier {tier_id!r} annotation {annotation_id}"
            bounds = []
            for ref in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"):
                slot = annotation.get(ref)
                if slot not in times:
                    raise TranscriptError(
                        f"{source}:{where}: {ref} {slot!r} is not a time slot of TIME_ORDER"
                    )
                bounds.append(times[slot])
                if slot in unaligned:
                    interpolated.append(where)
            value = clean(annotation.findtext("ANNOTATION_VALUE") or "")
            if not value:
                empty[tier_id] = empty.get(tier_id, 0) + 1
                continue
            segments.append(Segment(speaker, bounds[0], bounds[1], value, where))
    warnings = []
    speech = [t for t in all_tiers if id(t) in chosen and t.find("ANNOTATION") is not None]
    anonymous = [t.get("TIER_ID", "") for t in speech if not t.get("PARTICIPANT", "").strip()]
    named = [t.get("TIER_ID", "") for t in speech if t.get("PARTICIPANT", "").strip()]
    if tiers is None and anonymous and named:
        warnings.append(
            f"{source}: speech tier(s) {anonymous} have no PARTICIPANT while {named} have one; "
            "if they hold no speech (analysis, codes), name the speech tiers in session.yaml "
            f"('tiers: [{', '.join(named)}]')"
        )
    if unused:
        warnings.append(f"{source}: tiers not used as speakers: {', '.join(unused)}")
    if empty:
        counts = ", ".join(f"{name!r} {n}" for name, n in empty.items())
        warnings.append(
            f"{source}: {sum(empty.values())} empty annotation(s) are not turns ({counts})"
        )
    if interpolated:
        warnings.append(
            f"{source}: {len(interpolated)} turn boundar{'ies' if len(interpolated) > 1 else 'y'}"
            f" on unaligned time slots, interpolated ({', '.join(interpolated[:5])})"
        )
    return segments, warnings


def read_eaf(path: str | Path, *, tiers: Sequence[str] | None = None) -> Transcript:
    """Read an ELAN ``.eaf`` file into a :class:`Transcript` (format ``"eaf"``).

    Parameters
    ----------
    path : str or Path
        The ELAN document.
    tiers : sequence of str, optional
        The tier ids that carry speech (``tiers:`` of ``session.yaml``), instead of the
        ones picked by :func:`parse_eaf`.

    Raises
    ------
    TranscriptError
        Naming the file and the line, tier or annotation; see :func:`parse_eaf`.
    """
    return read_with(partial(parse_eaf, tiers=tiers), path, "eaf")
