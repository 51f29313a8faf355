"""WebVTT transcripts with ``<v Speaker>`` voice tags (kept for older imports).

The parser lives in :mod:`importers.transcripts.vtt`; this module re-exports its cue-level
API. New code reads any transcript format with
:func:`importers.transcripts.read_transcript`.

Example
-------
>>> text = "WEBVTT\\n\\n00:00.500 --> 00:02.000\\n<v Maya>Hi there.\\n"
>>> [(c.speaker, c.start, c.end, c.text) for c in parse_webvtt(text)]
[('Maya', 0.5, 2.0, 'Hi there.')]
"""

from __future__ import annotations

from importers.transcripts.vtt import Cue, parse_webvtt, read_webvtt

__all__ = ["Cue", "parse_webvtt", "read_webvtt"]
