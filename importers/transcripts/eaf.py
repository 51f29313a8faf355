"""ELAN annotation documents (``.eaf``, EAF 2.x and 3.0).

Turns come from the top-level tiers (no ``PARENT_REF``) whose linguistic type is
time-alignable: one turn per ``ALIGNABLE_ANNOTATION``, the speaker is the tier's
``PARTICIPANT`` or, without one, its ``TIER_ID``. Dependent tiers (translations,
transcriptions in another script, word subdivisions: ``Symbolic_Association``,
``Symbolic_Subdivision``, ``Time_Subdivision``, ``Included_In``) describe the same speech
again, so they are not turned into turns; a warning names them. A time slot without a
``TIME_VALUE`` (an unaligned boundary) takes a time interpolated between the aligned slots
around it in ``TIME_ORDER``, with a warning when a turn uses one.

Parsed with the standard library's ``xml.etree.ElementTree``; a document type declaration
(``<!DOCTYPE``, where entities would be declared) is refused, so no entity is expanded.

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
from pathlib import Path

from importers.transcripts.records import Segment, Transcript, clean, read_with
from schemas.errors import TranscriptError

__all__ = ["parse_eaf", "read_eaf"]

# The encoding pseudo-attribute is dropped: the text is already decoded (see textio).
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


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


def parse_eaf(text: str, source: str) -> tuple[list[Segment], list[str]]:
    """The turns of an EAF document (pure form of :func:`read_eaf`).

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
    alignable = {
        lt.get("LINGUISTIC_TYPE_ID"): lt.get("TIME_ALIGNABLE", "true") == "true"
        and not lt.get("CONSTRAINTS")
        for lt in root.findall("LINGUISTIC_TYPE")
    }
    segments: list[Segment] = []
    dependent: list[str] = []
    interpolated: list[str] = []
    for tier in root.findall("TIER"):
        tier_id = tier.get("TIER_ID", "")
        type_ref = tier.get("LINGUISTIC_TYPE_REF", "")
        if tier.get("PARENT_REF") or not alignable.get(type_ref, True):
            n = len(tier.findall("ANNOTATION"))
            dependent.append(f"{tier_id!r} ({n} annotation{'s' * (n != 1)})")
            continue
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
            value = annotation.findtext("ANNOTATION_VALUE") or ""
            segments.append(Segment(speaker, bounds[0], bounds[1], clean(value), where))
        refs = len(tier.findall("ANNOTATION/REF_ANNOTATION"))
        if refs:
            raise TranscriptError(
                f"{source}:tier {tier_id!r}: {refs} REF_ANNOTATION(s) on a tier without "
                "PARENT_REF; expected them only on dependent tiers"
            )
    warnings = []
    if dependent:
        warnings.append(f"{source}: dependent tiers not read as turns: {', '.join(dependent)}")
    if interpolated:
        warnings.append(
            f"{source}: {len(interpolated)} turn boundar{'ies' if len(interpolated) > 1 else 'y'}"
            f" on unaligned time slots, interpolated ({', '.join(interpolated[:5])})"
        )
    return segments, warnings


def read_eaf(path: str | Path) -> Transcript:
    """Read an ELAN ``.eaf`` file into a :class:`Transcript` (format ``"eaf"``).

    Raises
    ------
    TranscriptError
        Naming the file and the line, tier or annotation; see :func:`parse_eaf`.
    """
    return read_with(parse_eaf, path, "eaf")
