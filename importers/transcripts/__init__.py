"""Transcript readers: one module per format, one entry function each, one result type.

=========  ==========================================  ==============================
format     files                                        module
=========  ==========================================  ==============================
vtt        WebVTT with ``<v Speaker>`` voices           :mod:`.vtt`
srt        SubRip with ``SPEAKER:`` prefixes            :mod:`.srt`
rttm       diarisation turns (text from a companion)    :mod:`.rttm`
whisperx   WhisperX JSON, pyannote JSON                 :mod:`.whisperx`
eaf        ELAN annotation documents                    :mod:`.eaf`
textgrid   Praat TextGrids (long/short, UTF-16)         :mod:`.textgrid`
csv, tsv   tables with start/end/speaker/text (MELD)    :mod:`.table`
=========  ==========================================  ==============================

:func:`read_transcript` picks the reader (by extension or ``format=``), decodes the file
(:mod:`importers.textio`), and checks the segments (:mod:`.checks`).
"""

from importers.transcripts.checks import check_segments
from importers.transcripts.reader import EXTENSIONS, READERS, format_for, read_transcript
from importers.transcripts.records import Segment, Transcript

__all__ = [
    "EXTENSIONS",
    "READERS",
    "Segment",
    "Transcript",
    "check_segments",
    "format_for",
    "read_transcript",
]
