"""Checks every transcript format shares: times, spans, speakers, same-speaker overlaps.

They return every problem rather than stopping at the first, so that a summary can list all
the problems of a file at once.

Example
-------
>>> segs = [Segment("Maya", 0.0, 2.0, "Hi.", "3"), Segment("Maya", 1.5, 3.0, "Yes.", "6"),
...         Segment("Theo", 1.0, 1.0, "Oh.", "9")]
>>> errors, warnings = check_segments(segs, "s.vtt")
>>> for e in errors:  # doctest: +ELLIPSIS
...     print(e)
s.vtt:9: ends at 1.000s, not after its start 1.000s
s.vtt:6: Maya's turn 1.500-3.000s overlaps their turn at s.vtt:3 (0.000-2.000s); ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from importers.transcripts.records import Segment

__all__ = ["END_TOLERANCE", "check_segments"]

END_TOLERANCE = 0.0015
"""Seconds a segment may run past the media's end, or into the same speaker's next turn:
times rounded to milliseconds."""


def check_segments(
    segments: Sequence[Segment],
    source: str,
    *,
    media_duration: float | None = None,
    require_speaker: bool = True,
    speaker_hint: str = "a speaker name",
    speaker_classes: bool = False,
) -> tuple[list[str], list[str]]:
    """Every problem of a file's segments, as ``"file:where: what; expected ..."`` lines.

    Parameters
    ----------
    segments : sequence of Segment
        In any order; problems are reported in order of start time.
    source : str
        The file name the messages start with.
    media_duration : float, optional
        Seconds of the recording; a segment ending later (beyond :data:`END_TOLERANCE`)
        is an error.
    require_speaker : bool
        Whether a segment without speaker is an error (true for turns to annotate).
    speaker_hint : str
        How the format names a speaker, for the message (``"'<v Name>text'"``).
    speaker_classes : bool
        The speakers are classes of speaker, not people (VTC's ``OCH``: any other child):
        turns of one class that overlap are kept and counted in a warning, not errors.

    Returns
    -------
    errors : list of str
        Times that are not finite or negative, spans that end at or before their start,
        ends past the media, segments without speaker, same-speaker turns that overlap
        (naming both places). Different speakers overlapping is normal speech.
    warnings : list of str
        One line counting segments without text, if any.
    """
    errors: list[tuple[float, str]] = []
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    empty: list[str] = []
    for s in ordered:
        here = f"{source}:{s.where}"
        if not (math.isfinite(s.start) and math.isfinite(s.end)):
            errors.append((0.0, f"{here}: times {s.start}-{s.end}; expected finite seconds"))
            continue
        if s.start < 0:
            errors.append(
                (s.start, f"{here}: starts at {s.start:.3f}s; expected a time of 0 or more")
            )
        if s.end <= s.start:
            errors.append(
                (s.start, f"{here}: ends at {s.end:.3f}s, not after its start {s.start:.3f}s")
            )
        if media_duration is not None and s.end > media_duration + END_TOLERANCE:
            errors.append(
                (
                    s.start,
                    f"{here}: ends at {s.end:.3f}s, past the end of the media "
                    f"({media_duration:.3f}s)",
                )
            )
        if s.speaker is None and require_speaker:
            errors.append((s.start, f"{here}: no speaker; expected {speaker_hint}"))
        if not s.text:
            empty.append(s.where)
    # Same-speaker overlaps: compare each turn with the speaker's furthest-reaching one so far.
    reach: dict[str, Segment] = {}
    shared: list[str] = []
    for s in ordered:
        if s.speaker is None or not (math.isfinite(s.start) and math.isfinite(s.end)):
            continue
        before = reach.get(s.speaker)
        if before is not None and s.start < before.end - END_TOLERANCE and speaker_classes:
            shared.append(f"{s.speaker} {before.where} and {s.where}")
        elif before is not None and s.start < before.end - END_TOLERANCE:
            errors.append(
                (
                    s.start,
                    f"{source}:{s.where}: {s.speaker}'s turn {s.start:.3f}-{s.end:.3f}s "
                    f"overlaps their turn at {source}:{before.where} "
                    f"({before.start:.3f}-{before.end:.3f}s); expected one speaker's turns "
                    "not to overlap",
                )
            )
        if before is None or s.end > before.end:
            reach[s.speaker] = s
    warnings = []
    if shared:
        shown = "; ".join(shared[:5]) + (" ..." if len(shared) > 5 else "")
        warnings.append(
            f"{source}: the speakers are classes, not people: {len(shared)} turn(s) overlap "
            f"another of their class and are kept ({shown})"
        )
    if empty:
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        warnings.append(
            f"{source}: {len(empty)} of {len(ordered)} segment(s) have no text ({shown})"
        )
    return [message for _, message in sorted(errors, key=lambda e: e[0])], warnings
