"""Write the ``session.yaml`` a folder implies, for the user to edit (``improv-annotate init``).

The file holds the folder's explicit values (an existing ``session.yaml``, rewritten only
when asked) and every value :func:`importers.session.load_session` infers, each inferred
one with a comment saying where it came from; problems that stop the import are listed in
a comment at the top. Importing the folder with the written file gives the same session as
importing it without.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from importers.session import load_session, problems_of, read_meta
from importers.session_infer import SESSION_FILE
from importers.vad import UNKNOWN_SPEAKER
from schemas.errors import AnnotateError, SessionError

__all__ = ["Written", "session_yaml_text", "write_session_yaml"]

_ORDER = (
    "id", "title", "prompt", "media", "video", "transcript", "transcript_text",
    "transcript_format", "tiers", "performers", "synthetic", "intended", "licence",
    "consent",
)  # fmt: skip

_HEADER = """\
# {file} written by 'improv-annotate init' from what the folder holds.
# Values marked 'inferred' were found by the importer; edit any of them: a value written
# here always wins over inference, and a key left out is inferred again at import.
# Transcript speakers match performers by id, name or alias (case-insensitive); map a
# diariser's label (or any other spelling) to a performer with aliases, e.g.
#   performers:
#     - {{id: maya, name: Maya, aliases: [SPEAKER_00]}}
"""

_HOW = {
    "id": "inferred from the folder's name",
    "title": "inferred from the folder's name",
    "media": "inferred: the one recording in the folder",
    "transcript": "inferred: the one transcript file in the folder",
}


# Optional keys written as a commented-out line when missing: the data card states them,
# and says "not given" when a session and config.yaml leave them out.
_STATED = {
    "licence": "the recording's licence (e.g. CC BY 4.0), stated in data cards",
    "consent": "what the performers consented to (e.g. research use, publication of audio), "
    "stated in data cards",
}


@dataclass
class Written:
    """What :func:`write_session_yaml` wrote: the file, whether it replaced one, what was
    inferred, and the warnings and problems the import would report."""

    path: Path
    replaced: bool
    inferred: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _scalar(key: str, value: Any) -> str:
    return yaml.safe_dump({key: value}, allow_unicode=True, width=10**9, sort_keys=False).strip()


def _flow(item: Any) -> str:
    text = yaml.safe_dump(
        item, default_flow_style=True, allow_unicode=True, width=10**9, sort_keys=False
    )
    return text.strip()


def _performers(items: list[dict[str, Any]], how: str | None) -> list[str]:
    named = [p for p in items if p.get("id") != UNKNOWN_SPEAKER] if how else items
    if not named:
        return [
            "# performers: none found (the transcript names no speaker and the recording "
            f"is not one performer per channel): every turn's speaker is {UNKNOWN_SPEAKER!r}"
        ]
    lines = ["performers:" + (f"  # {how}" if how else "")]
    lines += [f"  - {_flow(p)}" for p in named]
    return lines


def session_yaml_text(
    meta: dict[str, Any], inferred: dict[str, Any], errors: list[str] | None = None
) -> str:
    """The text of a ``session.yaml``: ``meta``'s values, then the ``inferred`` ones.

    Parameters
    ----------
    meta : dict
        The explicit values (an existing ``session.yaml``), kept as given.
    inferred : dict
        ``{key: value}`` from :func:`importers.session.load_session`; ``transcript: None``
        means the folder has no transcript.
    errors : list of str, optional
        Problems the import reports, listed in a comment at the top.
    """
    lines = [_HEADER.format(file=SESSION_FILE).rstrip("\n")]
    if errors:
        lines.append("#")
        lines.append("# Problems to fix before importing:")
        for problem in errors:
            lines += [f"#   {line}" for line in problem.splitlines()]
    lines.append("")
    keys = [*_ORDER, *(k for k in meta if k not in _ORDER)]
    for key in keys:
        if key in meta:
            value = meta[key]
            if key == "performers" and isinstance(value, list):
                lines += _performers(value, None)
            elif isinstance(value, list | dict) and value:
                lines.append(yaml.safe_dump({key: value}, allow_unicode=True, sort_keys=False))
            else:
                lines.append(_scalar(key, value))
        elif key in inferred:
            value = inferred[key]
            if key == "performers":
                source = "channels" if any("channel" in p for p in value) else "speakers"
                how = (
                    "inferred: one per channel of the recording"
                    if source == "channels"
                    else "inferred: the speakers found in the transcript"
                )
                lines += _performers(value, how)
            elif key == "transcript" and value is None:
                lines.append(
                    "# transcript: none found in the folder; turns come from voice activity"
                )
            else:
                lines.append(f"{_scalar(key, value)}  # {_HOW.get(key, 'inferred')}")
        elif key == "prompt":
            lines.append('prompt: ""  # the scene\'s prompt, shown to annotators')
        elif key in _STATED:
            lines.append(f"# {key}: ...  # {_STATED[key]}")
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def write_session_yaml(folder: str | Path, *, force: bool = False) -> Written:
    """Write ``folder/session.yaml`` with what the folder implies.

    An existing ``session.yaml`` is an error unless ``force``; with ``force`` its values
    are kept and the missing ones added (its comments are not kept).

    Raises
    ------
    SessionError
        The file exists (without ``force``), or the existing one cannot be read.
    """
    folder = Path(folder)
    path = folder / SESSION_FILE
    replaced = path.exists()
    if replaced and not force:
        raise SessionError(
            f"{path}: already exists; left as it is (--force rewrites it, keeping its values "
            "and adding the inferred ones)"
        )
    meta = read_meta(folder)
    written = Written(path, replaced)
    try:
        load_session(folder, inferred=written.inferred, warnings=written.warnings)
    except AnnotateError as exc:
        written.errors = problems_of(exc)
    path.write_text(session_yaml_text(meta, written.inferred, written.errors), encoding="utf-8")
    return written
