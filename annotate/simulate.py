"""Simulated annotators for the demo and the tests.

A simulated annotator labels each turn with the session's intended emotion, except that
with probability ``noise`` it picks another category; its ratings follow the emotion with
seeded jitter, and it marks a shift span where a performer's intended emotion changes.
They exist so the whole path (Label Studio -> webhook -> agreement -> export) runs without
people; everything they produce is marked as simulated by whoever prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from schemas.taxonomy import Taxonomy

# Rough valence / arousal / dominance (1-5) of the core categories, for plausible ratings.
_VAD = {
    "neutral": (3, 2, 3),
    "joy": (5, 4, 4),
    "sadness": (1, 2, 2),
    "anger": (1, 5, 5),
    "fear": (1, 4, 1),
    "surprise": (4, 5, 3),
    "disgust": (1, 3, 4),
}


def simulate_values(
    dialogue: Sequence[Mapping[str, Any]],
    intended: Mapping[int, str],
    taxonomy: Taxonomy,
    rng: np.random.Generator,
    noise: float = 0.2,
) -> tuple[dict[int, dict[str, str | int]], list[dict[str, Any]]]:
    """Values for every turn of a clip and shift spans, as one simulated annotator.

    Parameters
    ----------
    dialogue : sequence of mappings
        The task's dialogue lines (``turn_index``, ``performer``, ``start``, ``end``).
    intended : mapping
        Turn index -> intended emotion; turns without one get "neutral".
    taxonomy : Taxonomy
        Gives the categories and the rating dimensions to fill in.
    rng : numpy.random.Generator
        Seeded source of the noise.
    noise : float
        Probability of choosing a category other than the intended one.

    Returns
    -------
    (values, shifts)
        ``values`` maps a dialogue index to ``{dimension: value}``; ``shifts`` holds spans in
        clip-audio seconds for :func:`schemas.codec.encode_annotation`.
    """
    categories = list(taxonomy.emotion.values)
    values: dict[int, dict[str, str | int]] = {}
    chosen: list[str] = []
    for i, line in enumerate(dialogue):
        truth = intended.get(int(line["turn_index"]), "neutral")
        if truth not in categories:
            truth = categories[0]
        label = truth
        if rng.random() < noise:
            label = str(rng.choice([c for c in categories if c != truth]))
        chosen.append(label)
        turn: dict[str, str | int] = {taxonomy.emotion.name: label}
        vad = _VAD.get(label, (3, 3, 3))
        for dim in taxonomy.dimensions:
            if dim.kind != "rating" or dim.min is None or dim.max is None:
                continue
            base = {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]}.get(
                dim.name, 3 if label == "neutral" else 4
            )
            jitter = int(rng.integers(-1, 2))
            turn[dim.name] = int(np.clip(base + jitter, dim.min, dim.max))
        values[i] = turn
    shifts = []
    last: dict[str, tuple[int, str]] = {}
    for i, line in enumerate(dialogue):
        performer = str(line.get("performer") or line.get("speaker"))
        if performer in last and last[performer][1] != chosen[i]:
            start = float(line["start"])
            shifts.append(
                {
                    "start": round(max(0.0, start - 0.2), 3),
                    "end": round(start + 0.8, 3),
                    "from": last[performer][1],
                    "to": chosen[i],
                    "trigger": str(rng.choice(list(taxonomy.shift.trigger))),
                    "onset": str(rng.choice(list(taxonomy.shift.onset))),
                }
            )
        last[performer] = (i, chosen[i])
    return values, shifts
